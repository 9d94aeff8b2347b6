"""Is job B better than job A on the same samples? Paired comparisons of per-sample scores.

Two jobs run on the same sample ids are compared sample by sample: the difference b - a of
each sample's score, its mean, and a confidence interval. Pairing removes the spread between
easy and hard samples, so it finds differences that two independent CIs hide. The interval is
the paired t interval (scipy's `ttest_rel`), or, when samples belong to groups (several
questions from one document, one problem in several variants), a cluster-robust one
(statsmodels OLS on a constant with cluster standard errors, t with G-1 degrees of freedom):
samples in one group are not independent, and the plain SE would be too small. Binary scores
also get McNemar's test (statsmodels), exact below 25 discordant pairs. A CI that holds 0
reads "not distinguishable".

Only samples scored in both jobs are paired: an errored sample has no score (it is counted
apart, never as 0), so its pair is left out and counted in `excluded`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

EXACT_BELOW = 25  # discordant pairs under which McNemar uses the exact binomial test


@dataclass(frozen=True)
class McNemar:
    """McNemar's test on the discordant pairs of two binary scores."""

    a_only: int  # samples A got right and B got wrong
    b_only: int  # samples B got right and A got wrong
    statistic: float
    p_value: float
    exact: bool


@dataclass(frozen=True)
class PairedDifference:
    """Mean of b - a over paired samples, with its CI; `distinguishable` when the CI excludes 0."""

    metric: str
    n: int
    mean_a: float
    mean_b: float
    diff: float
    stderr: float
    ci_low: float
    ci_high: float
    p_value: float
    confidence: float
    method: str
    clusters: int | None = None
    excluded: int = 0
    mcnemar: McNemar | None = None

    @property
    def distinguishable(self) -> bool:
        return bool(self.ci_low > 0 or self.ci_high < 0)

    @property
    def verdict(self) -> str:
        if not self.distinguishable:
            return "not distinguishable"
        return f"B {'higher' if self.diff > 0 else 'lower'} by {abs(self.diff):.3g}"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["distinguishable"] = self.distinguishable
        data["verdict"] = self.verdict
        return {k: _json_number(v) for k, v in data.items()}


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_number(v) for k, v in value.items()}
    return value


def mean_ci(
    values: Sequence[float], confidence: float = 0.95, *, bounded: bool = True
) -> dict[str, Any]:
    """Mean, standard error and confidence interval of one job's values (scored samples
    only): the one computation the CLI table, summary.json, the report and the viewer (its
    pooled rows too) all show.

    A score lives in [0, 1], so its interval must too. Pass/fail scores get the Wilson score
    interval (scipy's `binomtest(...).proportion_ci(method="wilson")`, in closed form on the
    normal quantile): it does not collapse to a point at 0 of n or n of n, as the t interval
    does. Fractions (partial credit, scores averaged over replicates) get the t interval on the
    logit scale, mapped back: a t interval on the raw scale reaches past 1 for a mean near 1
    (0.875 ± 0.125 on four samples gave [0.48, 1.27]). Values with no such bound
    (`bounded=False`, e.g. latencies), or outside [0, 1], get the plain t interval.

    Every run's summary calls this once per metric, so it needs only the standard library and,
    for a t quantile, `scipy.special` (0.3 s to import, where `scipy.stats` takes 1.3 s of a
    run's start-up or teardown: docs/benchmarks.md, P1-scale)."""
    n = len(values)
    if n == 0:
        return {"mean": None, "ci_low": None, "ci_high": None, "stderr": None, "n": 0}
    data = [float(value) for value in values]
    mean = math.fsum(data) / n
    if n < 2:
        return {"mean": mean, "ci_low": None, "ci_high": None, "stderr": None, "n": n}
    stderr = math.sqrt(math.fsum((value - mean) ** 2 for value in data) / (n - 1) / n)
    in_unit = bounded and all(0.0 <= value <= 1.0 for value in data)
    if in_unit and all(value in (0.0, 1.0) for value in data):
        low, high = _wilson(sum(data), n, confidence)
    elif not stderr:
        low = high = mean
    elif in_unit:  # a fraction with spread: 0 < mean < 1, so its logit is finite
        half = _t_quantile(confidence, n - 1) * stderr / (mean * (1 - mean))
        centre = math.log(mean / (1 - mean))
        low, high = _expit(centre - half), _expit(centre + half)
    else:
        half = _t_quantile(confidence, n - 1) * stderr
        low, high = mean - half, mean + half
    return {"mean": mean, "ci_low": float(low), "ci_high": float(high), "stderr": stderr, "n": n}


def _wilson(successes: float, n: int, confidence: float) -> tuple[float, float]:
    """The Wilson score interval of `successes` in `n` (no continuity correction). Its ends
    are exact where rounding could push them past the proportion: 0 at 0 of n, 1 at n of n
    (a plot's error bar from a low end a hair above the mean is negative)."""
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes <= 0 else min(p, centre - half)
    high = 1.0 if successes >= n else max(p, centre + half)
    return low, high


def _t_quantile(confidence: float, df: int) -> float:
    """The two-sided Student t quantile for `confidence` at `df` degrees of freedom."""
    from scipy.special import stdtrit

    return float(stdtrit(df, (1 + confidence) / 2))


def _expit(x: float) -> float:
    """The logistic function, without overflow for large |x|."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def is_binary(values: np.ndarray) -> bool:
    import numpy as np

    return bool(np.isin(values, (0.0, 1.0)).all())


def mcnemar_test(a: Sequence[float], b: Sequence[float]) -> McNemar:
    """McNemar's test of two paired 0/1 score vectors (statsmodels)."""
    import numpy as np
    from statsmodels.stats.contingency_tables import mcnemar

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not (is_binary(x) and is_binary(y)):
        raise ValueError("McNemar's test needs 0/1 scores")
    both = int(((x == 1) & (y == 1)).sum())
    a_only = int(((x == 1) & (y == 0)).sum())
    b_only = int(((x == 0) & (y == 1)).sum())
    neither = int(((x == 0) & (y == 0)).sum())
    exact = a_only + b_only < EXACT_BELOW
    result = mcnemar([[both, a_only], [b_only, neither]], exact=exact, correction=True)
    return McNemar(a_only, b_only, float(result.statistic), float(result.pvalue), exact)


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    groups: Sequence[Any] | None = None,
    confidence: float = 0.95,
    metric: str = "score",
    excluded: int = 0,
) -> PairedDifference:
    """The paired difference b - a with a `confidence` CI; cluster-robust when `groups` holds
    at least two distinct groups."""
    import numpy as np

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired scores need equal lengths, got {x.shape} and {y.shape}")
    d = y - x
    n = len(d)
    common = {
        "metric": metric,
        "n": n,
        "mean_a": float(x.mean()) if n else math.nan,
        "mean_b": float(y.mean()) if n else math.nan,
        "diff": float(d.mean()) if n else math.nan,
        "confidence": confidence,
        "excluded": excluded,
        "mcnemar": mcnemar_test(x, y) if n and is_binary(x) and is_binary(y) else None,
    }
    labels = list(groups) if groups is not None else []
    clusters = len(set(labels)) if labels else 0
    if n < 2:
        nan = math.nan
        return PairedDifference(
            **common, stderr=nan, ci_low=nan, ci_high=nan, p_value=nan, method="too few pairs"
        )
    if np.all(d == d[0]):  # no spread: every pair differs by the same amount
        value = float(d[0])
        return PairedDifference(
            **common,
            stderr=0.0,
            ci_low=value,
            ci_high=value,
            p_value=1.0 if value == 0 else 0.0,
            method="identical differences",
            clusters=clusters or None,
        )
    if clusters >= 2:
        if len(labels) != n:
            raise ValueError(f"groups has {len(labels)} labels for {n} pairs")
        import statsmodels.api as sm

        codes = np.unique(np.asarray([str(g) for g in labels]), return_inverse=True)[1]
        fit = sm.OLS(d, np.ones(n)).fit(cov_type="cluster", cov_kwds={"groups": codes}, use_t=True)
        low, high = fit.conf_int(alpha=1 - confidence)[0]
        return PairedDifference(
            **common,
            stderr=float(fit.bse[0]),
            ci_low=float(low),
            ci_high=float(high),
            p_value=float(fit.pvalues[0]),
            method=f"cluster-robust ({clusters} groups)",
            clusters=clusters,
        )
    from scipy import stats

    test = stats.ttest_rel(y, x)
    interval = test.confidence_interval(confidence_level=confidence)
    return PairedDifference(
        **common,
        stderr=float(d.std(ddof=1) / math.sqrt(n)),
        ci_low=float(interval.low),
        ci_high=float(interval.high),
        p_value=float(test.pvalue),
        method="paired t",
    )


def group_of(record: Mapping[str, Any], key: str = "group") -> Any:
    """A sample's group label: the record's `key` field (a dotted path such as
    `metadata.document` reaches into nested fields), else its metadata's; None if absent."""
    value: Any = record
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is not None:
        return value
    metadata = record.get("metadata")
    return metadata.get(key) if isinstance(metadata, Mapping) else None


def scored(record: Mapping[str, Any]) -> bool:
    """A sample counts in a metric only when it finished: an error is no score (never a 0)."""
    return record.get("status", "ok") == "ok"


def compare_records(
    records_a: Iterable[Mapping[str, Any]],
    records_b: Iterable[Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
    *,
    group_key: str = "group",
    confidence: float = 0.95,
) -> list[PairedDifference]:
    """One PairedDifference per metric for two jobs' records, paired by sample id."""
    by_id_a = {str(r["id"]): r for r in records_a}
    by_id_b = {str(r["id"]): r for r in records_b}
    shared = [i for i in by_id_a if i in by_id_b]
    if metrics is None:
        metrics = sorted(
            {m for i in shared for r in (by_id_a[i], by_id_b[i]) for m in r.get("scores") or {}}
        )
    results = []
    for metric in metrics:
        a, b, groups, excluded = [], [], [], 0
        for sample_id in shared:
            ra, rb = by_id_a[sample_id], by_id_b[sample_id]
            sa, sb = (ra.get("scores") or {}).get(metric), (rb.get("scores") or {}).get(metric)
            if not (scored(ra) and scored(rb)) or sa is None or sb is None:
                excluded += 1
                continue
            a.append(float(sa))
            b.append(float(sb))
            groups.append(group_of(ra, group_key))
        has_groups = any(g is not None for g in groups)
        results.append(
            paired_difference(
                a,
                b,
                groups=groups if has_groups else None,
                confidence=confidence,
                metric=metric,
                excluded=excluded,
            )
        )
    return results
