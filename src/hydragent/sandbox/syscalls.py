"""The reviewed list of system calls model-written code may make: everything else is refused.

An allow-list, so that a kernel that adds a syscall changes nothing (`file_setattr`, new in
Linux 6.17, set file flags on host files by path while the filter was a deny-list). Measured
with `strace -f` on the sandboxed child (bwrap and landlock) running the child's own startup,
json, re, sqlite3 in memory, threading, concurrent.futures, asyncio, numpy (linalg, fft),
zipfile/tarfile/gzip/bz2/lzma, tempfile/shutil/pathlib in the work folder, and the stdlib
tests test_json, test_re, test_math, test_collections, test_queue, test_sqlite3
(tests/test_sandbox_syscalls.py runs that workload inside each sandbox and fails when a needed
call is refused). Each group says why its calls are harmless inside the sandbox.

Not allowed, on purpose: new processes (fork, vfork, clone without CLONE_THREAD: a fork bomb
never starts and nothing outlives the interpreter, so `subprocess` and `multiprocessing`'s
process pools fail; its thread pool works), sockets other than a Unix socketpair, every
metadata-changing call on files the sandbox does not own (chown, xattrs, file flags), file
locks and leases (they need no ownership and block host processes on read-only files: sqlite3
works in memory, or on a file with `?nolock=1`), inotify/fanotify/dnotify, asynchronous I/O
(io_setup, io_uring: host-wide slots), memfd, System V IPC and message queues, mounts,
namespaces, keys, BPF, ptrace and every call aimed at another process.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The default answer to a call not listed: "not implemented", so libc falls back from new
#: calls (clone3, faccessat2, statx) as it does on an older kernel.
DEFAULT_ERRNO = "ENOSYS"

# fmt: off
ALLOWED: dict[str, tuple[str, ...]] = {
    # the interpreter's own memory; RLIMIT_AS caps it
    "memory": (
        "brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "mincore", "msync",
        "get_mempolicy", "mbind", "membarrier",
    ),
    # threads and their synchronisation (clone itself is below, threads only)
    "threads": (
        "futex", "futex_waitv", "set_robust_list", "rseq", "set_tid_address", "gettid",
        "exit", "exit_group", "sched_yield", "sched_getaffinity", "sched_getparam",
        "sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min",
        "arch_prctl", "restart_syscall",
    ),
    # signals: bwrap's PID namespace, or landlock's signal scope, keeps them inside
    "signals": (
        "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "rt_sigsuspend",
        "rt_sigtimedwait", "rt_sigpending", "pause", "alarm", "setitimer", "getitimer",
        "kill", "tgkill", "tkill", "timer_create", "timer_settime", "timer_gettime",
        "timer_getoverrun", "timer_delete",
    ),
    # clocks (reading only) and sleeping
    "time": (
        "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday",
        "time", "times",
    ),
    # files: what may be opened, written or removed is landlock's and the mounts' business
    "file I/O": (
        "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
        "preadv2", "pwritev2", "close", "close_range", "lseek", "dup",
        "dup2", "dup3", "pipe", "pipe2", "sendfile", "copy_file_range", "splice", "tee",
        "fsync", "fdatasync", "ftruncate", "truncate", "fallocate", "fadvise64", "readahead",
        "umask",
    ),
    # paths: reading metadata and changing the work folder's names (landlock cannot hide
    # stat and readlink of host paths without namespaces; docs/architecture.md says so)
    "paths": (
        "stat", "lstat", "fstat", "newfstatat", "statx", "fstatfs", "access",
        "faccessat", "faccessat2", "getdents64", "getcwd", "chdir", "fchdir", "readlink",
        "readlinkat", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename",
        "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat",
    ),
    # waiting on several descriptors (RLIMIT_NOFILE caps how many an epoll or eventfd holds)
    "polling": (
        "select", "pselect6", "poll", "ppoll", "epoll_create", "epoll_create1", "epoll_ctl",
        "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2",
        "timerfd_create", "timerfd_settime", "timerfd_gettime",
    ),
    # a connected socketpair (asyncio's self-pipe): receiving, and sending without an address
    "socketpair": (
        "recvfrom", "recvmsg", "recvmmsg", "shutdown", "getsockname", "getpeername",
        "getsockopt",
    ),
    # facts about itself
    "identity": (
        "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
        "getresgid", "getgroups", "getpgrp", "getpgid", "getsid", "getrusage", "sysinfo",
        "uname", "getcpu", "getpriority", "capget", "getrandom",
    ),
    # bwrap's init (PID 1 of the sandbox, under the same filter) reaps the interpreter; it
    # has no other children, and the interpreter none at all
    "reaping": ("wait4", "waitid"),
    # the child confines itself further under bwrap (landlock as a second layer)
    "self-confinement": ("landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"),
}
# fmt: on

#: Only under bwrap, where every host file is on a read-only mount (EROFS) and the work folder
#: is the code's own tmpfs: `execve` (bwrap loads the filter before it starts the interpreter;
#: only the interpreter and its libraries are there to run), mode and time changes, and
#: reading extended attributes or a file system's statistics by path. Under landlock alone
#: they would reach the host's files.
# fmt: off
BWRAP_ONLY: tuple[str, ...] = (
    "execve", "statfs", "utime", "utimes", "futimesat", "utimensat", "getxattr", "lgetxattr",
    "fgetxattr", "listxattr", "llistxattr", "flistxattr",
)
# fmt: on

CLONE_THREAD = 0x00010000
#: CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, plus CLONE_NEWTIME
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000
CLONE_NAMESPACES |= 0x20000000 | 0x40000000 | 0x00000080
SETID_BITS = 0o6000
AF_UNIX = 1
PR_SET_NAME, PR_GET_NAME, PR_GET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 15, 16, 3, 38
PR_GET_NO_NEW_PRIVS, PR_GET_SECCOMP, PR_CAPBSET_READ, PR_SET_VMA = 39, 21, 23, 0x53564D41
#: fcntl commands: descriptor flags and duplication only. Refused: F_SETLK, F_SETLKW,
#: F_OFD_SETLK(W) (a read lock on a read-only host file made host writers wait), F_SETLEASE (a
#: read lease delayed a host open(O_WRONLY) by up to 45 s), F_NOTIFY (dnotify), F_SETPIPE_SZ
#: (pipe buffers are kernel memory), F_SETOWN/F_SETSIG (signals to others).
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_GETLK = 0, 1, 2, 3, 4, 5
F_DUPFD_CLOEXEC, F_GETPIPE_SZ, F_OFD_GETLK, F_GET_SEALS = 1030, 1032, 36, 1034
#: ioctl requests: terminal queries and non-blocking/close-on-exec flags. Refused:
#: everything else, FS_IOC_SETFLAGS (chattr through a read-only descriptor) among them.
TCGETS, TIOCGWINSZ, FIONREAD, FIONBIO = 0x5401, 0x5413, 0x541B, 0x5421
FIONCLEX, FIOCLEX = 0x5450, 0x5451


@dataclass(frozen=True)
class Allowed:
    """A call allowed only when argument `arg` masked with `mask` equals `value` (every
    listed condition together)."""

    name: str
    conditions: tuple[tuple[int, int, int], ...]  # (argument, mask, value)


def _one_of(name: str, arg: int, values: tuple[int, ...], mask: int = 0xFFFFFFFF) -> list[Allowed]:
    return [Allowed(name, ((arg, mask, value),)) for value in values]


# fmt: off
CONDITIONAL: tuple[Allowed, ...] = (
    # threads only, and never a namespace; clone3 keeps its flags in a struct: refused
    Allowed("clone", ((0, CLONE_THREAD | CLONE_NAMESPACES, CLONE_THREAD),)),
    Allowed("socketpair", ((0, 0xFFFFFFFF, AF_UNIX),)),
    Allowed("sendto", ((4, 0xFFFFFFFFFFFFFFFF, 0),)),  # no destination address
    # no set-user-ID or set-group-ID file (the mode only counts with O_CREAT/O_TMPFILE)
    Allowed("openat", ((3, SETID_BITS, 0),)),
    Allowed("open", ((2, SETID_BITS, 0),)),
    Allowed("creat", ((1, SETID_BITS, 0),)),
    # on itself only (pid 0)
    Allowed("prlimit64", ((0, 0xFFFFFFFF, 0),)),
    Allowed("sched_setaffinity", ((0, 0xFFFFFFFF, 0),)),
    Allowed("setpriority", ((0, 0xFFFFFFFF, 0), (1, 0xFFFFFFFF, 0))),  # PRIO_PROCESS, self
    *_one_of(
        "prctl",
        0,
        (
            PR_SET_NAME, PR_GET_NAME, PR_GET_DUMPABLE, PR_SET_NO_NEW_PRIVS,
            PR_GET_NO_NEW_PRIVS, PR_GET_SECCOMP, PR_CAPBSET_READ, PR_SET_VMA,
        ),
    ),
    *_one_of(
        "fcntl",
        1,
        (
            F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_GETLK, F_DUPFD_CLOEXEC,
            F_GETPIPE_SZ, F_OFD_GETLK, F_GET_SEALS,
        ),
    ),
    *_one_of("ioctl", 1, (TCGETS, TIOCGWINSZ, FIONREAD, FIONBIO, FIONCLEX, FIOCLEX)),
)
# fmt: on

#: Under bwrap only: mode changes in the code's own tmpfs, never a set-ID bit.
BWRAP_CONDITIONAL: tuple[Allowed, ...] = (
    Allowed("chmod", ((1, SETID_BITS, 0),)),
    Allowed("fchmod", ((1, SETID_BITS, 0),)),
    Allowed("fchmodat", ((2, SETID_BITS, 0),)),
)


def allowed_names(kind: str) -> set[str]:
    """Every call name a sandbox kind allows, with or without conditions."""
    names = {name for group in ALLOWED.values() for name in group}
    names |= {rule.name for rule in CONDITIONAL}
    if kind == "bwrap":
        names |= set(BWRAP_ONLY) | {rule.name for rule in BWRAP_CONDITIONAL}
    return names
