"""Scores and results: what a spec computes and what the report shows.

Every number a result exposes is a :class:`Score`: a float that also remembers the last
threshold it was compared with. ``assert result.accuracy >= 0.85`` therefore leaves the
threshold, the operator and the margin in the score's :class:`ScoreRecord`, and the report
shows them without any extra code in the spec. Only comparisons in an ``assert`` are recorded
as thresholds (:mod:`reusespec.asserted`); others are kept as tracked comparisons.
"""

from __future__ import annotations

import numbers
import operator
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

from reusespec.asserted import comparison_site

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
    ci_low: float | None = None
    ci_high: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # A score under a domain shift: the shift's label (``gaussian_noise@3``, ``target mnist5k``, or
    # ``suite``), and for a corruption its name and severity. ``task`` stays the display label
    # ``TASK ~ SHIFT``; reports read these fields rather than parse it.
    shift: str | None = None
    corruption: str | None = None
    severity: int | None = None
    # (test labels, test predictions) of an accuracy score, for paired comparisons with a baseline
    # (reusespec.gate.baseline); kept in process only, left out of as_dict so reports stay small.
    examples: tuple[Any, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def margin(self) -> float | None:
        """How far the value is on the right side of the threshold (negative: wrong side)."""
        if self.threshold is None or self.op is None:
            return None
        return self.value - self.threshold if self.op in (">=", ">") else self.threshold - self.value

    @property
    def shifted_task(self) -> str | None:
        """The task a shifted score's head was trained on (``task`` without `` ~ SHIFT``)."""
        return None if self.shift is None else self.task.removesuffix(f" ~ {self.shift}")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(replace(self, examples=None))
        del data["examples"]
        for key in _SHIFT_FIELDS:  # only on shifted scores: other scores keep the keys they had
            if data[key] is None:
                del data[key]
        return _plain({**data, "margin": self.margin})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreRecord:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**fields)


_SHIFT_FIELDS = ("shift", "corruption", "severity")


def _plain(value: Any) -> Any:
    """Python numbers for numpy/torch scalars and arrays, nested: pytest-xdist (execnet) cannot send
    numpy types from a worker, and JSON cannot write them."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(item) for item in value)
    if not isinstance(value, str | bytes) and callable(getattr(value, "tolist", None)):
        return value.tolist()
    return value


class Score(float):
    """A float score that records the thresholds it is compared against in its ScoreRecord.

    Called ``Metric`` before 0.2 (torchmetrics users read that as an object that computes);
    ``reusespec.results.Metric`` still works, with a DeprecationWarning.
    """

    record: ScoreRecord | None

    def __new__(cls, value: float, record: ScoreRecord | None = None) -> Score:
        obj = super().__new__(cls, value)
        obj.record = record
        return obj

    def _compare(self, other: object, op: str) -> bool:
        if isinstance(other, str | bytes) or other is None:
            raise TypeError(_not_a_threshold(self, other, op))
        if not isinstance(other, numbers.Real):  # numpy scalars are Real too
            return NotImplemented
        result = _OPS[op](float(self), float(other))
        if isinstance(other, bool):
            return result  # compares as a float would, but True/False is no threshold
        if self.record is not None:
            _remember(self.record, float(other), op, result, sys._getframe(2))
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


_PACKAGE_DIR = str(Path(__file__).resolve().parent)


def _remember(record: ScoreRecord, threshold: float, op: str, passed: bool, frame: FrameType) -> None:
    """Record a comparison as the score's threshold only when it ran in an ``assert``.

    A comparison elsewhere (``if score >= 0.999:``, a forgotten ``assert``) is tracked, not
    judged: it goes to ``extra["tracked_comparisons"]`` with where it ran. One whose source cannot
    be read (an interactive session), or made by reusespec itself (the standard suite's checks),
    is recorded as before.
    """
    site = comparison_site(frame)
    if site.asserted is not False or site.filename.startswith(_PACKAGE_DIR):
        record.threshold, record.op, record.passed = threshold, op, passed  # (the suite's own checks)
        return
    where = f"{Path(site.filename).name}:{site.lineno} (an {site.statement} statement, not an assert)"
    entry = {"op": op, "threshold": threshold, "passed": passed, "where": where}
    # A new dict: results may share one ``extra`` between their records.
    record.extra = {
        **record.extra,
        "tracked_comparisons": [*record.extra.get("tracked_comparisons", []), entry],
    }


def _not_a_threshold(metric: Score, other: object, op: str) -> str:
    """Why ``metric >= other`` cannot be a gate, and how to write it (a threshold read as text, None)."""
    name = metric.record.metric if metric.record is not None else "score"
    text = other.decode(errors="replace") if isinstance(other, bytes) else other
    try:
        number = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        fix = f"compare with a number, e.g. {name} {op} 0.9"
    else:
        fix = (
            f"write the number without quotes, {name} {op} {number!r} (a threshold read from a file "
            "or an environment variable needs float(...))"
        )
    return (
        f"cannot compare {name} = {float(metric):.4f} with {other!r} ({type(other).__name__}): "
        f"a threshold must be a number; {fix}"
    )


class Result:
    """Base of every result: builds its Score attributes from ScoreRecords."""

    records: list[ScoreRecord]

    def _metric(self, record: ScoreRecord) -> Score:
        self.records.append(record)
        return Score(record.value, record)

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
    ) -> Score:
        record = ScoreRecord(
            backbone, task, strategy, metric, float(value), seconds, cache_hit, extra=extra or {}
        )
        return self._metric(record)

    def scores(self) -> dict[str, float]:
        return {r.metric: r.value for r in self.records}


def attach_accuracy_ci(record: ScoreRecord, labels: Any, predictions: Any, confidence: float = 0.95) -> None:
    """Give an accuracy record its bootstrap interval over test examples (docs/reference.md, "Intervals")."""
    import numpy as np

    from reusespec.stats import bootstrap_ci

    correct = (np.asarray(predictions) == np.asarray(labels)).astype(float)
    if len(correct) == 0:
        return
    interval = bootstrap_ci(correct, confidence=confidence)
    record.ci_low, record.ci_high = interval.low, interval.high
    record.examples = (np.asarray(labels), np.asarray(predictions))


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
        attach_accuracy_ci(self.records[-1], test_labels, test_predictions)
        self.macro_f1 = self._metric(record("macro_f1"))
        self.top5_accuracy = self._metric(record("top5_accuracy")) if "top5_accuracy" in metrics else None

    def __repr__(self) -> str:
        top5 = f", top5={self.top5_accuracy:.4f}" if self.top5_accuracy is not None else ""
        return (
            f"ProbeResult({self.backbone} on {self.task}: accuracy={self.accuracy:.4f}, "
            f"macro_f1={self.macro_f1:.4f}{top5}, l2={self.l2:.0e}, n_test={self.sizes.get('test')})"
        )


def __getattr__(name: str) -> Any:
    if name == "Metric":
        import warnings

        warnings.warn(
            "reusespec.results.Metric is now reusespec.results.Score", DeprecationWarning, stacklevel=2
        )
        return Score
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
