"""Statistics of a score: intervals, verdicts, seeds and paired comparisons for release gates.

A score measured on a finite test set, from a model trained with one random seed, is a noisy
estimate. A gate that compares the bare number with a threshold flakes whenever the true score is
near the threshold (one project measured a "> 0.85" gate on a benchmark with mean 0.860 and std
0.009 failing about a fifth of its reruns). This module gives the pieces for gates that say so:

* intervals for a score: :func:`bootstrap_ci` (example-level, percentile bootstrap),
  :func:`seeds_ci` (seed-level, Student t), and :func:`combine_intervals` / :func:`combined_ci`
  for both at once;
* :func:`verdict`: PASS / FAIL / INCONCLUSIVE of an interval against a threshold;
* adding training seeds until a verdict is conclusive lives in :mod:`reusespec.gate.sequential`;
* :func:`paired_bootstrap` and :func:`mcnemar`: two models on the *same* test examples (two
  independent intervals would ignore the pairing and be far too wide);
* :func:`regression_check`: current score against a stored baseline with a tolerance;
* :func:`suggest_threshold`: a threshold that a healthy model fails at a chosen rate.

Only numpy and scipy are used; every random draw comes from ``numpy.random.default_rng(seed)`` so
results are reproducible.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reusespec.errors import StatsError


def _scipy_stats() -> Any:
    """scipy.stats, imported on first use (it takes longer to import than the rest of this module)."""
    from scipy import stats

    return stats


__all__ = [
    "Interval",
    "McNemarResult",
    "PairedComparison",
    "RegressionResult",
    "StatsError",
    "Verdict",
    "bootstrap_ci",
    "combine_intervals",
    "combined_ci",
    "mcnemar",
    "paired_bootstrap",
    "regression_check",
    "seeds_ci",
    "suggest_threshold",
    "verdict",
    "verdict_message",
]

_OPS: tuple[str, ...] = (">=", ">", "<=", "<")

# Resampled index matrices are built in chunks of at most this many elements, so that 2,000
# resamples of 10,000 examples need ~32 MB at a time rather than 320 MB.
_CHUNK_ELEMENTS = 2_000_000

# Below this many discordant pairs McNemar's chi-square approximation is poor; the exact
# binomial test is used instead (the usual rule of thumb, also mlxtend's).
_MCNEMAR_EXACT_BELOW = 25


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval ``[low, high]``."""

    low: float
    high: float
    estimate: float
    confidence: float
    method: str

    def __post_init__(self) -> None:
        if any(math.isnan(v) for v in (self.low, self.high, self.estimate)):
            raise StatsError(f"Interval has a NaN bound or estimate: {self!r}; check the scores for NaN.")
        if not self.low <= self.estimate <= self.high:
            raise StatsError(
                f"Interval needs low <= estimate <= high, got {self.low} <= {self.estimate} <= {self.high}."
            )
        if not 0.0 < self.confidence < 1.0:
            raise StatsError(f"confidence must lie strictly between 0 and 1, got {self.confidence}.")

    @property
    def width(self) -> float:
        return self.high - self.low

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}] ({self.confidence:.0%} {self.method})"


class Verdict(enum.Enum):
    """Outcome of comparing an interval with a threshold."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


# ---------------------------------------------------------------------------------------------
# Input checks


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise StatsError(f"confidence must lie strictly between 0 and 1 (e.g. 0.95), got {confidence}.")


def _as_values(values: ArrayLike, name: str) -> NDArray[np.float64]:
    """Per-example values as a finite, non-empty 1-D float array."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise StatsError(f"{name} must be 1-D (one value per example), got shape {array.shape}.")
    if array.size == 0:
        raise StatsError(f"{name} is empty: a score needs at least one example.")
    if not np.all(np.isfinite(array)):
        raise StatsError(f"{name} contains NaN or infinite values; fix the evaluation that produced them.")
    return array


def _check_op(op: str) -> None:
    if op not in _OPS:
        raise StatsError(f"Unknown comparison {op!r}; use one of {', '.join(_OPS)}.")


def _check_resamples(n_resamples: int) -> None:
    if n_resamples < 1:
        raise StatsError(f"n_resamples must be at least 1 (e.g. 2000), got {n_resamples}.")


# ---------------------------------------------------------------------------------------------
# Example-level intervals (bootstrap over test examples)


def _resampled_indices(n: int, n_resamples: int, rng: np.random.Generator) -> Iterator[NDArray[np.int64]]:
    """Yield index matrices of shape (chunk, n), n_resamples rows in all."""
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // n)
    done = 0
    while done < n_resamples:
        rows = min(rows_per_chunk, n_resamples - done)
        yield rng.integers(0, n, size=(rows, n))
        done += rows


def _apply_rowwise(statistic: Callable[..., Any], samples: NDArray[np.float64]) -> NDArray[np.float64]:
    """``statistic`` over each row; uses its ``axis=`` argument when it has one (np.mean, np.median)."""
    try:
        result = np.asarray(statistic(samples, axis=1), dtype=np.float64)
    except TypeError:
        result = np.array([float(statistic(row)) for row in samples], dtype=np.float64)
    if result.shape != (samples.shape[0],):
        raise StatsError(
            f"statistic must reduce each resample to one number, got shape {result.shape}; "
            "pass a reduction such as np.mean or np.median."
        )
    return result


def _bootstrap_replicates(
    values: NDArray[np.float64], statistic: Callable[..., Any], n_resamples: int, seed: int
) -> NDArray[np.float64]:
    """``statistic`` of ``n_resamples`` resamples (with replacement) of ``values``."""
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [_apply_rowwise(statistic, values[idx]) for idx in _resampled_indices(values.size, n_resamples, rng)]
    )


def _percentile_interval(
    replicates: NDArray[np.float64], estimate: float, confidence: float, method: str
) -> Interval:
    alpha = 1.0 - confidence
    low, high = np.quantile(replicates, [alpha / 2.0, 1.0 - alpha / 2.0])
    # A percentile interval can miss the point estimate for skewed statistics at low confidence;
    # a gate must never pass on an interval whose own estimate is on the wrong side, so widen it.
    return Interval(
        low=min(float(low), estimate),
        high=max(float(high), estimate),
        estimate=estimate,
        confidence=confidence,
        method=method,
    )


def bootstrap_ci(
    correct: ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    statistic: Callable[..., Any] = np.mean,
) -> Interval:
    """Percentile-bootstrap interval of ``statistic`` over per-example values.

    ``correct`` holds one value per test example: 0/1 correctness for accuracy, or any per-example
    score (loss, IoU). Examples are resampled with replacement ``n_resamples`` times, in chunks of
    vectorised numpy indexing (about 10x faster than ``scipy.stats.bootstrap`` at n = 10,000,
    2,000 resamples). ``statistic`` should accept ``axis=``; otherwise it is called row by row.

    The percentile interval is slightly too narrow for very small n (tens of examples), where
    the bootstrap distribution underestimates the spread.
    """
    _check_confidence(confidence)
    _check_resamples(n_resamples)
    values = _as_values(correct, "correct")
    replicates = _bootstrap_replicates(values, statistic, n_resamples, seed)
    estimate = float(statistic(values))
    return _percentile_interval(
        replicates, estimate, confidence, f"percentile bootstrap, {n_resamples} resamples"
    )


# ---------------------------------------------------------------------------------------------
# Seed-level intervals and their combination with example-level ones


def seeds_ci(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Student-t interval of the mean score across training seeds.

    ``mean +- t_{(1+c)/2, k-1} * s / sqrt(k)`` with ``s`` the sample standard deviation of the ``k``
    per-seed scores. Assumes the per-seed scores are roughly normal, which is usual for accuracy-
    like scores away from 0 and 1. Needs at least two seeds.
    """
    _check_confidence(confidence)
    scores = _as_values(list(values), "values")
    if scores.size < 2:
        raise StatsError(
            f"seeds_ci needs at least 2 seed scores to estimate seed variance, got {scores.size}; "
            "run more seeds or use bootstrap_ci for example-level uncertainty alone."
        )
    mean = float(scores.mean())
    standard_error = float(scores.std(ddof=1)) / math.sqrt(scores.size)
    half_width = float(_scipy_stats().t.ppf(0.5 + confidence / 2.0, df=scores.size - 1)) * standard_error
    return Interval(
        low=mean - half_width,
        high=mean + half_width,
        estimate=mean,
        confidence=confidence,
        method=f"Student t over {scores.size} seeds",
    )


def combine_intervals(example_level: Interval, seed_level: Interval) -> Interval:
    """One interval holding both test-set (example) and training-seed uncertainty.

    Method: the two sources are treated as independent and their half-widths are added in
    quadrature (root-sum-square), separately below and above the estimate so a skewed bootstrap
    interval stays skewed. Each half-width keeps its own small-sample quantile (bootstrap
    percentile, Student t with k-1 df), so the result is never narrower than either input. A pooled
    variance with Welch-Satterthwaite degrees of freedom would be a little narrower, but can come
    out narrower than the seed interval alone, which reads as a contradiction in a gate report.

    The estimate is the seed-level one (mean over seeds). Both intervals must share a confidence.
    """
    if not math.isclose(example_level.confidence, seed_level.confidence):
        raise StatsError(
            f"cannot combine a {example_level.confidence:.0%} interval with a {seed_level.confidence:.0%} "
            "one; compute both at the same confidence."
        )
    estimate = seed_level.estimate
    below = math.hypot(example_level.estimate - example_level.low, seed_level.estimate - seed_level.low)
    above = math.hypot(example_level.high - example_level.estimate, seed_level.high - seed_level.estimate)
    return Interval(
        low=estimate - below,
        high=estimate + above,
        estimate=estimate,
        confidence=seed_level.confidence,
        method=f"({example_level.method}) + ({seed_level.method}) in quadrature",
    )


def combined_ci(
    per_seed_values: Sequence[ArrayLike],
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Interval of a mean score from per-example values of several seeds on the same test set.

    ``per_seed_values[s][i]`` is example ``i``'s value (e.g. 0/1 correctness) under training seed
    ``s``. Example-level: :func:`bootstrap_ci` of each example's value averaged over seeds.
    Seed-level: :func:`seeds_ci` of the per-seed means. Combined by :func:`combine_intervals`.
    The example-level part also carries a little seed noise (averaged over k seeds), so the
    result errs on the wide side.
    """
    if len(per_seed_values) < 2:
        raise StatsError(
            f"combined_ci needs per-example values from at least 2 seeds, got {len(per_seed_values)}; "
            "with one seed use bootstrap_ci."
        )
    arrays = [_as_values(values, f"per_seed_values[{s}]") for s, values in enumerate(per_seed_values)]
    lengths = {array.size for array in arrays}
    if len(lengths) != 1:
        raise StatsError(
            f"every seed must be scored on the same test examples, got lengths {sorted(lengths)}."
        )
    matrix = np.stack(arrays)
    example_level = bootstrap_ci(
        matrix.mean(axis=0), confidence=confidence, n_resamples=n_resamples, seed=seed
    )
    seed_level = seeds_ci(matrix.mean(axis=1).tolist(), confidence=confidence)
    return combine_intervals(example_level, seed_level)


# ---------------------------------------------------------------------------------------------
# Verdicts


def verdict(interval: Interval, threshold: float, op: str) -> Verdict:
    """PASS if the whole interval satisfies ``score <op> threshold``, FAIL if none of it does.

    INCONCLUSIVE when the interval straddles the threshold: the data cannot tell, so a gate should
    gather more (seeds, examples) rather than flip a coin.
    """
    _check_op(op)
    if math.isnan(threshold):
        raise StatsError("threshold is NaN; give the gate a number.")
    low, high = interval.low, interval.high
    if op == ">=":
        passed, failed = low >= threshold, high < threshold
    elif op == ">":
        passed, failed = low > threshold, high <= threshold
    elif op == "<=":
        passed, failed = high <= threshold, low > threshold
    else:
        passed, failed = high < threshold, low >= threshold
    if passed:
        return Verdict.PASS
    if failed:
        return Verdict.FAIL
    return Verdict.INCONCLUSIVE


def verdict_message(interval: Interval, threshold: float, op: str, *, metric: str = "score") -> str:
    """A one-line account of :func:`verdict` that names the values, for gate reports."""
    outcome = verdict(interval, threshold, op)
    how = {
        Verdict.PASS: "wholly satisfies",
        Verdict.FAIL: "wholly violates",
        Verdict.INCONCLUSIVE: "straddles",
    }[outcome]
    return f"{outcome.name}: {metric} {interval} {how} {metric} {op} {threshold:.4g}"


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
    a = _as_values(correct_a, "correct_a")
    b = _as_values(correct_b, "correct_b")
    if a.shape != b.shape:
        raise StatsError(
            f"paired comparison needs both models scored on the same examples, got {a.size} and {b.size}."
        )
    _check_confidence(confidence)
    _check_resamples(n_resamples)
    differences = b - a
    replicates = _bootstrap_replicates(differences, np.mean, n_resamples, seed)
    difference = float(differences.mean())
    interval = _percentile_interval(
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
    array = _as_values(values, name)
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
        p_value = float(_scipy_stats().binomtest(only_a, discordant, 0.5).pvalue)
        return McNemarResult(float(only_a), p_value, only_a, only_b, "exact binomial")
    statistic = (abs(only_a - only_b) - 1.0) ** 2 / discordant
    if abs(only_a - only_b) <= 1:
        statistic = 0.0  # the continuity correction cannot make the evidence negative
    p_value = float(_scipy_stats().chi2.sf(statistic, df=1))
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
    regressed = math.isnan(current) or worsening > allowed
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
    scores = _as_values(list(values), "values")
    if not higher_is_better:
        scores = -scores
    n = scores.size
    rank = math.floor(false_failure_rate * (n + 1) + 1e-9)
    if rank >= 1:
        threshold = float(np.sort(scores)[rank - 1])
    elif n >= 2:
        quantile = float(_scipy_stats().t.ppf(1.0 - false_failure_rate, df=n - 1))
        threshold = float(scores.mean() - quantile * scores.std(ddof=1) * math.sqrt(1.0 + 1.0 / n))
    else:
        raise StatsError(
            "suggest_threshold needs at least 2 values to estimate the spread between runs; run more seeds."
        )
    return threshold if higher_is_better else -threshold
