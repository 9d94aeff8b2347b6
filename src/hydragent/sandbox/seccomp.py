"""The seccomp filter every isolated sandbox child runs under, compiled once with libseccomp.

Default refuse: only the calls `syscalls.py` lists pass (some only with the arguments it
names); any other answers ENOSYS, so a syscall the kernel adds later is refused without anyone
listing it. A syscall from another ABI (32-bit entry on x86-64) kills the process.
"""

from __future__ import annotations

import errno
import functools
import tempfile
from typing import Any

from hydragent.sandbox import syscalls


class SeccompUnavailable(RuntimeError):
    """libseccomp (or its Python binding) is missing on this machine."""


@functools.cache
def filter_bpf(kind: str = "bwrap") -> bytes:
    """The compiled BPF program (raw `struct sock_filter` array) for a sandbox kind, built once
    per process. `landlock` leaves out `syscalls.BWRAP_ONLY`: without read-only mounts those
    calls would reach the host's files."""
    try:
        import pyseccomp as seccomp
    except (ImportError, OSError, RuntimeError) as error:  # pyseccomp: RuntimeError, no libseccomp
        raise SeccompUnavailable(f"pyseccomp/libseccomp cannot load: {error}") from None
    rules = seccomp.SyscallFilter(seccomp.ERRNO(getattr(errno, syscalls.DEFAULT_ERRNO)))
    names = {name for group in syscalls.ALLOWED.values() for name in group}
    conditional = list(syscalls.CONDITIONAL)
    if kind == "bwrap":
        names |= set(syscalls.BWRAP_ONLY)
        conditional += syscalls.BWRAP_CONDITIONAL
    both = names & {rule.name for rule in conditional}
    if both:  # an unconditional allow would void the conditions (a set-user-ID file got made)
        raise ValueError(f"syscalls.py allows {sorted(both)} both with and without conditions")
    for name in sorted(names):
        _allow(rules, name)
    for rule in conditional:
        _allow(
            rules,
            rule.name,
            *(
                seccomp.Arg(arg, seccomp.MASKED_EQ, mask, value)
                for arg, mask, value in rule.conditions
            ),
        )
    with tempfile.TemporaryFile() as handle:
        rules.export_bpf(handle)
        handle.seek(0)
        return handle.read()


def _allow(rules: Any, name: str, *args: Any) -> None:
    """Allow one call; a name this architecture (or libseccomp) lacks is skipped: it stays
    refused, never allowed by accident."""
    import pyseccomp as seccomp

    try:
        number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
    except OSError:
        return
    if number >= 0:
        rules.add_rule(seccomp.ALLOW, number, *args)
