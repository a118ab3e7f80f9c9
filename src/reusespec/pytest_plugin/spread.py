"""The spread a saved baseline stores: reruns of each spec while ``--reuse-save-baseline`` runs.

* ``--reuse-baseline-spread N``: N reruns at more seeds (the seed noise of this checkpoint);
* ``--reuse-baseline-spread-backbone OLD=NEW`` (two or more): one rerun per reference checkpoint
  of equal quality (a retrain) in place of OLD, at the spec's own seeds: the noise between
  checkpoints, which is what a candidate checkpoint shows. These take precedence for the specs
  that load OLD.

Each score's values in these reruns give its spread (:mod:`reusespec.gate.spread`; the
baseline's own value is left out), which the baseline stores so that a later comparison allows
the noise a healthy candidate shows. A threshold missed in a rerun is part of that spread, not a
failure of the spec; a crash in a rerun fails the spec as any crash does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from reusespec.gate.spread import spreads_over_runs

if TYPE_CHECKING:
    from reusespec.gate.decision import SeedJudgement
    from reusespec.gate.settings import GateSettings
    from reusespec.results import ScoreRecord
    from reusespec.session import ReuseSession

__all__ = ["baseline_spreads", "reference_runs", "seed_runs"]


def baseline_spreads(
    item: pytest.Item,
    records: list[ScoreRecord],
    session: ReuseSession,
    judgement: SeedJudgement,
    settings: GateSettings,
    progress: Callable[[str], None],
) -> list[dict[str, Any] | None]:
    """Each score's spread to store in the baseline (None where none is measured or measurable)."""
    if settings.save_baseline is None or judgement.crashed:
        return [None] * len(records)
    references = {
        old: news for old, news in settings.spread_backbones.items() if old in session.used_backbones
    }
    averaged = 1  # reference runs repeat the judged seeds, so each is one value like the judged one
    if references:
        runs = reference_runs(item, records, session, judgement.seeds, references, progress)
    elif settings.baseline_spread:
        averaged = len(judgement.seeds)
        # A score the spec itself averaged over k seeds (``probe(..., seeds=k)``) used k seeds from the
        # run's: reruns step by k, so that no two runs share a seed and the spread is not understated.
        counts = (len(r.extra.get("seed_values") or [0]) for r in records)
        stride = 1 if averaged > 1 else max(counts, default=1)
        first = judgement.seeds[-1] + stride
        seeds = range(first, first + stride * settings.baseline_spread, stride)
        runs = seed_runs(item, records, session, seeds, progress)
    else:
        return [None] * len(records)
    return [None if s is None else s.as_dict() for s in spreads_over_runs(records, runs, averaged)]


def _rerun(
    item: pytest.Item, records: list[ScoreRecord], session: ReuseSession, seed: int
) -> list[ScoreRecord]:
    """The scores of one more run of the spec at ``seed`` (a threshold it misses is part of the spread)."""
    records.clear()
    session.config.seed = seed
    with contextlib.suppress(AssertionError):  # the scores were recorded before the assert
        item.runtest()
    return list(records)


def reference_runs(
    item: pytest.Item,
    records: list[ScoreRecord],
    session: ReuseSession,
    seeds: list[int],
    references: dict[str, list[str]],
    progress: Callable[[str], None],
) -> list[list[ScoreRecord]]:
    """The spec's scores with each reference checkpoint in place of its OLD, at the spec's seeds.

    A score over several seeds becomes one value per reference: the mean over the same seeds the
    judged score averaged. Scores a reference labels with its own name are labelled OLD again, so
    that they match the judged ones. ``records`` holds the judged scores again on return.
    """
    from reusespec.across_seeds import aggregate_records

    judged, used, previous = list(records), dict(session.used_backbones), session.backbone_alias
    runs = []
    try:
        for index in range(max(len(news) for news in references.values())):
            swap = {old: news[index] for old, news in references.items() if index < len(news)}
            role_of = {new: old for old, new in swap.items()}
            session.backbone_alias = lambda spec, swap=swap: (
                swap.get(spec) or (previous(spec) if previous else spec)
            )
            per_seed = []
            for seed in seeds:
                progress(f"{item.nodeid}: measuring the spread with {', '.join(swap.values())} (seed {seed})")
                rerun = _rerun(item, records, session, seed)
                per_seed.append([replace(r, backbone=role_of.get(r.backbone, r.backbone)) for r in rerun])
            runs.append(per_seed[0] if len(per_seed) == 1 else aggregate_records(per_seed, seeds))
    finally:
        records[:] = judged
        session.backbone_alias = previous
        session.used_backbones.clear()
        session.used_backbones.update(used)
    return runs


def seed_runs(
    item: pytest.Item,
    records: list[ScoreRecord],
    session: ReuseSession,
    seeds: range,
    progress: Callable[[str], None],
) -> list[list[ScoreRecord]]:
    """The spec's scores in reruns at ``seeds``; ``records`` holds the judged scores again on return."""
    judged = list(records)
    try:
        runs = []
        for seed in seeds:
            progress(f"{item.nodeid}: measuring the seed spread with seed {seed}")
            runs.append(_rerun(item, records, session, seed))
    finally:
        records[:] = judged
    return runs
