"""The sequential-seed decision: add seeds one at a time until a verdict is conclusive.

One implementation serves both :func:`decide_with_seeds` (a function of the seed that returns a
score) and the pytest release gate (which replays a whole spec per seed). Every look is another
chance of a false PASS or FAIL, so with ``L`` looks each uses confidence ``1 - (1 - c) / L``
(Bonferroni; see docs/reference.md, "Sequential seeds").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from reusespec.stats import Interval, StatsError, Verdict, seeds_ci, verdict

__all__ = ["SeedDecision", "SeedPlan", "decide_with_seeds", "plan_seeds", "run_sequential"]

T = TypeVar("T")
J = TypeVar("J")


@dataclass(frozen=True)
class SeedPlan:
    """How many seeds to look at first, at most, and at which confidence each look decides."""

    initial: int
    max_seeds: int
    per_look_confidence: float

    @property
    def looks(self) -> int:
        return self.max_seeds - self.initial + 1


def plan_seeds(
    initial: int,
    max_seeds: int,
    confidence: float,
    correction: Literal["bonferroni", "none"] = "bonferroni",
) -> SeedPlan:
    """A plan of ``max_seeds - initial + 1`` looks, each at the corrected confidence."""
    if max_seeds < initial:
        raise StatsError(f"max_seeds ({max_seeds}) must be at least initial_seeds ({initial}).")
    if correction not in ("bonferroni", "none"):
        raise StatsError(f"Unknown correction {correction!r}; use 'bonferroni' or 'none'.")
    looks = max_seeds - initial + 1
    per_look = 1.0 - (1.0 - confidence) / looks if correction == "bonferroni" else confidence
    return SeedPlan(initial, max_seeds, per_look)


def run_sequential(
    plan: SeedPlan,
    runs: list[T],
    add_seed: Callable[[int], T],
    judge: Callable[[list[T]], tuple[Verdict, J]],
) -> tuple[Verdict, J]:
    """Grow ``runs`` (in place) to ``plan.initial``, then by one until ``judge`` is conclusive.

    ``add_seed(i)`` produces the run of the ``i``-th seed (0-based); ``judge(runs)`` gives the
    verdict on the runs so far and whatever explains it. After ``plan.max_seeds`` runs the last
    verdict stands, INCONCLUSIVE included.
    """
    while len(runs) < plan.initial:
        runs.append(add_seed(len(runs)))
    while True:
        outcome, detail = judge(runs)
        if outcome is not Verdict.INCONCLUSIVE or len(runs) >= plan.max_seeds:
            return outcome, detail
        runs.append(add_seed(len(runs)))


@dataclass(frozen=True)
class SeedDecision:
    """Result of :func:`decide_with_seeds`."""

    verdict: Verdict
    values: tuple[float, ...]
    seeds: tuple[int, ...]
    interval: Interval
    per_look_confidence: float
    max_seeds: int

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def stopped_early(self) -> bool:
        return self.n_seeds < self.max_seeds


def decide_with_seeds(
    run_seed: Callable[[int], float],
    threshold: float,
    op: str,
    *,
    initial_seeds: int = 3,
    max_seeds: int = 10,
    confidence: float = 0.95,
    correction: Literal["bonferroni", "none"] = "bonferroni",
) -> SeedDecision:
    """Run seeds 0, 1, 2, ... until the seed-level verdict is conclusive or the budget is spent.

    Rule: run ``initial_seeds`` seeds; then, after each seed, compute
    :func:`~reusespec.stats.seeds_ci` and stop as soon as :func:`~reusespec.stats.verdict` is
    PASS or FAIL; after ``max_seeds`` seeds return whatever the verdict is (possibly
    INCONCLUSIVE). With ``correction="bonferroni"`` (default) each of the
    ``L = max_seeds - initial_seeds + 1`` looks uses confidence ``1 - (1 - confidence) / L``,
    which bounds the chance of any false decision by ``1 - confidence``; ``"none"`` looks at
    ``confidence`` every time. The returned interval is at the per-look confidence.
    """
    verdict(Interval(0.0, 0.0, 0.0, 0.5, "check"), 0.0, op)  # rejects an unknown operator early
    if not 0.0 < confidence < 1.0:
        raise StatsError(f"confidence must lie strictly between 0 and 1 (e.g. 0.95), got {confidence}.")
    if initial_seeds < 2:
        raise StatsError(f"initial_seeds must be at least 2 to estimate seed variance, got {initial_seeds}.")
    plan = plan_seeds(initial_seeds, max_seeds, confidence, correction)

    def add_seed(seed: int) -> float:
        value = float(run_seed(seed))
        if not math.isfinite(value):
            raise StatsError(f"run_seed({seed}) returned {value}; a seed's score must be a finite number.")
        return value

    def judge(values: list[float]) -> tuple[Verdict, Interval]:
        interval = seeds_ci(values, confidence=plan.per_look_confidence)
        return verdict(interval, threshold, op), interval

    values: list[float] = []
    outcome, interval = run_sequential(plan, values, add_seed, judge)
    return SeedDecision(
        verdict=outcome,
        values=tuple(values),
        seeds=tuple(range(len(values))),
        interval=interval,
        per_look_confidence=plan.per_look_confidence,
        max_seeds=max_seeds,
    )
