"""Which compared scores a baseline gates, and measured costs judged as measurements.

By default a baseline gates the scores a spec compared in an ``assert`` (and those its
``reuse_gate`` marker names, or all with ``--reuse-gate-scores all``); every other score is
*tracked*: compared and shown, never failing. A measured cost (latency, peak memory) is gated
only when it was measured on a machine with the baseline's fingerprint
(:func:`reusespec.machine.comparable`), and a slower result on a machine too noisy to decide
(:func:`reusespec.measurement.too_noisy`) is INCONCLUSIVE rather than FAIL.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from reusespec.machine import comparable
from reusespec.measurement import Measurement, latency_verdict, too_noisy
from reusespec.stats import Verdict

__all__ = ["MEASURED_METRICS", "measured_verdict", "measurement_of", "noise_of", "tracked_reason"]

MEASURED_METRICS = frozenset({"latency_ms", "peak_memory_mb"})


def measurement_of(score: Mapping[str, Any]) -> Measurement | None:
    """The measurement a latency or memory score carries (in ``extra``), if any."""
    extra = score.get("extra") or {}
    data = extra.get("measurement") if isinstance(extra, Mapping) else None
    return Measurement.from_dict(data) if isinstance(data, Mapping) else None


def tracked_reason(
    baseline: Mapping[str, Any],
    current: Mapping[str, Any],
    *,
    gate_all: bool = False,
    gate_metrics: Collection[str] = (),
) -> str | None:
    """Why the baseline only tracks this score (None: it gates it).

    ``current`` is the score dict of this run (``threshold`` set when the spec asserted it, the
    machine fingerprint in ``extra`` for measured costs); ``baseline`` the stored score.
    """
    metric = str(current.get("metric"))
    asserted = current.get("threshold") is not None
    if not (asserted or gate_all or metric in gate_metrics):
        return (
            "not asserted by the spec (name it in @pytest.mark.reuse_gate(...), or pass "
            "--reuse-gate-scores all, to gate it)"
        )
    if metric in MEASURED_METRICS:
        extra = current.get("extra") or {}
        same, reason = comparable(baseline.get("machine"), extra.get("machine"))
        if not same:
            return reason
    return None


def noise_of(current: Mapping[str, Any]) -> str | None:
    """Why the machine was too noisy for this measured score to show a regression (None: it was not)."""
    measurement = measurement_of(current)
    if current.get("metric") != "latency_ms" or measurement is None:
        return None
    return too_noisy(measurement)


def measured_verdict(
    record_extra: Mapping[str, Any], metric: str, threshold: float, op: str
) -> tuple[Verdict, str] | None:
    """The verdict of an asserted measured cost by its measurement (None: it carries none)."""
    measurement = measurement_of({"extra": record_extra})
    if metric not in MEASURED_METRICS or measurement is None:
        return None
    # Contention slows a pass down but does not change what it allocates: only latency is excused.
    load_limit = None if metric == "latency_ms" else float("inf")
    spread_limit = None if metric == "latency_ms" else float("inf")
    if load_limit is None or spread_limit is None:
        return latency_verdict(measurement, threshold, op, metric=metric)
    return latency_verdict(
        measurement,
        threshold,
        op,
        metric=metric,
        max_load_per_core=load_limit,
        max_relative_spread=spread_limit,
    )
