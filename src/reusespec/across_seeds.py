"""Scores over several seeds: the mean, and an interval that holds both kinds of noise.

A spec's score moves when it is rerun with another seed (the train/val boundary, head
initialisation, data order) and it is measured on a finite test set. Repeating a computation
over seeds gives a score that is the mean over the seeds, with an interval from
:mod:`reusespec.stats`:

* one seed: the percentile bootstrap over test examples (:func:`~reusespec.stats.bootstrap_ci`);
* several seeds scored on the same test examples (accuracy, whose per-example predictions are
  kept): :func:`~reusespec.stats.combined_ci`, example-level and seed-level in quadrature;
* other scores over several seeds: the Student-t interval across seeds
  (:func:`~reusespec.stats.seeds_ci`), the only noise that can be measured for them.

Used by ``reuse.probe(..., seeds=3)`` / ``reuse.finetune(..., seeds=3)`` (:func:`over_seeds`)
and by the pytest release gate, which replays a whole spec per seed (``--reuse-seeds``).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from reusespec.errors import ReuseSpecError
from reusespec.metric_ranges import clip_interval
from reusespec.results import Result, Score, ScoreRecord
from reusespec.stats import Interval, bootstrap_ci, combined_ci, seeds_ci

__all__ = ["SeededResult", "aggregate_records", "interval_for", "over_seeds", "record_key", "satisfies"]


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


def satisfies(value: float, op: str, threshold: float) -> bool:
    """Whether ``value <op> threshold`` holds (the comparison a spec made)."""
    return bool(_OPS[op](value, threshold))


def record_key(record: ScoreRecord) -> tuple[str, str, str, str]:
    return (record.backbone, record.task, record.strategy, record.metric)


def _correct(record: ScoreRecord) -> np.ndarray | None:
    """Per-example 0/1 correctness of an accuracy record (mean over seeds if it holds several)."""
    if record.examples is None:
        return None
    labels, predictions = (np.asarray(a) for a in record.examples)
    correct = (predictions == labels).astype(np.float64)
    return correct.mean(axis=0) if correct.ndim == 2 else correct


def _same_examples(records: Sequence[ScoreRecord]) -> bool:
    labels = [np.asarray(r.examples[0]) for r in records if r.examples is not None]
    return len(labels) == len(records) and all(np.array_equal(labels[0], other) for other in labels[1:])


def interval_for(records: Sequence[ScoreRecord], confidence: float = 0.95) -> Interval | None:
    """The interval of the mean of one score over the seeds of ``records`` (one record per seed).

    None when the score carries no uncertainty that can be measured (one seed of a score with
    neither per-example data nor an interval, e.g. a parameter count). The bounds are clipped to
    the range the metric can take (:func:`reusespec.metric_ranges.clip_interval`).
    """
    interval = _unclipped_interval(records, confidence)
    if interval is None:
        return None
    low, high = clip_interval(records[0].metric, interval.low, interval.high)
    return replace(interval, low=min(low, interval.estimate), high=max(high, interval.estimate))


def _unclipped_interval(records: Sequence[ScoreRecord], confidence: float) -> Interval | None:
    values = [r.value for r in records]
    if len(records) == 1:
        (record,) = records
        correct = _correct(record)
        if correct is not None and correct.size:
            return bootstrap_ci(correct, confidence=confidence)
        if record.ci_low is not None and record.ci_high is not None:
            low, high = min(record.ci_low, record.value), max(record.ci_high, record.value)
            return Interval(low, high, record.value, 0.95, "recorded interval")
        return None
    if not all(math.isfinite(v) for v in values):
        return None
    if _same_examples(records):
        per_seed = [c for r in records if (c := _correct(r)) is not None]
        return combined_ci(per_seed, confidence=confidence)
    return seeds_ci(values, confidence=confidence)


def aggregate_records(
    per_seed: Sequence[Sequence[ScoreRecord]], seeds: Sequence[int], confidence: float = 0.95
) -> list[ScoreRecord]:
    """One record per score: the mean over seeds, its interval, and the per-seed values in ``extra``.

    ``per_seed[s]`` are the records one seed produced, in the order the computation made them;
    every seed must make the same scores. A threshold compared in any seed is kept (the mean of
    the per-seed thresholds, which differ only when a score was compared with another score) and
    ``passed`` is re-evaluated on the mean.
    """
    if not per_seed:
        raise ReuseSpecError("no seeds to aggregate")
    keys = [[record_key(r) for r in run] for run in per_seed]
    for seed, run_keys in zip(seeds, keys, strict=True):
        if run_keys != keys[0]:
            raise ReuseSpecError(
                f"seed {seed} produced different scores ({run_keys}) than seed {seeds[0]} ({keys[0]}); "
                "repeating over seeds needs a computation that makes the same calls whatever the seed"
            )
    aggregated = []
    for position in range(len(keys[0])):
        records = [run[position] for run in per_seed]
        aggregated.append(_aggregate(records, list(seeds), confidence))
    return aggregated


def _aggregate(records: list[ScoreRecord], seeds: list[int], confidence: float) -> ScoreRecord:
    first = records[0]
    values = [r.value for r in records]
    compared = [r for r in records if r.threshold is not None and r.op is not None]
    ops = {str(r.op) for r in compared}
    if len(ops) > 1:
        raise ReuseSpecError(
            f"{first.metric} of {first.backbone} on {first.task} was compared with {sorted(ops)!r} in "
            "different seeds; a spec repeated over seeds must make the same comparison each time"
        )
    mean = float(np.mean(values))
    threshold = float(np.mean([float(r.threshold or 0.0) for r in compared])) if compared else None
    op = compared[0].op if compared else None
    passed = satisfies(mean, op, threshold) if threshold is not None and op is not None else None
    extra = {
        **first.extra,
        "seeds": seeds,
        "seed_values": values,
        "seed_ci": [[r.ci_low, r.ci_high] for r in records],
        "seed_thresholds": [r.threshold for r in records],
    }
    examples = None
    if _same_examples(records):
        labels = np.asarray(first.examples[0])  # type: ignore[index]
        examples = (labels, np.stack([np.asarray(r.examples[1]) for r in records]))  # type: ignore[index]
    aggregated = replace(
        first,
        value=mean,
        seconds=float(sum(r.seconds for r in records)),
        cache_hit=None if first.cache_hit is None else all(bool(r.cache_hit) for r in records),
        threshold=threshold,
        op=op,
        passed=passed,
        ci_low=None,
        ci_high=None,
        extra=extra,
        examples=examples,
    )
    interval = interval_for(records, confidence)
    if interval is not None:
        aggregated.ci_low, aggregated.ci_high = interval.low, interval.high
        aggregated.extra["interval"] = interval.method
    return aggregated


class SeededResult(Result):
    """A result repeated over seeds: its scores are means, everything else is the first seed's.

    ``result.accuracy`` is a :class:`~reusespec.results.Score` of the mean accuracy whose record
    holds the combined interval; ``result.per_seed`` keeps every seed's own result.
    """

    def __init__(self, results: Sequence[Result], seeds: Sequence[int], confidence: float = 0.95) -> None:
        self.per_seed = list(results)
        self.seeds = list(seeds)
        self.records = aggregate_records([r.records for r in self.per_seed], self.seeds, confidence)
        self._aggregate_of = {id(r): a for r, a in zip(self.per_seed[0].records, self.records, strict=True)}

    def __getattr__(self, name: str) -> Any:
        state = self.__dict__
        if "per_seed" not in state:
            raise AttributeError(name)
        value = getattr(state["per_seed"][0], name)
        if isinstance(value, Score) and value.record is not None:
            aggregated = state["_aggregate_of"].get(id(value.record))
            if aggregated is not None:
                return Score(aggregated.value, aggregated)
        return value

    def __repr__(self) -> str:
        def score(r: ScoreRecord) -> str:
            interval = f" [{r.ci_low:.4f}, {r.ci_high:.4f}]" if r.ci_low is not None else ""
            return f"{r.metric}={r.value:.4f}{interval}"

        scores = ", ".join(score(r) for r in self.records)
        return f"SeededResult({type(self.per_seed[0]).__name__} over seeds {self.seeds}: {scores})"


def over_seeds(run: Callable[[int], Result], seeds: Iterable[int], confidence: float = 0.95) -> SeededResult:
    """``run(seed)`` for every seed, combined into one :class:`SeededResult`."""
    seed_list = list(seeds)
    if not seed_list:
        raise ReuseSpecError("seeds= must be at least 1")
    return SeededResult([run(seed) for seed in seed_list], seed_list, confidence)
