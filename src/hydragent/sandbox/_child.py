"""The sandbox child: runs model-written code inside a locked-down interpreter.

Started by `hydragent.sandbox.session` as `python -I [-S] _child.py REQ_FD RESP_FD`, under
bubblewrap (namespaces, seccomp) or alone. It never imports hydragent (so nothing of the runner
leaks in) and locks itself down before the first line of untrusted code runs:

1. rlimits (memory, file size, open files, threads, CPU, no core dumps), every one with its
   hard value equal to its soft one, so that the code can never raise them;
2. landlock (when asked): files only under the granted trees, the work folder the only writable
   one; no TCP; no signals or abstract sockets outside its domain; then no_new_privs and the
   seccomp allow-list the parent compiled (when bwrap has not loaded it already);
3. policy, not a boundary: an audit hook (`sys.addaudithook`) that refuses file access outside
   the working folder, sockets, subprocesses, signals, ctypes and introspection hooks, and a
   checked namespace (AST check against dunder introspection, builtins without
   eval/exec/compile, an import allow-list). It gives the model clear messages; layers 1 and 2
   (and the namespaces around the process) hold when it is bypassed.

The wall-clock deadline and each step's CPU budget are enforced from outside by the parent.
"""

from __future__ import annotations

import ast
import builtins
import io
import json
import os
import resource
import signal
import struct
import sys
import threading
import traceback
from types import MappingProxyType

MEGABYTE = 1024 * 1024
MAX_ANSWER_CHARS = 100_000
# Modules whose only use here would be to get around the audit hook.
ALWAYS_BLOCKED_MODULES = frozenset(
    {
        "_posixsubprocess",
        "_xxsubinterpreters",
        "_testcapi",
        "_testinternalcapi",
        "cffi",
        "_cffi_backend",
    }
)
# Functions with effects outside the sandbox that raise no audit event: removed at startup
# (and their modules may not be re-created), e.g. pidfd_send_signal could kill the runner.
UNAUDITED_FUNCTIONS = {
    "posix": ("pidfd_open", "mkfifo", "mknod", "chroot"),
    "os": ("pidfd_open", "mkfifo", "mknod", "chroot"),
    "_signal": ("pidfd_send_signal",),
    "signal": ("pidfd_send_signal",),
}
SCRUBBED_MODULES = frozenset({"posix", "_signal"})
# ctypes may be imported (numpy needs it) but not used to reach raw memory or C functions.
CTYPES_ALLOWED_EVENTS = frozenset({"ctypes.dlopen", "ctypes.get_errno", "ctypes.set_errno"})
BLOCKED_BUILTINS = (
    "eval",
    "exec",
    "compile",
    "breakpoint",
    "input",
    "vars",
    "help",
    "exit",
    "quit",
)
ALLOWED_DUNDERS = frozenset({"__name__", "__doc__", "__init__", "__qualname__", "__module__"})
DENIED_EVENTS = {
    "os.system": "running shell commands",
    "os.exec": "executing programs",
    "os.spawn": "spawning processes",
    "os.posix_spawn": "spawning processes",
    "os.fork": "forking",
    "os.forkpty": "forking",
    "os.kill": "sending signals",
    "os.killpg": "sending signals",
    "signal.pthread_kill": "sending signals",
    "subprocess.Popen": "starting subprocesses",
    "pty.spawn": "spawning processes",
    "os.symlink": "creating symlinks",
    "sys.settrace": "tracing hooks",
    "sys.setprofile": "profiling hooks",
    "sys._current_frames": "frame introspection",
    "sys.addaudithook": "audit hooks",
    "gc.get_objects": "heap introspection",
    "gc.get_referrers": "heap introspection",
    "gc.get_referents": "heap introspection",
    "resource.setrlimit": "changing resource limits",
    "resource.prlimit": "changing resource limits",
    "mmap.__new__": "memory mapping",
    "cpython.remote_debugger_script": "debugger attachment",
    "setopencodehook": "import hooks",
}
PATH_EVENTS_WRITE = {
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.mkdir": (0,),
    "os.rename": (0, 1),
    "os.link": (0, 1),
    "os.truncate": (0,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.utime": (0,),
    "os.chflags": (0,),
    "os.setxattr": (0,),
    "os.removexattr": (0,),
    "shutil.rmtree": (0,),
    "shutil.copyfile": (1,),
    "shutil.copytree": (1,),
    "shutil.move": (1,),
    "shutil.make_archive": (0,),
    "os.chdir": (0,),
}
PATH_EVENTS_READ = {"os.listdir": 0, "os.scandir": 0, "os.getxattr": 0, "os.listxattr": 0}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class SandboxViolation(PermissionError):
    """Raised inside the child when code tries something the sandbox forbids."""


class FinalAnswer(BaseException):
    """Raised by final_answer() so that the current step stops right there."""

    def __init__(self, value: object) -> None:
        super().__init__(value)
        self.value = value


def read_message(fd: int) -> dict:
    header = _read_exactly(fd, 4)
    (size,) = struct.unpack(">I", header)
    return json.loads(_read_exactly(fd, size))


def _read_exactly(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            raise EOFError("parent closed the pipe")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def write_message(fd: int, message: dict) -> None:
    data = json.dumps(message, default=repr).encode()
    payload = struct.pack(">I", len(data)) + data
    while payload:
        payload = payload[os.write(fd, payload) :]


def apply_limits(config: dict) -> None:
    """Kernel-enforced limits, every one with its hard value equal to its soft one, so that
    the code cannot raise any (it raised RLIMIT_CPU's soft limit to an unlimited hard one).
    Lowering them never needs privileges; the parent re-arms RLIMIT_CPU per step where it may
    raise a hard limit, and watches the CPU time itself everywhere."""
    memory = config["memory_mb"] * MEGABYTE
    file_size = config["max_file_mb"] * MEGABYTE
    cpu = int(config["cpu_ceiling_s"])
    chosen = {
        "RLIMIT_AS": memory,
        "RLIMIT_DATA": memory,
        "RLIMIT_FSIZE": file_size,
        "RLIMIT_CORE": 0,
        "RLIMIT_NOFILE": config["max_open_files"],
        "RLIMIT_CPU": cpu,
        "RLIMIT_MEMLOCK": 0,
        "RLIMIT_MSGQUEUE": 0,
        "RLIMIT_LOCKS": 0,
        "RLIMIT_NICE": 0,
        "RLIMIT_RTPRIO": 0,
        "RLIMIT_RTTIME": 0,
        "RLIMIT_SIGPENDING": 64,
    }
    if config.get("nproc") is not None:  # the parent decides: see SandboxSpec.launch
        chosen["RLIMIT_NPROC"] = config["nproc"]
    for name in dir(resource):
        if not name.startswith("RLIMIT_"):
            continue
        which = getattr(resource, name)
        soft, hard = resource.getrlimit(which)
        value = chosen.get(name, soft)
        if hard != resource.RLIM_INFINITY and (value == resource.RLIM_INFINITY or value > hard):
            value = hard  # never above what this process already had
        resource.setrlimit(which, (value, value))
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)  # an inherited "ignore" would defeat the limit


def make_audit_hook(workdir: str, read_roots: tuple[str, ...]):
    """Build the hook from C functions and immutable values captured in its closure.

    Nothing it uses is looked up at call time, so code that patches `os.path`, `builtins` or
    this module cannot change its verdicts; if it breaks the hook instead, the hook fails closed.
    """
    import posix
    import stat as _stat

    lstat, readlink, getcwd, fspath = posix.lstat, posix.readlink, posix.getcwd, posix.fspath
    is_link, is_dir = _stat.S_ISLNK, _stat.S_ISDIR
    violation, text, as_tuple = SandboxViolation, str, tuple
    isinstance, len, OSError, bytes, int = (
        builtins.isinstance,
        builtins.len,
        builtins.OSError,
        builtins.bytes,
        builtins.int,
    )
    denied_events = MappingProxyType(dict(DENIED_EVENTS))
    write_events = MappingProxyType(dict(PATH_EVENTS_WRITE))
    read_events = MappingProxyType(dict(PATH_EVENTS_READ))
    blocked_modules = ALWAYS_BLOCKED_MODULES
    scrubbed_modules = SCRUBBED_MODULES
    ctypes_allowed = CTYPES_ALLOWED_EVENTS
    read_only_files = frozenset({"/dev/null", "/dev/urandom", "/dev/random"})
    write_flags = WRITE_FLAGS

    def resolve(path: object) -> str:
        """Like os.path.realpath, built only from captured C functions."""
        path = fspath(path)
        if isinstance(path, bytes):
            path = path.decode("utf-8", "surrogateescape")
        if not path.startswith("/"):
            path = getcwd() + "/" + path
        pending = path.split("/")[::-1]
        parts: list[str] = []
        hops = 0
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            candidate = "/" + "/".join([*parts, part])
            try:
                mode = lstat(candidate).st_mode
            except OSError:
                parts.append(part)
                continue
            if is_link(mode):
                hops += 1
                if hops > 40:
                    raise violation("sandbox blocked a symlink loop")
                target = readlink(candidate)
                if target.startswith("/"):
                    parts = []
                pending.extend(target.split("/")[::-1])
            else:
                parts.append(part)
        return "/" + "/".join(parts)

    real_workdir = resolve(workdir)
    roots = as_tuple(resolve(root) for root in read_roots)

    def inside(path: str, bases: tuple[str, ...]) -> bool:
        for base in bases:  # noqa: SIM110 - `any` would be a builtin looked up at call time
            if path == base or path.startswith(base + "/"):
                return True
        return False

    def deny(what: str) -> None:
        raise violation("sandbox blocked " + what)

    def checked_path(path: object) -> str:
        if isinstance(path, int) or path is None:
            deny(f"using file descriptor {path!r}: pass a path inside the working folder")
        return resolve(path)

    def check_open(path: object, mode: object, flags: object) -> None:
        real = checked_path(path)
        if isinstance(mode, text):
            writing = "w" in mode or "a" in mode or "x" in mode or "+" in mode
        else:
            writing = isinstance(flags, int) and (flags & write_flags) != 0
        if inside(real, (real_workdir,)):
            return
        if writing:
            if real != "/dev/null":
                deny(f"writing {path!r}: only the working folder is writable")
            return
        if real in read_only_files:
            return
        try:
            directory = is_dir(lstat(real).st_mode)
        except OSError:
            directory = False
        if not inside(real, roots) or directory:
            deny(f"reading {path!r}: only files in the working folder are readable")

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            check_open(args[0], args[1], args[2])
        elif event == "import":
            if text(args[0]).split(".")[0] in blocked_modules:
                deny(f"importing {args[0]!r}")
            if text(args[0]) in scrubbed_modules:
                deny(f"re-importing {args[0]!r}")
        elif event.startswith("socket."):
            deny("network access (" + event + ")")
        elif event.startswith("ctypes.") and event not in ctypes_allowed:
            deny("raw memory and C calls through ctypes (" + event + ")")
        elif event in write_events:
            for index in write_events[event]:
                if index < len(args) and not inside(checked_path(args[index]), (real_workdir,)):
                    deny(f"{event} on {args[index]!r}: outside the working folder")
        elif event in read_events:
            if args[0] is not None and not inside(checked_path(args[0]), (real_workdir, *roots)):
                deny(f"listing {args[0]!r}: outside the working folder")
        elif event == "object.__setattr__":
            if text(args[1]) in ("__code__", "__globals__", "__closure__", "__builtins__"):
                deny("setting " + text(args[1]))
        elif event in denied_events:
            deny(denied_events[event] + " (" + event + ")")

    return hook


def scrub_unaudited_functions() -> None:
    """Remove functions the audit hook cannot see, everywhere Python keeps them."""
    import _imp

    removed = []
    for module_name, names in UNAUDITED_FUNCTIONS.items():
        namespace = vars(sys.modules[module_name])
        removed += [namespace.pop(name) for name in names if name in namespace]
    for registry in ("supports_dir_fd", "supports_fd", "supports_follow_symlinks"):
        for function in removed:
            getattr(os, registry).discard(function)
    real_create_builtin = _imp.create_builtin

    def create_builtin(spec):
        if spec.name in SCRUBBED_MODULES:
            raise SandboxViolation(f"sandbox blocked re-creating module {spec.name!r}")
        return real_create_builtin(spec)

    _imp.create_builtin = create_builtin


class CappedOutput(io.TextIOBase):
    """Keeps the first `limit` characters and counts the rest, so huge prints cost no memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        text = str(text)
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def text(self) -> str:
        out = "".join(self.parts)
        if self.dropped:
            out += f"\n[output truncated: {self.dropped} more characters]"
        return out


def check_code(tree: ast.AST) -> None:
    """Refuse dunder introspection (`__subclasses__`, `__globals__`, `__builtins__`, ...)."""
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.Name):
            name = node.id
        if name and name.startswith("__") and name.endswith("__") and name not in ALLOWED_DUNDERS:
            raise SandboxViolation(
                f"sandbox blocked access to {name!r} (line {node.lineno}): dunder introspection "
                "is not allowed"
            )


def make_namespace(
    authorized: frozenset[str] | None, tool_names: list[str], resp_fd: int, req_fd: int
) -> dict:
    real_import = builtins.__import__
    real_getattr, real_setattr, real_delattr, real_hasattr = getattr, setattr, delattr, hasattr
    namespace: dict = {"__name__": "__sandbox__"}

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if globals is namespace or globals is None:
            top = name.split(".")[0]
            if level or (authorized is not None and top not in authorized):
                allowed = ", ".join(sorted(authorized or ())) or "none"
                raise ImportError(
                    f"import of {name!r} is not allowed in the sandbox; authorized imports: "
                    f"{allowed}"
                )
        return real_import(name, globals, locals, fromlist, level)

    def check_name(name: object) -> None:
        if isinstance(name, str) and name.startswith("__") and name not in ALLOWED_DUNDERS:
            raise SandboxViolation(f"sandbox blocked access to attribute {name!r}")

    def safe_getattr(obj, name, *default):
        check_name(name)
        return real_getattr(obj, name, *default)

    def safe_setattr(obj, name, value):
        check_name(name)
        return real_setattr(obj, name, value)

    def safe_delattr(obj, name):
        check_name(name)
        return real_delattr(obj, name)

    def safe_hasattr(obj, name):
        check_name(name)
        return real_hasattr(obj, name)

    def blocked(name: str):
        def refuse(*args, **kwargs):
            raise SandboxViolation(
                f"sandbox blocked {name}(): running built strings is not allowed"
            )

        return refuse

    def final_answer(answer):
        raise FinalAnswer(answer)

    protocol_lock = threading.Lock()  # tool calls from threads must not interleave

    def make_tool(tool_name: str):
        def call_tool(*args, **kwargs):
            with protocol_lock:
                write_message(
                    resp_fd,
                    {"type": "tool_call", "name": tool_name, "args": list(args), "kwargs": kwargs},
                )
                reply = read_message(req_fd)
            if reply.get("error"):
                raise RuntimeError(reply["error"])
            return reply.get("result")

        call_tool.__name__ = tool_name
        return call_tool

    safe_builtins = dict(vars(builtins))
    for name in BLOCKED_BUILTINS:
        safe_builtins[name] = blocked(name)
    safe_builtins.update(
        __import__=guarded_import,
        getattr=safe_getattr,
        setattr=safe_setattr,
        delattr=safe_delattr,
        hasattr=safe_hasattr,
    )
    builtins.__import__ = guarded_import
    namespace["__builtins__"] = safe_builtins
    for tool_name in tool_names:
        namespace[tool_name] = make_tool(tool_name)
    namespace["final_answer"] = final_answer
    return namespace


def run_code(code: str, namespace: dict, max_output_chars: int, policy: bool = True) -> dict:
    """Run one step; the value of a trailing expression is returned like a REPL would."""
    output = CappedOutput(max_output_chars)
    result: dict = {
        "type": "result",
        "error": None,
        "value": None,
        "final_answer": None,
        "is_final_answer": False,
    }
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = output
    try:
        tree = ast.parse(code, filename="<code>")
        if policy:
            check_code(tree)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        builtins.exec(builtins.compile(tree, "<code>", "exec"), namespace)
        if last is not None:
            expression = ast.Expression(last.value)
            value = builtins.eval(builtins.compile(expression, "<code>", "eval"), namespace)
            if value is not None:
                result["value"] = repr(value)[:max_output_chars]
    except FinalAnswer as answer:
        result["is_final_answer"] = True
        result["final_answer"] = _jsonable(answer.value)
    except MemoryError:
        result["error"] = "MemoryError: the sandbox memory limit was exceeded"
    except SyntaxError as error:
        result["error"] = f"SyntaxError: {error.msg} (line {error.lineno})"
    except BaseException as error:  # the model's code may raise anything, SystemExit included
        result["error"] = _describe(error)
    finally:
        sys.stdout, sys.stderr = saved
    result["stdout"] = output.text()
    result["output_truncated"] = bool(output.dropped)
    return result


def _describe(error: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == "<code>"]
    where = f" (line {frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}{where}: {error}"


def _jsonable(value: object) -> object:
    """The value itself when JSON can carry it, else its repr; huge answers are cut."""
    try:
        size = len(json.dumps(value))
    except (TypeError, ValueError, RecursionError):
        value, size = repr(value), 0
    if size > MAX_ANSWER_CHARS or (isinstance(value, str) and len(value) > MAX_ANSWER_CHARS):
        return (value if isinstance(value, str) else repr(value))[:MAX_ANSWER_CHARS]
    return value


# landlock (include/uapi/linux/landlock.h); the syscall numbers are the same on every arch
LANDLOCK_CREATE_RULESET, LANDLOCK_ADD_RULE, LANDLOCK_RESTRICT_SELF = 444, 445, 446
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1, 2, 4, 8
FS_MAKE_CHAR, FS_MAKE_SOCK, FS_MAKE_FIFO, FS_MAKE_BLOCK = 1 << 6, 1 << 9, 1 << 10, 1 << 11
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 1, 38, 22, 2
PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 28, 47, 4
# SECBIT_NOROOT, SECBIT_NO_SETUID_FIXUP, SECBIT_KEEP_CAPS_LOCKED, SECBIT_NO_CAP_AMBIENT_RAISE,
# each with its lock: uid 0 gains nothing on exec and nothing can be raised again
SECURE_NO_ROOT_LOCKED = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80


def _libc():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return ctypes, libc


def _check(result: int, what: str) -> int:
    if result < 0:
        import ctypes

        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


def apply_landlock(rules: dict) -> None:
    """Confine this process (and the threads it starts later) to the granted paths, with no
    TCP and no signals or abstract sockets reaching outside its landlock domain."""
    ctypes, libc = _libc()
    abi = _check(libc.syscall(LANDLOCK_CREATE_RULESET, None, 0, 1), "landlock")
    handled = (1 << 13) - 1  # ABI 1: bits 0-12
    handled |= (1 << 13) * (abi >= 2) | (1 << 14) * (abi >= 3) | (1 << 15) * (abi >= 5)

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    attr = RulesetAttr(handled, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = _check(libc.syscall(LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0), "ruleset")
    file_rights = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | (1 << 14) * (abi >= 3)
    read_only = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
    work = handled & ~(FS_EXECUTE | FS_MAKE_CHAR | FS_MAKE_BLOCK | FS_MAKE_SOCK | FS_MAKE_FIFO)
    devices = FS_READ_FILE | FS_WRITE_FILE
    grants = [(p, read_only) for p in rules["read"]] + [(p, work) for p in rules["write"]]
    grants += [(p, devices) for p in rules["devices"]]
    for path, allowed in grants:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue  # absent here: nothing to grant
        try:
            if not os.path.isdir(path):
                allowed &= file_rights
            rule = PathBeneath(allowed & handled, fd)
            _check(libc.syscall(LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0), path)
        finally:
            os.close(fd)
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(libc.syscall(LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    os.close(ruleset)


def drop_capabilities() -> None:
    """No capabilities, ever again: outside a user namespace a root runner's child would
    otherwise keep root's (set the host's clock or hostname, for instance)."""
    ctypes, libc = _libc()
    if os.getuid() == 0:  # needs CAP_SETPCAP, which only root has here
        for capability in range(64):
            libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0)  # EINVAL past the last one
        _check(libc.prctl(PR_SET_SECUREBITS, SECURE_NO_ROOT_LOCKED, 0, 0, 0), "securebits")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [(n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")]

    empty = (Data * 2)()
    _check(libc.capset(ctypes.byref(Header(0x20080522, 0)), empty), "capset")


def apply_seccomp(fd: int) -> None:
    """Load the parent's compiled BPF filter (when bwrap has not: the landlock-only mode)."""
    ctypes, libc = _libc()
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    program = b"".join(chunks)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog)), "seccomp")


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when the runner dies (what bwrap's --die-with-parent does)."""
    _, libc = _libc()
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    if os.getppid() != parent:  # the runner died before the line above
        os._exit(1)


def main() -> None:
    req_fd, resp_fd = int(sys.argv[1]), int(sys.argv[2])
    if len(sys.argv) > 3:
        die_with_parent(int(sys.argv[3]))
    sys.path[:] = [
        p
        for p in sys.path
        if p and os.path.realpath(p) != os.path.dirname(os.path.realpath(__file__))
    ]
    config = read_message(req_fd)
    sys.path += config.get("site_paths") or []
    workdir = config["workdir"]
    os.chdir(workdir)
    read_roots = tuple(os.path.realpath(p) for p in sys.path if p and os.path.isdir(p))
    authorized = config["authorized_imports"]
    authorized = None if authorized is None else frozenset(authorized)
    apply_limits(config)
    if config.get("landlock"):
        apply_landlock(config["landlock"])
    if config.get("seccomp_fd") is not None:  # landlock alone: no user namespace around us
        drop_capabilities()
        apply_seccomp(config["seccomp_fd"])
    policy = config.get("policy", True)
    if policy:
        namespace = make_namespace(authorized, config["tool_names"], resp_fd, req_fd)
        scrub_unaudited_functions()
        sys.addaudithook(make_audit_hook(workdir, read_roots))
    else:  # tests of the kernel boundary alone: the code gets the real interpreter
        namespace = make_namespace(None, config["tool_names"], resp_fd, req_fd)
        namespace["__builtins__"] = builtins
    write_message(resp_fd, {"type": "ready"})
    while True:
        try:
            request = read_message(req_fd)
        except EOFError:
            return
        result = run_code(request["code"], namespace, config["max_output_chars"], policy)
        write_message(resp_fd, result)


if __name__ == "__main__":
    main()
