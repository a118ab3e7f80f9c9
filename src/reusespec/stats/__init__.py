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

from reusespec.errors import StatsError
from reusespec.stats.comparisons import (
    McNemarResult,
    PairedComparison,
    RegressionResult,
    mcnemar,
    paired_bootstrap,
    regression_check,
    suggest_threshold,
)
from reusespec.stats.intervals import (
    Interval,
    Verdict,
    bootstrap_ci,
    combine_intervals,
    combined_ci,
    seeds_ci,
    verdict,
    verdict_message,
)

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
