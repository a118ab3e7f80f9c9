"""Tolerances: how much worse than its baseline a score may get, per metric, and its direction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reusespec.errors import BaselineError
from reusespec.metric_ranges import PROPORTIONS

__all__ = [
    "DEFAULT_TOLERANCES",
    "LOWER_IS_BETTER",
    "Tolerance",
    "default_tolerance",
    "higher_is_better",
    "parse_tolerance",
]


@dataclass(frozen=True)
class Tolerance:
    """How much worse than the baseline a score may get: ``max(abs, rel * |baseline|)``."""

    abs: float | None = None
    rel: float | None = None
    basis: str | None = None  # where a derived tolerance came from (the seed spread)

    def allowed(self, baseline: float) -> float:
        return max(self.abs or 0.0, (self.rel or 0.0) * abs(baseline))

    def describe(self) -> str:
        if self.basis is not None:
            return self.basis
        parts = []
        if self.abs is not None:
            parts.append(f"abs {self.abs:g}")
        if self.rel is not None:
            parts.append(f"rel {self.rel:.0%}")
        return " or ".join(parts) if parts else "none"


# Defaults per metric. Accuracy-like scores: one point. Drops: two points. Model size and
# compute are deterministic, so only a 1% growth is tolerated; latency and memory are noisy
# measurements. Transferability scores have arbitrary scales, so a relative tolerance.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    **{name: Tolerance(abs=0.01) for name in PROPORTIONS},
    "absolute_drop": Tolerance(abs=0.02),
    "relative_drop": Tolerance(abs=0.02),
    "mean_relative_drop": Tolerance(abs=0.02),
    "weighted_kendall_tau": Tolerance(abs=0.1),
    "spearman": Tolerance(abs=0.1),
    "params": Tolerance(rel=0.01),
    "gmacs": Tolerance(rel=0.01),
    "gflops": Tolerance(rel=0.01),
    "checkpoint_mb": Tolerance(rel=0.01),
    "latency_ms": Tolerance(rel=0.5),
    "peak_memory_mb": Tolerance(rel=0.2),
}
_FALLBACK_TOLERANCE = Tolerance(rel=0.05)

LOWER_IS_BETTER = frozenset(
    {
        "absolute_drop",
        "relative_drop",
        "mean_relative_drop",
        "params",
        "gmacs",
        "gflops",
        "checkpoint_mb",
        "latency_ms",
        "peak_memory_mb",
    }
)


def default_tolerance(metric: str) -> Tolerance:
    return DEFAULT_TOLERANCES.get(metric, _FALLBACK_TOLERANCE)


def higher_is_better(metric: str, op: str | None = None) -> bool:
    """The direction of a metric: from the comparison a spec made with it, else by its name."""
    if op in (">=", ">"):
        return True
    if op in ("<=", "<"):
        return False
    return metric not in LOWER_IS_BETTER


def parse_tolerance(value: Any) -> Tolerance:
    """``0.02`` (absolute), ``"5%"`` (relative), or ``{"abs": 0.02, "rel": 0.05}``."""
    if isinstance(value, Tolerance):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"abs", "rel"}
        if unknown:
            raise BaselineError(f"unknown tolerance keys {sorted(unknown)}; use 'abs' and/or 'rel'")
        return Tolerance(
            abs=None if value.get("abs") is None else float(value["abs"]),
            rel=None if value.get("rel") is None else float(value["rel"]),
        )
    if isinstance(value, str) and value.strip().endswith("%"):
        return Tolerance(rel=float(value.strip()[:-1]) / 100.0)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Tolerance(abs=float(value))
    raise BaselineError(
        f"cannot read tolerance {value!r}: give a number (absolute, e.g. 0.02), a percentage string "
        "(relative, e.g. '5%') or a dict {'abs': ..., 'rel': ...}"
    )
