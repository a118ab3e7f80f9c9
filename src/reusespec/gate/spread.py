"""Seed spread: how far a healthy rerun moves a score, and the tolerance that noise needs.

A score moves when the run is reseeded (the seed moves the train/val boundary, the few-shot
sample, head initialisation and data order), and a retrained checkpoint of equal quality moves it
at least as much (its spread comes from reference checkpoints instead, when there are some: the
plugin's ``--reuse-baseline-spread-backbone``). A fixed tolerance inside that spread fails
healthy candidates: the demo's 20-shot probe, whose accuracy has a standard deviation of three
points over seeds, cannot be held to one point.

A baseline saved with ``--reuse-baseline-spread N`` replays every spec with N more seeds and
stores each score's spread over those N runs (``{"sd": ..., "seeds": ...}``: the standard
deviation of the value a run reports, and how many values estimated it); a score that is already
a mean over seeds has it from its ``extra.seed_values`` (their standard deviation over the square
root of their number). The comparison then allows at least what the spread needs
(docs/reference.md, "Seed-spread tolerance"): the baseline and a healthy candidate are two
independent draws, so their difference has standard deviation ``sd * sqrt(2)``; ``sd`` is
estimated from ``n`` values, so the one-sided ``1 - alpha`` bound uses Student's t with ``n - 1``
degrees of freedom:

    allowed = max(tolerance, t(1 - alpha, n - 1) * sd * sqrt(2))

``alpha`` is :data:`SPREAD_ALPHA` per score, so that a run of ten gated scores fails a healthy
candidate with probability well under 1% (union bound, with room for scores that are not normal).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reusespec.gate.tolerances import Tolerance

__all__ = [
    "SPREAD_ALPHA",
    "SeedSpread",
    "noise_allowance",
    "spread_of",
    "spreads_over_runs",
    "widen",
]

# Per score. The union bound gives 0.2% for a run of ten normally distributed gated scores; the rest
# of a 1% budget is left for scores that are not normal: a probe's L2 choice makes accuracies jump
# between a few values, with rare outliers (over all pairs of recorded baseline and candidate runs of
# the demo specs, bench/bench_gate.py: 0.46% of runs failed at this alpha, 0.80% at 0.0005, 0.99% at 0.001).
SPREAD_ALPHA = 0.0002


@dataclass(frozen=True)
class SeedSpread:
    """The standard deviation of a score's reported value, estimated from ``seeds`` values."""

    sd: float
    seeds: int

    @classmethod
    def from_values(cls, values: Sequence[float], averaged: int = 1) -> SeedSpread | None:
        """The spread of a value that is the mean of ``averaged`` draws like ``values``.

        None with fewer than two finite values.
        """
        finite = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
        if len(finite) < 2:
            return None
        return cls(statistics.stdev(finite) / math.sqrt(averaged), len(finite))

    def as_dict(self) -> dict[str, Any]:
        return {"sd": self.sd, "seeds": self.seeds}


def _seed_values(score: Mapping[str, Any]) -> list[Any]:
    extra = score.get("extra")
    values = extra.get("seed_values") if isinstance(extra, Mapping) else None
    return list(values) if isinstance(values, list) else []


def spread_of(score: Mapping[str, Any]) -> SeedSpread | None:
    """A stored score's spread: its ``spread`` entry, else that of the mean of its per-seed values."""
    stored = score.get("spread")
    if isinstance(stored, Mapping):
        sd, seeds = stored.get("sd"), stored.get("seeds")
        if isinstance(sd, int | float) and math.isfinite(sd) and sd >= 0 and isinstance(seeds, int):
            return SeedSpread(float(sd), seeds) if seeds >= 2 else None
        return None
    values = _seed_values(score)
    return SeedSpread.from_values(values, averaged=max(1, len(values)))


def noise_allowance(spread: SeedSpread, alpha: float = SPREAD_ALPHA) -> float:
    """How much worse than the baseline a healthy candidate gets, with probability ``alpha``."""
    from scipy import stats as scipy_stats  # here: the xdist controller imports this module, never scipy

    if spread.seeds < 2 or not 0.0 < alpha < 1.0:
        raise ValueError(f"need >= 2 seeds and 0 < alpha < 1, got {spread}, {alpha}")
    quantile = float(scipy_stats.t.ppf(1.0 - alpha, spread.seeds - 1))
    return quantile * spread.sd * math.sqrt(2.0)


def widen(tolerance: Tolerance, baseline_value: float, spread: SeedSpread | None) -> Tolerance:
    """``tolerance``, or an absolute one at the noise allowance where that is larger (and says why)."""
    if spread is None:
        return tolerance
    allowance = noise_allowance(spread)
    if allowance <= tolerance.allowed(baseline_value):
        return tolerance
    return Tolerance(
        abs=allowance,
        basis=(
            f"{tolerance.describe()} widened to {allowance:.4g} by the seed spread: sd {spread.sd:.4g} over "
            f"{spread.seeds} seeds, one-sided {1 - SPREAD_ALPHA:.2%}"
        ),
    )


def _identity(record: Any) -> tuple[str, str, str, str]:
    return (str(record.backbone), str(record.task), str(record.strategy), str(record.metric))


def spreads_over_runs(
    judged: Sequence[Any], reruns: Sequence[Sequence[Any]], averaged: int = 1
) -> list[SeedSpread | None]:
    """Each judged score's spread, from the reruns' values of it.

    ``judged`` are the scores the gate judged, each the mean of ``averaged`` runs; ``reruns`` are
    more runs, one seed each. The judged value itself is left out: the baseline is compared with
    a candidate, and a spread estimated with the baseline in it grows exactly when the baseline is
    extreme, which would make the tolerance far looser than its ``alpha`` (the reruns alone make
    ``(baseline - candidate) / (sd * sqrt(2))`` a Student t with ``n - 1`` degrees of freedom).
    Without reruns, a judged mean's own per-seed values give its spread (a normal sample's mean is
    independent of its variance). Scores (:class:`~reusespec.results.ScoreRecord`) are matched by
    backbone, task, strategy, metric and order of appearance, as a baseline matches them.
    """

    def indexed(records: Sequence[Any]) -> dict[tuple[Any, ...], Any]:
        seen: dict[tuple[str, str, str, str], int] = {}
        keyed = {}
        for record in records:
            key = _identity(record)
            keyed[(*key, seen.get(key, 0))] = record
            seen[key] = seen.get(key, 0) + 1
        return keyed

    others = [indexed(run) for run in reruns]
    spreads = []
    for key, record in indexed(judged).items():
        values = [run[key].value for run in others if key in run]
        if not values and averaged > 1:
            values = list(record.extra.get("seed_values") or [])
        spreads.append(SeedSpread.from_values(values, averaged=averaged))
    return spreads
