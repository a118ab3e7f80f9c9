"""Two models on the same test examples, a score against its baseline, and threshold calibration."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reusespec.errors import StatsError
from reusespec.stats.intervals import (
    Interval,
    as_values,
    bootstrap_replicates,
    check_confidence,
    check_resamples,
    percentile_interval,
    scipy_stats,
)

# Below this many discordant pairs McNemar's chi-square approximation is poor; the exact
# binomial test is used instead (the usual rule of thumb, also mlxtend's).
_MCNEMAR_EXACT_BELOW = 25


# ---------------------------------------------------------------------------------------------
# Two models on the same test examples


@dataclass(frozen=True)
class PairedComparison:
    """Result of :func:`paired_bootstrap`: model B minus model A on the same examples."""

    difference: float
    interval: Interval
    p_value: float
    n_examples: int


def paired_bootstrap(
    correct_a: ArrayLike,
    correct_b: ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> PairedComparison:
    """Paired bootstrap of the mean difference ``b - a`` over the same test examples.

    Examples are resampled once for both models, so the shared difficulty of each example cancels.
    ``p_value`` is the two-sided bootstrap fraction ``2 * min(P*(d <= 0), P*(d >= 0))`` (capped at
    1): roughly, how often a resample of the test set would not show the observed sign. It agrees
    with the interval excluding 0 up to ties and resampling noise; it is not an exact test (use
    :func:`mcnemar` for that on 0/1 correctness).
    """
    a = as_values(correct_a, "correct_a")
    b = as_values(correct_b, "correct_b")
    if a.shape != b.shape:
        raise StatsError(
            f"paired comparison needs both models scored on the same examples, got {a.size} and {b.size}."
        )
    check_confidence(confidence)
    check_resamples(n_resamples)
    differences = b - a
    replicates = bootstrap_replicates(differences, np.mean, n_resamples, seed)
    difference = float(differences.mean())
    interval = percentile_interval(
        replicates, difference, confidence, f"paired percentile bootstrap, {n_resamples} resamples"
    )
    p_value = min(1.0, 2.0 * min(float(np.mean(replicates <= 0.0)), float(np.mean(replicates >= 0.0))))
    return PairedComparison(difference=difference, interval=interval, p_value=p_value, n_examples=int(a.size))


@dataclass(frozen=True)
class McNemarResult:
    """Result of :func:`mcnemar`.

    ``only_a_correct`` and ``only_b_correct`` are the discordant counts (``b`` and ``c`` in the
    textbook 2x2 table); examples both models got right or wrong carry no information here.
    """

    statistic: float
    p_value: float
    only_a_correct: int
    only_b_correct: int
    method: str

    @property
    def b(self) -> int:
        return self.only_a_correct

    @property
    def c(self) -> int:
        return self.only_b_correct


def _as_correctness(values: ArrayLike, name: str) -> NDArray[np.bool_]:
    array = as_values(values, name)
    if not np.all((array == 0.0) | (array == 1.0)):
        raise StatsError(f"{name} must be 0/1 correctness per example for McNemar's test.")
    return array == 1.0


def mcnemar(correct_a: ArrayLike, correct_b: ArrayLike, *, exact: bool | None = None) -> McNemarResult:
    """McNemar's test of equal accuracy for two models on the same examples (two-sided).

    Only discordant examples count: ``b`` = A right and B wrong, ``c`` = A wrong and B right.
    With ``exact=None`` the exact binomial test (``scipy.stats.binomtest(b, b + c, 0.5)``,
    statistic ``b``) is used when ``b + c < 25``, and otherwise the chi-square with continuity
    correction ``(|b - c| - 1)^2 / (b + c)`` on 1 degree of freedom.
    """
    a = _as_correctness(correct_a, "correct_a")
    b_correct = _as_correctness(correct_b, "correct_b")
    if a.shape != b_correct.shape:
        raise StatsError(
            f"McNemar's test needs both models scored on the same examples, got {a.size} and "
            f"{b_correct.size}."
        )
    only_a = int(np.sum(a & ~b_correct))
    only_b = int(np.sum(~a & b_correct))
    discordant = only_a + only_b
    use_exact = discordant < _MCNEMAR_EXACT_BELOW if exact is None else exact
    if discordant == 0:
        # No disagreements: no evidence of any difference.
        return McNemarResult(0.0, 1.0, only_a, only_b, "no discordant pairs")
    if use_exact:
        p_value = float(scipy_stats().binomtest(only_a, discordant, 0.5).pvalue)
        return McNemarResult(float(only_a), p_value, only_a, only_b, "exact binomial")
    statistic = (abs(only_a - only_b) - 1.0) ** 2 / discordant
    if abs(only_a - only_b) <= 1:
        statistic = 0.0  # the continuity correction cannot make the evidence negative
    p_value = float(scipy_stats().chi2.sf(statistic, df=1))
    return McNemarResult(statistic, p_value, only_a, only_b, "chi-square with continuity correction")


# ---------------------------------------------------------------------------------------------
# Regression against a baseline


@dataclass(frozen=True)
class RegressionResult:
    """Result of :func:`regression_check`; ``delta`` is ``current - baseline``."""

    regressed: bool
    delta: float
    allowed: float
    message: str


def regression_check(
    baseline: float,
    current: float,
    *,
    abs_tol: float | None = None,
    rel_tol: float | None = None,
    higher_is_better: bool = True,
    metric: str = "score",
) -> RegressionResult:
    """Has ``current`` got worse than ``baseline`` by more than the tolerance?

    The allowed worsening is ``max(abs_tol, rel_tol * |baseline|)`` (the larger of the two, as in
    ``math.isclose``); a tolerance left as None counts as 0, so with neither given any worsening
    regresses. A NaN ``current`` always regresses (a broken run must not slip through).
    """
    if not math.isfinite(baseline):
        raise StatsError(f"baseline {metric} is {baseline}; store a finite baseline value.")
    for name, tol in (("abs_tol", abs_tol), ("rel_tol", rel_tol)):
        if tol is not None and not (tol >= 0.0 and math.isfinite(tol)):
            raise StatsError(f"{name} must be a finite number >= 0, got {tol}.")
    allowed = max(abs_tol or 0.0, (rel_tol or 0.0) * abs(baseline))
    delta = current - baseline
    worsening = -delta if higher_is_better else delta
    # A worsening equal to the tolerance is within it, also after float rounding: five fewer right
    # of 500 is 0.934 - 0.924 = 0.010000000000000009, which must not exceed a tolerance of 0.01.
    rounding = 1e-9 * max(1.0, abs(baseline), abs(current))
    regressed = math.isnan(current) or worsening > allowed + rounding
    direction = "higher" if higher_is_better else "lower"
    if regressed:
        message = (
            f"{metric} regressed: {current:.4g} vs baseline {baseline:.4g} "
            f"(worse by {worsening:.4g}, allowed {allowed:.4g}; {direction} is better)"
        )
    else:
        message = (
            f"{metric} ok: {current:.4g} vs baseline {baseline:.4g} "
            f"(delta {delta:+.4g}, allowed worsening {allowed:.4g}; {direction} is better)"
        )
    return RegressionResult(regressed=regressed, delta=delta, allowed=allowed, message=message)


# ---------------------------------------------------------------------------------------------
# Threshold calibration


def suggest_threshold(
    values: Sequence[float],
    false_failure_rate: float = 0.01,
    *,
    higher_is_better: bool = True,
) -> float:
    """A threshold that one fresh run of the same (healthy) model misses with ``false_failure_rate``.

    ``values`` are scores of N runs (seeds) of the model the gate should accept. Two methods:

    * N >= 1/rate - 1: distribution-free. For a new run from the same distribution,
      P(new < X_(k)) = k / (N + 1) exactly (continuous scores), where X_(k) is the k-th smallest
      value; we take k = floor(rate * (N + 1)) >= 1.
    * fewer values: normal theory. ``mean - t_{1-rate, N-1} * s * sqrt(1 + 1/N)`` is the lower
      prediction bound for one new normal draw; it is the normal quantile of mean/std with the
      Student t and ``sqrt(1 + 1/N)`` paying for mean and std being estimates from N values. With
      few values the empirical quantile cannot reach a small rate (the smallest of N values is
      still missed ~1/(N+1) of the time), hence the normal model there. Needs N >= 2.

    With ``higher_is_better=False`` the bound is the mirror image (an upper threshold).
    """
    if not 0.0 < false_failure_rate < 0.5:
        raise StatsError(f"false_failure_rate must lie in (0, 0.5), got {false_failure_rate}.")
    scores = as_values(list(values), "values")
    if not higher_is_better:
        scores = -scores
    n = scores.size
    rank = math.floor(false_failure_rate * (n + 1) + 1e-9)
    if rank >= 1:
        threshold = float(np.sort(scores)[rank - 1])
    elif n >= 2:
        quantile = float(scipy_stats().t.ppf(1.0 - false_failure_rate, df=n - 1))
        threshold = float(scores.mean() - quantile * scores.std(ddof=1) * math.sqrt(1.0 + 1.0 / n))
    else:
        raise StatsError(
            "suggest_threshold needs at least 2 values to estimate the spread between runs; run more seeds."
        )
    return threshold if higher_is_better else -threshold
