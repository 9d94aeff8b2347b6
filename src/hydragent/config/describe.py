"""What `validate` reports beside the config, from the Assembly its check made."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydragent.config.assemble import Assembly, unsent_lines


def describe(assembly: Assembly) -> Mapping[str, Any]:
    """What `validate` reports beside the config: the backend and what its instance can do
    (grammars, features, the helper groups that fit it), the sandbox, the samples and the
    keys forwarded to every completion call."""
    import dataclasses

    from hydragent.models.registry import fits, helper_groups

    caps = assembly.capabilities
    features = []
    if caps is not None and dataclasses.is_dataclass(caps):
        features = [f.name for f in dataclasses.fields(caps) if getattr(caps, f.name) is True]
    model = assembly.model
    helpers = [g for g in helper_groups() if model and fits(g, type(model))]
    return {
        "backend": assembly.backend,
        "grammars": sorted(caps.grammars) if caps is not None else [],
        "features": features,
        "helpers": helpers,
        "sandbox": _sandbox_shown(assembly.sandbox),
        "samples": len(assembly.samples),
        "forwarded": assembly.forwarded,
        "unsent": unsent_lines(assembly.unsent_generation, assembly.backend),
    }


def _sandbox_shown(spec: Any) -> str | None:
    """The sandbox as validate names it: the unsafe one says so, landlock's names what the
    code can see."""
    return None if spec is None else spec.summary


def ok_line(assembly: Assembly) -> str:
    """validate's last line: the backend and what it can do, the samples, the sandbox, what is
    forwarded, whether something listens at a local endpoint, and settings not sent."""
    facts = describe(assembly)
    notes = [
        f"backend {facts['backend']} (grammars: {', '.join(facts['grammars']) or 'none'}; "
        f"{', '.join(facts['features']) or 'no extra features'}; "
        f"helper groups: {', '.join(facts['helpers'])})",
        f"{facts['samples']} samples",
        f"sandbox: {facts['sandbox'] or 'not needed (nothing runs model-written code)'}",
    ]
    if facts["forwarded"]:
        notes.append(f"forwarded to every completion call: {', '.join(facts['forwarded'])}")
    notes += _listener_notes(assembly.config)
    notes += facts["unsent"]
    return f"# config OK; {'; '.join(notes)}"


def _listener_notes(config: Mapping[str, Any]) -> list[str]:
    """Each local endpoint of the model (and judge): does something listen there?"""
    from hydragent.config.endpoints import ENDPOINT_KEYS, listener_note

    notes = []
    for role in ("model", "judge"):
        node = config.get(role)
        for key in ENDPOINT_KEYS if isinstance(node, dict) else ():
            note = listener_note(str(node[key])) if node.get(key) else None
            if note:
                notes.append(f"{role}.{key}: {note}")
    return notes
