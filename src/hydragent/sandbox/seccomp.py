"""The seccomp filter every isolated sandbox child runs under, compiled once with libseccomp.

Default allow, with a deny list of what model-written Python never needs: the kernel's
debugging, mounting, namespace, key, module and BPF interfaces, calls that reach other processes
(pidfd, process_vm, kcmp, and the scheduling and priority calls aimed at another pid), new
processes (only threads may be created: `clone` must carry CLONE_THREAD, so a fork bomb cannot
start), System V IPC and message queues (host-wide outside bwrap), and sockets (`socket()` is
refused; `socketpair()` stays, which asyncio needs, but may send nowhere else), and
set-user-ID or set-group-ID modes on files.
Refused calls fail with EPERM (ENOSYS for `clone3`, so libc falls back to `clone`, which the
filter can inspect); a syscall from another ABI (32-bit entry on x86-64) kills the process.
"""

from __future__ import annotations

import errno
import functools
import platform
import tempfile
from typing import Any

CLONE_THREAD = 0x00010000
REFUSED = (
    # debugging and other processes' memory
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_open",
    "pidfd_getfd",
    "pidfd_send_signal",
    "perf_event_open",
    # mounts, namespaces, roots
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "setns",
    "unshare",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "open_by_handle_at",
    "name_to_handle_at",
    # the kernel itself
    "bpf",
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "syslog",
    "acct",
    "quotactl",
    "userfaultfd",
    "lookup_dcookie",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "personality",
    "iopl",
    "ioperm",
    "mknod",
    "mknodat",
    # the host's clock and names (a root runner's landlock-only child drops its capabilities,
    # and refusing them here does not depend on that)
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    # System V IPC and POSIX message queues: outside bwrap's IPC namespace (landlock alone)
    # they are the host's, so objects made here outlived the run and the runner's user's
    # existing ones could be attached; landlock does not cover them
    "shmget",
    "shmat",
    "shmctl",
    "shmdt",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
    # anonymous memory files: RLIMIT_AS does not count them
    "memfd_create",
    "memfd_secret",
    # new processes and network
    "fork",
    "vfork",
    "execveat",
    "socket",
    # addressing from a socketpair() socket: a datagram one could sendto() (or connect() to)
    # any Unix socket path it can name, which landlock does not cover (a host server got
    # the message); `sendto` stays for connected sends, the address argument refused below
    "connect",
    "bind",
    "sendmsg",
    "sendmmsg",
)
# Calls that take a target pid (or "who") as their first argument: only 0 (= itself) passes.
SELF_ONLY = (
    "sched_setaffinity",
    "sched_setscheduler",
    "sched_setparam",
    "sched_setattr",
    "prlimit64",
    "migrate_pages",
    "move_pages",
    "get_robust_list",
)
# Calls whose mode argument (by position) could make a set-user-ID or set-group-ID file: in a
# host work folder (landlock alone, or a bound one) that file is the runner's, root's for a
# root runner, so any local user could run what the code wrote as root. Landlock does not
# cover chmod.
SETID_MODE_ARG = {"chmod": 1, "fchmod": 1, "fchmodat": 2, "fchmodat2": 2, "creat": 1}
SETID_MODE_ARG |= {"open": 2, "openat": 3}  # the mode only counts with O_CREAT/O_TMPFILE
SETID_BITS = (0o4000, 0o2000)
# Without a mount namespace (landlock alone) the host's files are in reach of calls landlock
# does not cover: metadata. A root runner's child owns every root-owned host file, so chmod,
# fchmod (on a file it may only read, e.g. libc), chown, utimes and xattr calls could make
# /etc/passwd or a system library world-writable. Under bwrap the host's files are read-only
# mounts and the work folder is the child's own, so these stay allowed there.
CHMOD_CALLS = ("chmod", "fchmod", "fchmodat", "fchmodat2")
# Under bwrap a root runner's child still owns the device nodes bound into its /dev: they are
# the host's own inodes (its /dev/null, /dev/urandom, /dev/tty), so chmod went through to them.
HOST_METADATA = (
    *CHMOD_CALLS,
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "utime",
    "utimes",
    "futimesat",
    "utimensat",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "setxattrat",
    "removexattrat",
)
# Linux 6.13's calls, unknown to older libseccomp releases (which name them -1).
NEWER_SYSCALLS_X86_64 = {"setxattrat": 463, "removexattrat": 466}
# (which, who) calls: only "this process" passes. `who` 0 with PRIO_USER would mean "every
# process of uid 0", so `which` must be the per-process one too.
SELF_ONLY_WHICH = {"setpriority": 0, "ioprio_set": 1}  # PRIO_PROCESS, IOPRIO_WHO_PROCESS


class SeccompUnavailable(RuntimeError):
    """libseccomp (or its Python binding) is missing on this machine."""


@functools.cache
def filter_bpf(also_refused: tuple[str, ...] = ()) -> bytes:
    """The compiled BPF program (raw `struct sock_filter` array), built once per process.
    `also_refused`: more calls to refuse (`refused_for` says which a sandbox needs)."""
    try:
        import pyseccomp as seccomp
    except (ImportError, OSError, RuntimeError) as error:  # pyseccomp: RuntimeError, no libseccomp
        raise SeccompUnavailable(f"pyseccomp/libseccomp cannot load: {error}") from None
    refuse = seccomp.ERRNO(errno.EPERM)
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in REFUSED:
        _add(rules, refuse, name)
    _add(rules, seccomp.ERRNO(errno.ENOSYS), "clone3")
    _add(rules, refuse, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_THREAD, 0))
    _add(rules, refuse, "sendto", seccomp.Arg(4, seccomp.NE, 0))  # a destination address
    for name, position in SETID_MODE_ARG.items():
        for bit in SETID_BITS:
            _add(rules, refuse, name, seccomp.Arg(position, seccomp.MASKED_EQ, bit, bit))
    _add(rules, seccomp.ERRNO(errno.ENOSYS), "openat2")  # its mode sits in a struct
    for name in also_refused:
        _add(rules, refuse, name)
    for name in SELF_ONLY:
        _add(rules, refuse, name, seccomp.Arg(0, seccomp.NE, 0))
    for name, which in SELF_ONLY_WHICH.items():
        _add(rules, refuse, name, seccomp.Arg(0, seccomp.NE, which))
        _add(rules, refuse, name, seccomp.Arg(1, seccomp.NE, 0))
    with tempfile.TemporaryFile() as handle:
        rules.export_bpf(handle)
        handle.seek(0)
        return handle.read()


def refused_for(kind: str, runner_uid: int) -> tuple[str, ...]:
    """The calls a sandbox kind refuses on top of the common list: landlock alone sees the
    host's files, so every metadata call; bwrap under a root runner shares the host's device
    nodes with its child, which owns them, so chmod."""
    if kind == "landlock":
        return HOST_METADATA
    return CHMOD_CALLS if runner_uid == 0 else ()


def _add(rules: Any, action: int, name: str, *args: Any) -> None:
    """Add one rule; a syscall this architecture lacks (e.g. `fork` on aarch64) is skipped."""
    import pyseccomp as seccomp

    try:
        number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
    except OSError:
        return
    if number < 0:  # newer than this libseccomp: by number where we know it
        number = NEWER_SYSCALLS_X86_64.get(name, -1) if platform.machine() == "x86_64" else -1
        if number < 0:
            return
    rules.add_rule(action, number, *args)
