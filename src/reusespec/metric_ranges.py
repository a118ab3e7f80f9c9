"""The range each score can take, so that an interval never claims values a score cannot have.

A Student-t interval over two or three seeds is symmetric and wide: around an accuracy of 0.97 it
can reach 1.07, and around a latency of 0.2 ms it can reach below zero. The score cannot be
there, so the interval's bounds are clipped to the metric's range (the interval then says less
than the data could rule out, never more).
"""

from __future__ import annotations

import math

__all__ = ["METRIC_RANGES", "PROPORTIONS", "clip_interval", "metric_range"]

_UNIT = (0.0, 1.0)
_NON_NEGATIVE = (0.0, math.inf)
_CORRELATION = (-1.0, 1.0)

# Scores that are shares of test examples (or means of such shares): in [0, 1].
PROPORTIONS = (
    "accuracy",
    "macro_f1",
    "top5_accuracy",
    "clean_accuracy",
    "shifted_accuracy",
    "mean_corrupted_accuracy",
    "mean_accuracy",
    "min_accuracy",
    "val_accuracy",
)

METRIC_RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(PROPORTIONS, _UNIT),
    # clean - shifted accuracy, and that drop over the clean accuracy (at most all of it).
    "absolute_drop": _CORRELATION,
    "relative_drop": (-math.inf, 1.0),
    "mean_relative_drop": (-math.inf, 1.0),
    "weighted_kendall_tau": _CORRELATION,
    "spearman": _CORRELATION,
    "kendall_tau": _CORRELATION,
    **dict.fromkeys(
        ("params", "gmacs", "gflops", "checkpoint_mb", "latency_ms", "peak_memory_mb", "seconds"),
        _NON_NEGATIVE,
    ),
}


def metric_range(metric: str) -> tuple[float, float]:
    """``(lowest, highest)`` value ``metric`` can take; unbounded for metrics not listed."""
    return METRIC_RANGES.get(metric, (-math.inf, math.inf))


def clip_interval(metric: str, low: float, high: float) -> tuple[float, float]:
    """``[low, high]`` clipped to the range of ``metric`` (NaN bounds are left as they are)."""
    lowest, highest = metric_range(metric)
    clipped_low = low if math.isnan(low) else min(max(low, lowest), highest)
    clipped_high = high if math.isnan(high) else max(min(high, highest), lowest)
    return clipped_low, clipped_high
