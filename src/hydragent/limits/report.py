"""What a job says about its limits: the console line, and the message of a run whose budget
ran out (with the command that continues it)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from hydragent.limits.stores import auto_folder


def limits_line(report: dict[str, Any]) -> str:
    """`limits: 160 requests (58.3/min), 0 429s, 12.3 s waiting on limits, $0.012 of $1`."""
    spent = f"${report['spent_usd']:.6g} spent"
    if report.get("budget_usd") is not None:
        spent += f" (store: ${report['store_spent_usd']:.6g} of ${report['budget_usd']:g})"
    return (
        f"limits [{report['key']}]: {report['requests']} requests "
        f"({report['requests_per_minute'] or 0:g}/min), {report['rate_limited']} 429s, "
        f"{report['waited_s']:g} s waiting on limits, {spent}"
    )


_REPLACED = ("hydra.run.dir=", "hydra.sweep.dir=", "hydra.mode=", "limits.budget_usd=")


def _saved_overrides(sweep_dir: Path) -> list[str] | None:
    """The sweep's own overrides (`hydra/launcher=joblib`, `seed=0,1,2`), from the
    multirun.yaml Hydra wrote at its root."""
    file = sweep_dir / "multirun.yaml"
    if not file.is_file():
        return None
    from omegaconf import OmegaConf

    try:
        saved = OmegaConf.select(OmegaConf.load(file), "hydra.overrides")
    except Exception:  # an unreadable file: the job's own overrides still continue it
        return None
    if saved is None:
        return None
    return [str(o) for o in [*(saved.get("hydra") or []), *(saved.get("task") or [])]]


def _hydra_overrides() -> list[str]:
    """This run's `hydra/...` and `hydra.*` overrides (a launcher, a callback setting)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return [str(o) for o in HydraConfig.get().overrides.hydra]
    except (ImportError, ValueError):
        return []


def budget_message(
    report: dict[str, Any], counts: dict[str, int], output_dir: Path, overrides: list[str]
) -> str:
    """The run's exit message when the budget ran out: spend, budget, and the command that
    continues: the same overrides (a sweep's own, with its launcher), the same folder and
    twice the budget. Samples already ok are kept: config_hash leaves `limits` out."""
    from hydragent.secrets import mask_override

    budget = float(report["budget_usd"])
    larger = f"limits.budget_usd={budget * 2 if budget else 1:g}"
    root = auto_folder(output_dir)
    if root != Path(output_dir):
        given = _saved_overrides(root) or overrides
        head, folder = ["hydragent", "run", "-m"], f"hydra.sweep.dir={root}"
    else:
        given = [*_hydra_overrides(), *overrides]
        head, folder = ["hydragent", "run"], f"hydra.run.dir={output_dir}"
    kept = [mask_override(o) for o in given if not o.startswith(_REPLACED)]
    left = counts["error"] + counts["not_run"]
    return (
        f"budget exhausted: ${report['store_spent_usd']:.6g} spent (every job on "
        f"{report['store']}) of limits.budget_usd={budget:g}; {left} of {counts['total']} "
        f"samples not run (cause: BudgetExhausted). Continue with: "
        f"{shlex.join([*head, *kept, folder, larger])}"
    )


def sweep_limits(reports: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The sweep's totals over its jobs' `limits` (None when no job had limits): requests,
    429s and time waiting add up; the spend is each store's ledger, counted once per store."""
    jobs = [r for r in reports if r]
    if not jobs:
        return None
    stores: dict[str, float] = {}  # each store's ledger, as the job that ended last saw it
    for report in jobs:
        stores[report["store"]] = max(stores.get(report["store"], 0.0), report["store_spent_usd"])
    budgets = {r["budget_usd"] for r in jobs if r.get("budget_usd") is not None}
    return {
        "jobs": len(jobs),
        "requests": sum(r["requests"] for r in jobs),
        "rate_limited": sum(r["rate_limited"] for r in jobs),
        "waited_s": round(sum(r["waited_s"] for r in jobs), 3),
        "spent_usd": round(sum(r["spent_usd"] for r in jobs), 8),
        "store_spent_usd": round(sum(stores.values()), 8),
        "budget_usd": max(budgets) if budgets else None,
        "budget_exhausted": any(r.get("budget_exhausted") for r in jobs),
    }


def sweep_line(total: dict[str, Any]) -> str:
    """The report's line for a sweep's limits."""
    budget = f" of ${total['budget_usd']:g}" if total["budget_usd"] is not None else ""
    return (
        f"limits over {total['jobs']} jobs: {total['requests']} requests, "
        f"{total['rate_limited']} 429s, {total['waited_s']:g} s waiting on limits, "
        f"${total['spent_usd']:.6g} spent{budget}"
    )
