"""Choosing the sandbox: `resolve(cfg.sandbox)` turns the config node into a `SandboxSpec`
checked to work here (a real probe step per kind, cached per process), failing closed with
`SandboxUnavailable`. It sits above the session: the session runs the spec it is given and
never chooses one itself."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from hydragent.sandbox.bwrap import FIX, BwrapMissing, tool
from hydragent.sandbox.isolation import LANDLOCK_MIN_ABI, SandboxConfig, SandboxSpec, landlock_abi
from hydragent.sandbox.protocol import SandboxError, SandboxResult
from hydragent.sandbox.session import PythonSession

log = logging.getLogger(__name__)


class SandboxUnavailable(ValueError):
    """The chosen isolation cannot run on this machine; the message names what and the fix."""


def resolve(node: Mapping[str, Any] | SandboxConfig | None = None) -> SandboxSpec:
    """The sandbox a run gets, checked to work on this machine, or `SandboxUnavailable`."""
    try:
        config = (
            node if isinstance(node, SandboxConfig) else SandboxConfig.model_validate(node or {})
        )
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "sandbox"
        raise SandboxUnavailable(f"sandbox.{where}: {first['msg']}") from None
    if config.kind == "process":
        log.warning(
            "sandbox=process: model-written code runs behind an in-process guard only, which is "
            "not a security boundary; use sandbox=auto (bubblewrap) for untrusted code"
        )
        return SandboxSpec("process", config)
    kinds = ("bwrap", "landlock") if config.kind == "auto" else (config.kind,)
    problems = []
    for kind in kinds:
        problem = probe(kind)
        if problem is None:
            return SandboxSpec(kind, config)
        problems.append(f"{kind}: {problem}")
    raise SandboxUnavailable(
        f"sandbox={config.kind}: no kernel isolation available ({'; '.join(problems)}); fix: {FIX}"
    )


def as_spec(sandbox: SandboxSpec | Mapping[str, Any] | None) -> SandboxSpec:
    """What `sandbox=` constructor arguments accept: a resolved spec, a config node, or None
    (= `resolve({"kind": "auto"})`, which fails closed)."""
    return sandbox if isinstance(sandbox, SandboxSpec) else resolve(sandbox)


@functools.cache
def probe(kind: str) -> str | None:
    """Why `kind` cannot run here (None = it ran a real probe step), cached per process."""
    from hydragent.sandbox.seccomp import SeccompUnavailable, filter_bpf

    if not sys.platform.startswith("linux"):
        return "needs Linux"
    try:
        filter_bpf(kind)
    except SeccompUnavailable as error:
        return f"{error} (install libseccomp2 and pyseccomp)"
    if kind == "bwrap":
        try:
            for name in ("bwrap", "unshare", "mount", "sh"):
                tool(name)
        except BwrapMissing as error:
            return "bubblewrap is not installed" if "bwrap" in str(error) else str(error)
    if kind == "landlock" and landlock_abi() < LANDLOCK_MIN_ABI:
        return f"the kernel's landlock ABI is {landlock_abi()}, below {LANDLOCK_MIN_ABI}"
    try:
        with PythonSession(sandbox=SandboxSpec(kind), timeout_s=30) as session:  # type: ignore[arg-type]
            result = session.run("1 + 1")
    except (SandboxError, BwrapMissing) as error:
        detail = str(error)
        if "namespace" in detail or "uid map" in detail or "Operation not permitted" in detail:
            return f"user namespaces are not available to this user ({detail[-200:]})"
        return detail[-300:]
    if result.value != "2":
        return f"the probe step failed: {result.error or result.stdout}"
    return None


def run_python(
    code: str,
    *,
    timeout_s: float = 10,
    memory_mb: int = 512,
    authorized_imports: list[str] | None = None,
    max_output_chars: int = 10000,
    workdir: str | None = None,
    sandbox: SandboxSpec | Mapping[str, Any] | None = None,
    policy: bool = True,
) -> SandboxResult:
    """Run one piece of code in a fresh sandbox process and clean up after it. `sandbox`
    None resolves `sandbox=auto`."""
    with PythonSession(
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        authorized_imports=authorized_imports,
        max_output_chars=max_output_chars,
        workdir=workdir,
        sandbox=as_spec(sandbox),
        policy=policy,
    ) as session:
        return session.run(code)
