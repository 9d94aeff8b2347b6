"""Paired comparisons: the CI covers a known effect, and the numbers match by-hand formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("statsmodels", reason="needs the report extra")
from scipy import stats as sps

from hydragent.stats import compare_records, mcnemar_test, mean_ci, paired_difference


def _binary_pairs(rng: np.random.Generator, n: int, p: dict[str, float]) -> tuple:
    """n pairs (a, b) of 0/1 scores from a joint law over (1,1), (1,0), (0,1), (0,0)."""
    cells = rng.choice(4, size=n, p=[p["11"], p["10"], p["01"], p["00"]])
    a = np.isin(cells, (0, 1)).astype(float)
    b = np.isin(cells, (0, 2)).astype(float)
    return a, b


def test_the_paired_ci_covers_a_known_effect_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(7)
    law = {"11": 0.5, "10": 0.08, "01": 0.16, "00": 0.26}
    true_diff = law["01"] - law["10"]  # B right where A was wrong, minus the reverse
    runs = 1000
    covered = 0
    for _ in range(runs):
        a, b = _binary_pairs(rng, 200, law)
        result = paired_difference(a, b)
        covered += result.ci_low <= true_diff <= result.ci_high
    assert 0.93 <= covered / runs <= 0.97


def test_grouped_samples_need_the_cluster_robust_interval_to_keep_coverage() -> None:
    """40 documents of 10 questions each, with a per-document shift in the difference: the
    plain paired interval is too narrow; the clustered one keeps about 95 %."""
    rng = np.random.default_rng(11)
    groups = np.repeat(np.arange(40), 10)
    runs, effect = 400, 0.05
    plain = clustered = 0
    for _ in range(runs):
        base = rng.normal(0.5, 0.2, size=400)
        shift = rng.normal(0, 0.15, size=40)[groups]
        a = base + rng.normal(0, 0.05, size=400)
        b = base + effect + shift + rng.normal(0, 0.05, size=400)
        naive = paired_difference(a, b)
        robust = paired_difference(a, b, groups=groups)
        plain += naive.ci_low <= effect <= naive.ci_high
        clustered += robust.ci_low <= effect <= robust.ci_high
    assert robust.method == "cluster-robust (40 groups)"
    assert plain / runs < 0.6
    assert 0.91 <= clustered / runs <= 0.98


def test_ci_and_p_value_match_the_textbook_paired_t_computation() -> None:
    a = np.array([0.2, 0.5, 0.9, 0.4, 0.7, 0.1, 0.8, 0.6])
    b = np.array([0.3, 0.7, 0.9, 0.6, 0.6, 0.4, 0.9, 0.8])
    d = b - a
    n = len(d)
    se = math.sqrt(sum((x - d.mean()) ** 2 for x in d) / (n - 1)) / math.sqrt(n)
    quantile = sps.t.ppf(0.975, n - 1)
    t_value = d.mean() / se
    result = paired_difference(a, b)
    assert result.diff == pytest.approx(d.mean())
    assert result.stderr == pytest.approx(se)
    assert (result.ci_low, result.ci_high) == pytest.approx(
        (d.mean() - quantile * se, d.mean() + quantile * se)
    )
    assert result.p_value == pytest.approx(2 * sps.t.sf(abs(t_value), n - 1))
    assert result.distinguishable and result.verdict.startswith("B higher by")


def test_mcnemar_matches_the_binomial_and_the_corrected_chi_square() -> None:
    # Few discordant pairs (3 vs 12): the exact test, a two-sided binomial at 1/2.
    a = [1] * 3 + [0] * 12 + [1] * 40 + [0] * 10
    b = [0] * 3 + [1] * 12 + [1] * 40 + [0] * 10
    small = mcnemar_test(a, b)
    assert (small.a_only, small.b_only, small.exact) == (3, 12, True)
    assert small.p_value == pytest.approx(sps.binomtest(3, 15, 0.5).pvalue)
    # Wikipedia's example table [[101, 121], [59, 33]]: many discordant pairs, chi-square
    # with the continuity correction, (|121 - 59| - 1)^2 / 180.
    a = [1] * 101 + [1] * 121 + [0] * 59 + [0] * 33
    b = [1] * 101 + [0] * 121 + [1] * 59 + [0] * 33
    large = mcnemar_test(a, b)
    assert large.exact is False
    assert large.statistic == pytest.approx((abs(121 - 59) - 1) ** 2 / 180)
    assert large.p_value == pytest.approx(sps.chi2.sf((abs(121 - 59) - 1) ** 2 / 180, 1))


def test_a_ci_that_holds_zero_reads_not_distinguishable() -> None:
    rng = np.random.default_rng(3)
    a, b = _binary_pairs(rng, 60, {"11": 0.6, "10": 0.1, "01": 0.1, "00": 0.2})
    result = paired_difference(a, b)
    assert result.ci_low < 0 < result.ci_high
    assert result.verdict == "not distinguishable"
    assert result.as_dict()["mcnemar"]["exact"] is True


def test_records_pair_by_id_and_leave_errored_samples_out() -> None:
    def record(i: int, score: float | None, status: str = "ok") -> dict:
        scores = {} if score is None else {"exact": score}
        return {"id": f"s{i}", "status": status, "scores": scores}

    job_a = [record(i, float(i % 2)) for i in range(10)]
    job_b = [record(i, 1.0) for i in reversed(range(9))] + [record(9, None, "error")]
    (result,) = compare_records(job_a, job_b)
    assert (result.metric, result.n, result.excluded) == ("exact", 9, 1)
    assert result.mean_a == pytest.approx(4 / 9) and result.mean_b == 1.0
    assert result.mcnemar is not None and (result.mcnemar.a_only, result.mcnemar.b_only) == (0, 5)


def test_identical_jobs_are_not_distinguishable_without_a_division_by_zero() -> None:
    result = paired_difference([1, 0, 1], [1, 0, 1])
    assert (result.diff, result.ci_low, result.ci_high, result.p_value) == (0, 0, 0, 1.0)
    assert result.verdict == "not distinguishable"


def test_unbounded_values_get_the_student_t_interval() -> None:
    """Latencies, or a grade on a 0-10 scale: no bound to respect, the plain t interval."""
    values = [10.0, 5.0, 10.0, 7.5, 0.0, 10.0, 2.5, 10.0]
    n, mean = len(values), sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    half = 2.364624 * sd / n**0.5  # t(0.975, df=7), from a printed table
    got = mean_ci(values)
    assert got["mean"] == pytest.approx(mean) and got["n"] == n
    assert got["stderr"] == pytest.approx(sd / n**0.5)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((mean - half, mean + half), abs=1e-5)
    latencies = mean_ci([0.2, 0.4, 0.3], bounded=False)  # in [0, 1] but not a fraction
    assert latencies["ci_low"] == pytest.approx(0.3 - 4.302653 * 0.1 / 3**0.5, abs=1e-5)
    assert mean_ci([0.5, 0.5])["ci_low"] == 0.5  # no spread: the interval is the mean
    assert mean_ci([0.5])["ci_low"] is None and mean_ci([])["n"] == 0


def test_fractional_scores_get_a_logit_interval_that_stays_in_0_1() -> None:
    """Issue 21: json_fields 0.875 on four samples was [0.48, 1.27] (a raw-scale t interval).
    On the logit scale: logit(m) +- t(0.975, 3) * se / (m (1 - m)), mapped back by hand."""
    values = [0.5, 1.0, 1.0, 1.0]
    m, se = 0.875, 0.125
    half = 3.182446 * se / (m * (1 - m))
    centre = math.log(m / (1 - m))
    expected = (1 / (1 + math.exp(-(centre - half))), 1 / (1 + math.exp(-(centre + half))))
    got = mean_ci(values)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx(expected, abs=1e-5)
    assert 0.0 < got["ci_low"] < m < got["ci_high"] < 1.0
    assert got["stderr"] == pytest.approx(se)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0, allow_nan=False)),
        min_size=2,
        max_size=60,
    )
)
def test_any_scores_in_0_1_get_an_interval_in_0_1_around_their_mean(values: list[float]) -> None:
    got = mean_ci(values)
    assert 0.0 <= got["ci_low"] <= got["mean"] + 1e-12
    assert got["mean"] - 1e-12 <= got["ci_high"] <= 1.0


def test_pass_fail_scores_get_the_wilson_interval_inside_0_and_1() -> None:
    """6 of 8 right: Wilson's closed form, computed here by hand; 6 of 6 is not [1, 1]."""
    k, n, z = 6, 8, 1.959964
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    got = mean_ci([1.0] * k + [0.0] * (n - k))
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((centre - half, centre + half), 1e-5)
    all_right = mean_ci([1.0] * 6)
    assert all_right["ci_high"] == 1.0 and 0.5 < all_right["ci_low"] < 0.7


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 5000), st.data())
def test_a_pass_fail_interval_holds_its_mean_exactly_at_0_and_n(
    n: int, data: st.DataObject
) -> None:
    """The report draws mean - low and high - mean as error bars: never negative, and the
    ends are exactly 0 at 0 of n and 1 at n of n."""
    k = data.draw(st.integers(0, n))
    got = mean_ci([1.0] * k + [0.0] * (n - k))
    assert got["ci_low"] <= got["mean"] <= got["ci_high"]
    if k == 0:
        assert got["ci_low"] == 0.0
    if k == n:
        assert got["ci_high"] == 1.0
