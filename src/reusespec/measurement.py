"""Measured costs as measurements: repeats, warm-up, the load at the time, a spread and an interval.

A latency is not a property of a model alone: it moves with what else the machine runs. One
number (a median of 20 timed runs) compared with a threshold or a baseline gives a gate that
fails on a busy machine and passes on an idle one. A :class:`Measurement` keeps what is needed
to judge it:

* the median of the timed runs, and a distribution-free interval of the median from order
  statistics (:func:`median_interval`): the ranks ``l`` and ``n - l + 1`` of the sorted runs,
  with ``l`` the largest rank for which ``P(Binomial(n, 1/2) < l) <= (1 - c) / 2``;
* the spread (interquartile range over the median), minimum and maximum;
* the 1-minute load average per core before and after, and the repeats and warm-up runs.

:func:`too_noisy` says when the machine was too busy for the measurement to decide anything,
and :func:`latency_verdict` judges a threshold with it: contention only ever makes a forward
pass slower, so on a busy machine a *fast* result still counts (PASS of ``latency <= T``) while
a *slow* one is INCONCLUSIVE, not FAIL.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from reusespec.stats import StatsError, Verdict

__all__ = [
    "MAX_LOAD_PER_CORE",
    "MAX_RELATIVE_SPREAD",
    "Measurement",
    "attach_measurement",
    "latency_verdict",
    "load_per_core",
    "measure",
    "median_interval",
    "summarize",
    "too_noisy",
]

# Above one runnable process per core, another process is waiting for the CPU whenever ours runs.
MAX_LOAD_PER_CORE = 1.0
# Timed runs of one forward pass on a quiet machine agree within a few percent; an interquartile
# range over a quarter of the median means the runs were interrupted.
MAX_RELATIVE_SPREAD = 0.25


@dataclass(frozen=True)
class Measurement:
    """Repeated timings (or sizes) of one thing, summarised; ``low``/``high`` bound the median."""

    median: float
    low: float
    high: float
    confidence: float
    minimum: float
    maximum: float
    relative_spread: float
    repeats: int
    warmup: int
    load_before: float
    load_after: float
    cores: int
    unit: str = "ms"

    @property
    def load_per_core(self) -> float:
        """The higher of the load averages before and after, per core."""
        return max(self.load_before, self.load_after) / max(self.cores, 1)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "load_per_core": self.load_per_core}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


def median_interval(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """``(low, high, coverage)``: an order-statistic interval of the median of ``samples``.

    Distribution-free (it assumes only independent runs from one distribution): with ``n``
    sorted values, ``[x_(l), x_(n-l+1)]`` covers the true median with probability
    ``1 - 2 P(B <= l - 1)`` for ``B ~ Binomial(n, 1/2)``, and ``l`` is the largest rank keeping
    that at least ``confidence``. With fewer than 6 values no ranks reach 95%: the interval is
    then ``[min, max]`` and ``coverage`` says how much it covers.
    """
    if not 0.0 < confidence < 1.0:
        raise StatsError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    values = sorted(float(v) for v in samples)
    if not values or not all(math.isfinite(v) for v in values):
        raise StatsError(f"median_interval needs finite samples, got {list(samples)!r}")
    n = len(values)
    alpha = 1.0 - confidence
    # P(B <= k) for B ~ Binomial(n, 1/2), accumulated exactly.
    cdf, total = [], 0
    for k in range(n + 1):
        total += math.comb(n, k)
        cdf.append(total / 2**n)
    rank = 1
    while rank + 1 <= (n + 1) // 2 and cdf[rank] <= alpha / 2:
        rank += 1  # rank + 1 still leaves P(B <= rank) below alpha / 2 on each side
    coverage = 1.0 - 2.0 * cdf[rank - 1]
    return values[rank - 1], values[n - rank], coverage


def load_per_core() -> float:
    """The 1-minute load average over the core count (0 where the OS does not report it)."""
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        return 0.0


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def summarize(
    samples: Sequence[float],
    *,
    warmup: int,
    load_before: float,
    load_after: float,
    cores: int | None = None,
    confidence: float = 0.95,
    unit: str = "ms",
) -> Measurement:
    """A :class:`Measurement` of ``samples`` (the timed runs, warm-up excluded)."""
    low, high, _ = median_interval(samples, confidence)
    values = sorted(float(v) for v in samples)
    median = statistics.median(values)
    if len(values) >= 4:
        q1, _, q3 = statistics.quantiles(values, n=4)
        spread = (q3 - q1) / median if median > 0 else 0.0
    else:
        spread = (values[-1] - values[0]) / median if median > 0 else 0.0
    return Measurement(
        median=median,
        low=low,
        high=high,
        confidence=confidence,
        minimum=values[0],
        maximum=values[-1],
        relative_spread=spread,
        repeats=len(values),
        warmup=warmup,
        load_before=load_before,
        load_after=load_after,
        cores=cores or os.cpu_count() or 1,
        unit=unit,
    )


def measure(
    run: Callable[[], float], *, repeats: int, warmup: int, confidence: float = 0.95, unit: str = "ms"
) -> Measurement:
    """Call ``run`` ``warmup`` times (ignored), then ``repeats`` times; each call returns its value."""
    if repeats < 1:
        raise StatsError(f"repeats must be at least 1, got {repeats}")
    for _ in range(warmup):
        run()
    before = _load()
    samples = [run() for _ in range(repeats)]
    return summarize(
        samples, warmup=warmup, load_before=before, load_after=_load(), confidence=confidence, unit=unit
    )


def too_noisy(
    measurement: Measurement,
    *,
    max_load_per_core: float = MAX_LOAD_PER_CORE,
    max_relative_spread: float = MAX_RELATIVE_SPREAD,
) -> str | None:
    """Why the machine was too busy for ``measurement`` to show the model's own cost, or None."""
    reasons = []
    if measurement.load_per_core > max_load_per_core:
        reasons.append(
            f"load average {measurement.load_per_core:.2f} per core (above {max_load_per_core:g}: "
            "other processes were waiting for the CPU)"
        )
    if measurement.relative_spread > max_relative_spread:
        reasons.append(
            f"timed runs spread by {measurement.relative_spread:.0%} of their median (interquartile "
            f"range; above {max_relative_spread:.0%}: the runs were interrupted)"
        )
    return "; ".join(reasons) or None


def _holds(value: float, op: str, threshold: float) -> bool:
    return {
        ">=": value >= threshold,
        ">": value > threshold,
        "<=": value <= threshold,
        "<": value < threshold,
    }[op]


def latency_verdict(
    measurement: Measurement,
    threshold: float,
    op: str,
    *,
    metric: str = "latency_ms",
    max_load_per_core: float = MAX_LOAD_PER_CORE,
    max_relative_spread: float = MAX_RELATIVE_SPREAD,
) -> tuple[Verdict, str]:
    """Judge ``metric <op> threshold`` by the interval of the median, and say why.

    PASS when the whole interval satisfies the comparison, FAIL when none of it does,
    INCONCLUSIVE when it straddles the threshold. Contention only slows a pass down, so when the
    machine was too noisy (:func:`too_noisy`) the verdict a slowdown could have produced (FAIL
    of ``<=``, PASS of ``>=``) is INCONCLUSIVE instead, with the reason.
    """
    if op not in (">=", ">", "<=", "<"):
        raise StatsError(f"op must be one of >=, >, <=, <; got {op!r}")
    if not math.isfinite(threshold):
        raise StatsError(f"threshold {threshold} is not a finite number; give the gate a number")
    low_holds, high_holds = _holds(measurement.low, op, threshold), _holds(measurement.high, op, threshold)
    if low_holds and high_holds:
        outcome = Verdict.PASS
    elif not low_holds and not high_holds:
        outcome = Verdict.FAIL
    else:
        outcome = Verdict.INCONCLUSIVE
    unit = measurement.unit
    described = (
        f"{metric} median {measurement.median:.4g} {unit} [{measurement.low:.4g}, {measurement.high:.4g}] "
        f"({measurement.confidence:.0%} order-statistic interval of {measurement.repeats} runs, "
        f"load {measurement.load_per_core:.2f}/core) vs {metric} {op} {threshold:.4g}"
    )
    slow_side = outcome is (Verdict.FAIL if op in ("<=", "<") else Verdict.PASS)
    noise = too_noisy(
        measurement, max_load_per_core=max_load_per_core, max_relative_spread=max_relative_spread
    )
    if slow_side and noise is not None:
        return (
            Verdict.INCONCLUSIVE,
            f"INCONCLUSIVE: {described}: the machine was too noisy to decide ({noise})",
        )
    return outcome, f"{outcome.name}: {described}"


def attach_measurement(record: Any, complexity: Any) -> None:
    """Give a latency or peak-memory score its measurement: interval, spread, load and machine.

    ``record`` is the :class:`~reusespec.results.ScoreRecord` of ``latency_ms`` or
    ``peak_memory_mb``; ``complexity`` the :class:`~reusespec.complexity.Complexity` measured.
    Other scores are left as they are.
    """
    from reusespec.machine import machine_fingerprint

    measurement = {"latency_ms": complexity.latency, "peak_memory_mb": complexity.memory}.get(record.metric)
    if not isinstance(measurement, Measurement):
        return
    record.ci_low, record.ci_high = measurement.low, measurement.high
    record.extra = {
        **record.extra,
        "measurement": measurement.as_dict(),
        "machine": machine_fingerprint(str(complexity.device)).as_dict(),
    }
