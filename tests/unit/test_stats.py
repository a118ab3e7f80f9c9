"""Tests of reusespec.stats: intervals, verdicts, auto-seeding, paired tests, regression, calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from reusespec.gate.sequential import decide_with_seeds
from reusespec.stats import (
    Interval,
    StatsError,
    Verdict,
    bootstrap_ci,
    combine_intervals,
    combined_ci,
    mcnemar,
    paired_bootstrap,
    regression_check,
    seeds_ci,
    suggest_threshold,
    verdict,
    verdict_message,
)

OPS = (">=", ">", "<=", "<")
FLIP = {">=": "<=", ">": "<", "<=": ">=", "<": ">"}
FAST = settings(max_examples=25, deadline=None)


def interval(low: float, high: float) -> Interval:
    return Interval(low=low, high=high, estimate=(low + high) / 2, confidence=0.95, method="constructed")


# --- verdict -------------------------------------------------------------------------------------

ABOVE, BELOW, STRADDLE = interval(0.80, 0.90), interval(0.60, 0.70), interval(0.70, 0.80)


@pytest.mark.parametrize(
    ("op", "case", "expected"),
    [
        (">=", ABOVE, Verdict.PASS),
        (">=", BELOW, Verdict.FAIL),
        (">=", STRADDLE, Verdict.INCONCLUSIVE),
        (">", ABOVE, Verdict.PASS),
        (">", BELOW, Verdict.FAIL),
        (">", STRADDLE, Verdict.INCONCLUSIVE),
        ("<=", ABOVE, Verdict.FAIL),
        ("<=", BELOW, Verdict.PASS),
        ("<=", STRADDLE, Verdict.INCONCLUSIVE),
        ("<", ABOVE, Verdict.FAIL),
        ("<", BELOW, Verdict.PASS),
        ("<", STRADDLE, Verdict.INCONCLUSIVE),
    ],
)
def test_verdict_outcomes_for_each_op(op: str, case: Interval, expected: Verdict) -> None:
    assert verdict(case, 0.75, op) is expected


@pytest.mark.parametrize(
    ("op", "expected"),
    [(">=", Verdict.PASS), (">", Verdict.FAIL), ("<=", Verdict.PASS), ("<", Verdict.FAIL)],
)
def test_verdict_interval_exactly_at_threshold_follows_strictness(op: str, expected: Verdict) -> None:
    point = Interval(low=0.75, high=0.75, estimate=0.75, confidence=0.95, method="point")
    assert verdict(point, 0.75, op) is expected


def test_verdict_touching_threshold_with_strict_op_is_inconclusive() -> None:
    touching = interval(0.75, 0.85)
    assert verdict(touching, 0.75, ">=") is Verdict.PASS
    assert verdict(touching, 0.75, ">") is Verdict.INCONCLUSIVE


def test_verdict_rejects_unknown_op() -> None:
    with pytest.raises(StatsError, match="Unknown comparison"):
        verdict(ABOVE, 0.75, "==")


def test_verdict_message_names_outcome_and_values() -> None:
    message = verdict_message(STRADDLE, 0.75, ">=", metric="accuracy")
    assert message.startswith("INCONCLUSIVE")
    assert "accuracy" in message and "0.75" in message and "0.7" in message


@FAST
@given(
    a=st.floats(-1e6, 1e6),
    b=st.floats(-1e6, 1e6),
    threshold=st.floats(-1e6, 1e6),
    op=st.sampled_from(OPS),
)
def test_verdict_symmetric_under_negation(a: float, b: float, threshold: float, op: str) -> None:
    low, high = min(a, b), max(a, b)
    original = Interval(low=low, high=high, estimate=low, confidence=0.9, method="h")
    negated = Interval(low=-high, high=-low, estimate=-low, confidence=0.9, method="h")
    assert verdict(original, threshold, op) is verdict(negated, -threshold, FLIP[op])


# --- intervals -----------------------------------------------------------------------------------


def test_bootstrap_ci_coverage_and_width_match_binomial() -> None:
    p, n, trials = 0.3, 400, 200
    rng = np.random.default_rng(2024)
    covered, widths = 0, []
    for trial in range(trials):
        sample = (rng.random(n) < p).astype(float)
        ci = bootstrap_ci(sample, n_resamples=500, seed=trial)
        covered += ci.contains(p)
        widths.append(ci.width)
    assert 0.89 <= covered / trials <= 0.995
    binomial_width = 2 * 1.96 * math.sqrt(p * (1 - p) / n)
    assert np.mean(widths) == pytest.approx(binomial_width, rel=0.1)


def test_bootstrap_ci_is_reproducible_and_seed_dependent() -> None:
    sample = (np.random.default_rng(0).random(300) < 0.7).astype(float)
    assert bootstrap_ci(sample, seed=3) == bootstrap_ci(sample, seed=3)
    assert bootstrap_ci(sample, seed=3) != bootstrap_ci(sample, seed=4)


def test_bootstrap_ci_higher_confidence_is_wider() -> None:
    sample = np.random.default_rng(1).normal(size=500)
    narrow = bootstrap_ci(sample, confidence=0.8, n_resamples=1000)
    wide = bootstrap_ci(sample, confidence=0.99, n_resamples=1000)
    assert wide.low < narrow.low and narrow.high < wide.high


def test_bootstrap_ci_other_statistics_with_and_without_axis() -> None:
    sample = np.random.default_rng(5).exponential(size=301)
    by_axis = bootstrap_ci(sample, statistic=np.median, n_resamples=300)
    by_row = bootstrap_ci(sample, statistic=lambda row: float(np.median(row)), n_resamples=300)
    assert by_axis.estimate == pytest.approx(float(np.median(sample)))
    assert (by_axis.low, by_axis.high) == pytest.approx((by_row.low, by_row.high))


@pytest.mark.parametrize("bad", [[], [0.5, float("nan")], [[1.0, 0.0]]])
def test_bootstrap_ci_rejects_bad_input(bad: list[object]) -> None:
    with pytest.raises(StatsError):
        bootstrap_ci(np.asarray(bad, dtype=float))


@FAST
@given(
    values=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40),
    confidence=st.floats(0.05, 0.99),
)
def test_bootstrap_interval_contains_estimate(values: list[float], confidence: float) -> None:
    ci = bootstrap_ci(values, confidence=confidence, n_resamples=200)
    assert ci.low <= ci.estimate <= ci.high


def test_seeds_ci_matches_scipy_t_interval() -> None:
    values = [0.81, 0.84, 0.79, 0.83]
    ci = seeds_ci(values, confidence=0.9)
    low, high = scipy_stats.t.interval(
        0.9, len(values) - 1, loc=np.mean(values), scale=scipy_stats.sem(values)
    )
    assert (ci.low, ci.high) == pytest.approx((low, high))


def test_seeds_ci_needs_two_seeds() -> None:
    with pytest.raises(StatsError, match="at least 2"):
        seeds_ci([0.8])


@FAST
@given(values=st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=12), confidence=st.floats(0.5, 0.999))
def test_seeds_interval_contains_estimate(values: list[float], confidence: float) -> None:
    ci = seeds_ci(values, confidence=confidence)
    assert ci.low <= ci.estimate <= ci.high


def test_combine_intervals_is_never_narrower_than_either_part() -> None:
    example = Interval(low=0.78, high=0.81, estimate=0.80, confidence=0.95, method="e")
    seed = Interval(low=0.79, high=0.83, estimate=0.81, confidence=0.95, method="s")
    combined = combine_intervals(example, seed)
    assert combined.estimate == seed.estimate
    below, above = combined.estimate - combined.low, combined.high - combined.estimate
    assert below >= max(example.estimate - example.low, seed.estimate - seed.low)
    assert above >= max(example.high - example.estimate, seed.high - seed.estimate)
    assert combined.width <= example.width + seed.width + 1e-12


def test_combine_intervals_refuses_mixed_confidence() -> None:
    example = Interval(low=0.7, high=0.8, estimate=0.75, confidence=0.9, method="e")
    seed = Interval(low=0.7, high=0.8, estimate=0.75, confidence=0.95, method="s")
    with pytest.raises(StatsError, match="same confidence"):
        combine_intervals(example, seed)


def test_combined_ci_with_identical_seeds_reduces_to_the_bootstrap() -> None:
    correct = (np.random.default_rng(4).random(250) < 0.6).astype(float)
    combined = combined_ci([correct, correct, correct], n_resamples=400, seed=9)
    alone = bootstrap_ci(correct, n_resamples=400, seed=9)
    assert (combined.low, combined.high) == pytest.approx((alone.low, alone.high))


def test_combined_ci_covers_when_neither_source_alone_does() -> None:
    # Per-example values with an example effect (shared by all seeds) and a seed effect of similar
    # size: the bootstrap sees only the first, the t-interval over seeds only the second.
    rng = np.random.default_rng(7)
    n_examples, n_seeds, trials, truth = 200, 5, 300, 0.5
    covered = {"combined": 0, "examples only": 0, "seeds only": 0}
    for trial in range(trials):
        example_effect = rng.normal(0, 1.0, n_examples)
        seed_effect = rng.normal(0, 0.15, n_seeds)
        values = (
            truth + example_effect[None, :] + seed_effect[:, None] + rng.normal(0, 0.5, (n_seeds, n_examples))
        )
        covered["combined"] += combined_ci(list(values), n_resamples=300, seed=trial).contains(truth)
        covered["examples only"] += bootstrap_ci(values.mean(axis=0), n_resamples=300, seed=trial).contains(
            truth
        )
        covered["seeds only"] += seeds_ci(values.mean(axis=1).tolist()).contains(truth)
    rate = {name: count / trials for name, count in covered.items()}
    assert rate["combined"] >= 0.92
    assert rate["examples only"] < 0.9
    assert rate["seeds only"] < rate["combined"]


# --- auto-seeding ----------------------------------------------------------------------------------


class Recorder:
    """A deterministic score sequence that remembers which seeds were asked for."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = scores
        self.asked: list[int] = []

    def __call__(self, seed: int) -> float:
        self.asked.append(seed)
        return self.scores[seed]


@pytest.mark.parametrize(
    ("op", "expected"),
    [(">=", Verdict.PASS), (">", Verdict.PASS), ("<=", Verdict.FAIL), ("<", Verdict.FAIL)],
)
def test_auto_seeding_stops_at_first_look_when_clear(op: str, expected: Verdict) -> None:
    run = Recorder([0.90, 0.91, 0.90] + [0.0] * 7)
    decision = decide_with_seeds(run, 0.5, op, initial_seeds=3, max_seeds=10)
    assert decision.verdict is expected
    assert decision.n_seeds == 3 and decision.stopped_early
    assert run.asked == [0, 1, 2]
    assert decision.values == (0.90, 0.91, 0.90)


def test_auto_seeding_adds_seeds_until_conclusive() -> None:
    # Three noisy seeds straddle 0.5 at the corrected confidence; steady later seeds settle it.
    run = Recorder([0.70, 0.90, 0.80] + [0.80] * 7)
    decision = decide_with_seeds(run, 0.5, ">=", initial_seeds=3, max_seeds=10)
    assert decision.verdict is Verdict.PASS
    assert 3 < decision.n_seeds < 10
    assert run.asked == list(range(decision.n_seeds))
    uncorrected = decide_with_seeds(Recorder(run.scores), 0.5, ">=", correction="none")
    assert uncorrected.verdict is Verdict.PASS and uncorrected.n_seeds <= decision.n_seeds
    assert uncorrected.per_look_confidence < decision.per_look_confidence


def test_auto_seeding_uses_budget_and_stays_inconclusive_when_straddling() -> None:
    run = Recorder([0.84 + 0.02 * (seed % 2) for seed in range(10)])
    decision = decide_with_seeds(run, 0.85, ">=", initial_seeds=3, max_seeds=10)
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert decision.n_seeds == 10 and not decision.stopped_early
    assert run.asked == list(range(10))
    assert decision.interval.contains(0.85)


def test_auto_seeding_bonferroni_bounds_false_decisions_that_repeated_looks_inflate() -> None:
    # True mean exactly at the threshold: every PASS or FAIL is a false decision.
    trials = 300
    false_rate: dict[str, float] = {}
    for correction in ("bonferroni", "none"):
        false_decisions = 0
        for trial in range(trials):
            scores = np.random.default_rng(1000 + trial).normal(0.85, 0.01, size=10).tolist()
            decision = decide_with_seeds(Recorder(scores), 0.85, ">=", correction=correction)
            false_decisions += decision.verdict is not Verdict.INCONCLUSIVE
        false_rate[correction] = false_decisions / trials
    assert false_rate["bonferroni"] <= 0.07
    assert false_rate["none"] > 0.07
    assert false_rate["none"] > false_rate["bonferroni"]


def test_auto_seeding_rejects_non_finite_score_naming_the_seed() -> None:
    with pytest.raises(StatsError, match=r"run_seed\(1\)"):
        decide_with_seeds(Recorder([0.8, float("nan"), 0.8]), 0.5, ">=")


def test_auto_seeding_validates_budget() -> None:
    with pytest.raises(StatsError, match="max_seeds"):
        decide_with_seeds(Recorder([0.8] * 5), 0.5, ">=", initial_seeds=4, max_seeds=3)


# --- paired comparison ---------------------------------------------------------------------------


@pytest.mark.parametrize(("only_a", "only_b"), [(0, 7), (3, 9), (5, 5), (12, 2)])
def test_mcnemar_exact_matches_binomtest(only_a: int, only_b: int) -> None:
    both = 40
    a = np.array([1] * only_a + [0] * only_b + [1] * both + [0] * 10)
    b = np.array([0] * only_a + [1] * only_b + [1] * both + [0] * 10)
    result = mcnemar(a, b)
    assert (result.b, result.c) == (only_a, only_b)
    assert result.method == "exact binomial"
    assert result.p_value == pytest.approx(scipy_stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


@pytest.mark.parametrize(("only_a", "only_b"), [(20, 40), (60, 30), (31, 29)])
def test_mcnemar_chi_square_matches_mlxtend(only_a: int, only_b: int) -> None:
    from mlxtend.evaluate import mcnemar as mlxtend_mcnemar

    a = np.array([1] * only_a + [0] * only_b + [1] * 100)
    b = np.array([0] * only_a + [1] * only_b + [1] * 100)
    result = mcnemar(a, b)
    table = np.array([[100, only_a], [only_b, 0]])
    statistic, p_value = mlxtend_mcnemar(table, corrected=True)
    assert result.method.startswith("chi-square")
    assert result.statistic == pytest.approx(statistic)
    assert result.p_value == pytest.approx(p_value)


def test_mcnemar_without_disagreement_finds_nothing() -> None:
    same = np.array([1, 0, 1, 1, 0])
    assert mcnemar(same, same).p_value == 1.0


def test_mcnemar_rejects_non_binary_values() -> None:
    with pytest.raises(StatsError, match="0/1"):
        mcnemar([0.5, 1.0], [1.0, 1.0])


def paired_samples(n: int, flips_to_correct: int, flips_to_wrong: int) -> tuple[np.ndarray, np.ndarray]:
    """Model A's correctness, and model B = A with some wrong answers fixed and some right ones broken."""
    rng = np.random.default_rng(11)
    a = (rng.random(n) < 0.7).astype(float)
    b = a.copy()
    wrong, right = np.flatnonzero(a == 0), np.flatnonzero(a == 1)
    b[rng.choice(wrong, flips_to_correct, replace=False)] = 1.0
    b[rng.choice(right, flips_to_wrong, replace=False)] = 0.0
    return a, b


def test_paired_bootstrap_detects_a_real_difference() -> None:
    a, b = paired_samples(500, flips_to_correct=45, flips_to_wrong=10)  # B is 7 points better
    comparison = paired_bootstrap(a, b)
    assert comparison.difference == pytest.approx(b.mean() - a.mean())
    assert comparison.interval.low > 0
    assert comparison.p_value < 0.01
    assert mcnemar(a, b).p_value < 0.01
    reversed_comparison = paired_bootstrap(b, a)  # two-sided: a worse B is just as detectable
    assert reversed_comparison.interval.high < 0
    assert reversed_comparison.p_value < 0.01


def test_paired_bootstrap_finds_no_difference_under_the_null() -> None:
    a, b = paired_samples(500, flips_to_correct=20, flips_to_wrong=20)  # same accuracy, different errors
    comparison = paired_bootstrap(a, b)
    assert comparison.difference == 0.0
    assert comparison.interval.contains(0.0)
    assert comparison.p_value > 0.5
    assert mcnemar(a, b).p_value > 0.5


def test_paired_bootstrap_is_narrower_than_independent_intervals() -> None:
    a, b = paired_samples(500, flips_to_correct=30, flips_to_wrong=10)
    paired = paired_bootstrap(a, b).interval
    independent_width = bootstrap_ci(a).width + bootstrap_ci(b).width
    assert paired.width < independent_width / 2


# --- regression_check -----------------------------------------------------------------------------


def test_regression_check_message_names_values() -> None:
    result = regression_check(0.84, 0.80, abs_tol=0.01, metric="accuracy")
    assert result.regressed
    assert result.delta == pytest.approx(-0.04)
    assert result.allowed == pytest.approx(0.01)
    assert "accuracy" in result.message and "0.84" in result.message and "0.8" in result.message


def test_regression_check_tolerances_and_direction() -> None:
    assert not regression_check(0.84, 0.835, abs_tol=0.01).regressed
    assert regression_check(0.84, 0.835).regressed  # no tolerance: any drop regresses
    assert not regression_check(2.0, 2.1, rel_tol=0.1, higher_is_better=False).regressed
    assert regression_check(2.0, 2.3, rel_tol=0.1, higher_is_better=False).regressed
    assert regression_check(2.0, 2.3, abs_tol=0.5, rel_tol=0.1, higher_is_better=False).allowed == 0.5
    assert regression_check(0.84, float("nan"), abs_tol=0.5).regressed
    with pytest.raises(StatsError, match="abs_tol"):
        regression_check(0.84, 0.83, abs_tol=-0.1)


@FAST
@given(n=st.integers(50, 20_000), data=st.data())
def test_a_drop_of_exactly_the_tolerance_is_within_it(n: int, data: st.DataObject) -> None:
    # Accuracies are counts over n test examples; a tolerance of t examples allows t fewer right,
    # whatever the float rounding of the two divisions (0.934 - 0.924 > 0.01 in floats).
    t = data.draw(st.integers(1, n // 10))
    k = data.draw(st.integers(t + 1, n))
    assert not regression_check(k / n, (k - t) / n, abs_tol=t / n).regressed
    assert regression_check(k / n, (k - t - 1) / n, abs_tol=t / n).regressed
    assert not regression_check(0.934, 0.924, abs_tol=0.01).regressed


@FAST
@given(
    baseline=st.floats(-10, 10),
    current=st.floats(-10, 10),
    better=st.floats(0, 5),
    tol=st.floats(0, 1),
    more_tol=st.floats(0, 1),
    higher_is_better=st.booleans(),
)
def test_regression_check_monotone(
    baseline: float, current: float, better: float, tol: float, more_tol: float, higher_is_better: bool
) -> None:
    improved = current + better if higher_is_better else current - better
    result = regression_check(baseline, current, abs_tol=tol, higher_is_better=higher_is_better)
    # A better score never regresses where a worse one did not; more tolerance never adds regressions.
    if not result.regressed:
        better_result = regression_check(baseline, improved, abs_tol=tol, higher_is_better=higher_is_better)
        assert not better_result.regressed
        assert not regression_check(
            baseline, current, abs_tol=tol + more_tol, higher_is_better=higher_is_better
        ).regressed


# --- suggest_threshold ---------------------------------------------------------------------------


def miss_rate(n_values: int, rate: float, trials: int = 2000) -> float:
    """How often one fresh run falls below a threshold calibrated on ``n_values`` earlier runs."""
    rng = np.random.default_rng(n_values)
    misses = 0
    for _ in range(trials):
        runs = rng.normal(0.86, 0.009, size=n_values + 1)
        misses += runs[-1] < suggest_threshold(runs[:-1].tolist(), rate)
    return misses / trials


def test_suggest_threshold_normal_model_hits_the_false_failure_rate() -> None:
    # Few values and a large rate so that dropping either the Student t or the sqrt(1 + 1/N)
    # (mean and std are estimates) would move the miss rate outside the band (to ~0.23).
    assert 0.18 <= miss_rate(n_values=3, rate=0.2, trials=4000) <= 0.22


def test_suggest_threshold_order_statistic_hits_the_false_failure_rate() -> None:
    assert 0.08 <= miss_rate(n_values=19, rate=0.1) <= 0.12  # exactly 2/20 in theory


def test_suggest_threshold_lower_is_better_mirrors() -> None:
    values = [0.31, 0.29, 0.35, 0.30, 0.33]
    high = suggest_threshold(values, 0.05, higher_is_better=False)
    low = suggest_threshold([-v for v in values], 0.05)
    assert high == pytest.approx(-low)
    assert high > max(values)


def test_suggest_threshold_below_the_gate_that_flakes() -> None:
    # The reference case: mean 0.860, std 0.009; a "> 0.85" gate fails ~1 run in 6.
    values = np.random.default_rng(61).normal(0.860, 0.009, size=61).tolist()
    threshold = suggest_threshold(values, 0.01)
    assert threshold < 0.85
    assert threshold == pytest.approx(0.860 - 2.33 * 0.009, abs=0.006)


def test_suggest_threshold_needs_two_values() -> None:
    with pytest.raises(StatsError, match="at least 2"):
        suggest_threshold([0.8])
