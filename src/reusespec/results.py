"""Scores and results: what a spec computes and what the report shows.

Every number a result exposes is a :class:`Metric`: a float that also remembers the last
threshold it was compared with. ``assert result.accuracy >= 0.85`` therefore leaves the
threshold, the operator and the margin in the score's :class:`ScoreRecord`, and the report
shows them without any extra code in the spec.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


@dataclass
class ScoreRecord:
    """One score of one spec, as it appears in the summary table and the JSON report."""

    backbone: str
    task: str
    strategy: str
    metric: str
    value: float
    seconds: float = 0.0
    cache_hit: bool | None = None
    threshold: float | None = None
    op: str | None = None
    passed: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def margin(self) -> float | None:
        """How far the value is on the right side of the threshold (negative: wrong side)."""
        if self.threshold is None or self.op is None:
            return None
        return self.value - self.threshold if self.op in (">=", ">") else self.threshold - self.value

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "margin": self.margin}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreRecord:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**fields)


class Metric(float):
    """A float that records the thresholds it is compared against in its ScoreRecord."""

    record: ScoreRecord | None

    def __new__(cls, value: float, record: ScoreRecord | None = None) -> Metric:
        obj = super().__new__(cls, value)
        obj.record = record
        return obj

    def _compare(self, other: object, op: str) -> bool:
        if isinstance(other, bool) or not isinstance(other, int | float):
            return NotImplemented
        result = _OPS[op](float(self), float(other))
        if self.record is not None:
            self.record.threshold, self.record.op, self.record.passed = float(other), op, result
        return result

    def __ge__(self, other: object) -> bool:
        return self._compare(other, ">=")

    def __gt__(self, other: object) -> bool:
        return self._compare(other, ">")

    def __le__(self, other: object) -> bool:
        return self._compare(other, "<=")

    def __lt__(self, other: object) -> bool:
        return self._compare(other, "<")

    __hash__ = float.__hash__

    def __reduce__(self) -> tuple[type, tuple[float]]:
        return (float, (float(self),))  # pickles as a plain float


class Result:
    """Base of every result: builds its Metric attributes from ScoreRecords."""

    records: list[ScoreRecord]

    def _metric(self, record: ScoreRecord) -> Metric:
        self.records.append(record)
        return Metric(record.value, record)

    def _score(
        self,
        metric: str,
        value: float,
        *,
        backbone: str,
        task: str,
        strategy: str,
        seconds: float = 0.0,
        cache_hit: bool | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Metric:
        record = ScoreRecord(
            backbone, task, strategy, metric, float(value), seconds, cache_hit, extra=extra or {}
        )
        return self._metric(record)

    def scores(self) -> dict[str, float]:
        return {r.metric: r.value for r in self.records}


class ProbeResult(Result):
    """Head-only linear probe on cached features."""

    def __init__(
        self,
        *,
        backbone: str,
        task: str,
        metrics: dict[str, float],
        seconds: float,
        cache_hit: bool,
        l2: float,
        val_accuracy: float,
        sizes: dict[str, int],
        test_labels: Any,
        test_predictions: Any,
        strategy: str = "head-only",
    ) -> None:
        self.records = []
        self.backbone, self.task, self.strategy = backbone, task, strategy
        self.seconds, self.cache_hit, self.l2, self.val_accuracy, self.sizes = (
            seconds,
            cache_hit,
            l2,
            val_accuracy,
            sizes,
        )
        self.test_labels, self.test_predictions = test_labels, test_predictions
        extra = {"l2": l2, "val_accuracy": val_accuracy, **{f"n_{k}": v for k, v in sizes.items()}}

        def record(metric: str) -> ScoreRecord:
            return ScoreRecord(
                backbone, task, strategy, metric, metrics[metric], seconds, cache_hit, extra=extra
            )

        self.accuracy = self._metric(record("accuracy"))
        self.macro_f1 = self._metric(record("macro_f1"))
        self.top5_accuracy = self._metric(record("top5_accuracy")) if "top5_accuracy" in metrics else None

    def __repr__(self) -> str:
        top5 = f", top5={self.top5_accuracy:.4f}" if self.top5_accuracy is not None else ""
        return (
            f"ProbeResult({self.backbone} on {self.task}: accuracy={self.accuracy:.4f}, "
            f"macro_f1={self.macro_f1:.4f}{top5}, l2={self.l2:.0e}, n_test={self.sizes.get('test')})"
        )
