"""``--reuse-baseline-spread N``: replay a spec with N more seeds while a baseline is saved.

The values of each score over the spec's own seeds and these reruns give its seed spread
(:mod:`reusespec.gate.spread`), which the baseline stores so that a later comparison allows the
noise a healthy rerun shows. A threshold missed under another seed is part of that spread, not a
failure of the spec; a crash under another seed fails the spec as any crash does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from reusespec.gate.spread import SeedSpread, spreads_over_runs

if TYPE_CHECKING:
    from reusespec.gate.decision import SeedJudgement
    from reusespec.gate.settings import GateSettings
    from reusespec.results import ScoreRecord
    from reusespec.session import ReuseSession

__all__ = ["baseline_spreads", "measure_spread"]


def baseline_spreads(
    item: pytest.Item,
    records: list[ScoreRecord],
    session: ReuseSession,
    judgement: SeedJudgement,
    settings: GateSettings,
    progress: Callable[[str], None],
) -> list[dict[str, Any] | None]:
    """Each score's spread to store in the baseline (None where none is measured or measurable)."""
    if settings.save_baseline is None or not settings.baseline_spread or judgement.crashed:
        return [None] * len(records)
    averaged = len(judgement.seeds)
    # A score the spec itself averaged over k seeds (``probe(..., seeds=k)``) used k seeds from the
    # run's: reruns step by k, so that no two runs share a seed and the spread is not understated.
    stride = 1 if averaged > 1 else max((len(r.extra.get("seed_values") or [0]) for r in records), default=1)
    first = judgement.seeds[-1] + stride
    seeds = range(first, first + stride * settings.baseline_spread, stride)
    spreads = measure_spread(item, records, session, seeds, averaged, progress)
    return [None if s is None else s.as_dict() for s in spreads]


def measure_spread(
    item: pytest.Item,
    records: list[ScoreRecord],
    session: ReuseSession,
    seeds: range,
    averaged: int,
    progress: Callable[[str], None],
) -> list[SeedSpread | None]:
    """The spread of each of ``records`` (the judged scores) over themselves and reruns at ``seeds``.

    ``records`` is the list the spec writes its scores into; it holds the judged scores again on return.
    """
    judged = list(records)
    reruns = []
    try:
        for seed in seeds:
            progress(f"{item.nodeid}: measuring the seed spread with seed {seed}")
            records.clear()
            session.config.seed = seed
            with contextlib.suppress(AssertionError):  # the scores were recorded before the assert
                item.runtest()
            reruns.append(list(records))
    finally:
        records[:] = judged
    return spreads_over_runs(judged, reruns, averaged)
