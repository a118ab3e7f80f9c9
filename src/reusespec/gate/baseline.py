"""Baselines: every score of a run, stored so a later run can be compared with it.

A release gate often asks a relative question: is the new checkpoint at least as reusable as
the last one? ``pytest --reuse-save-baseline PATH`` stores every score (with the per-example
test predictions of accuracy scores, compressed) and a receipt of what produced it;
``pytest --reuse-baseline PATH`` compares a run against it, score by score:

* **compatibility first**: a baseline made with other library versions, another seed or seed
  count, another task split or another input transform is refused with the reason
  (:func:`check_run_compatible`, :func:`check_spec_compatible`), never silently compared;
* **paired comparison**: accuracy scores measured on the same test examples are compared
  example by example (McNemar's test and a paired bootstrap of the difference, from
  :mod:`reusespec.stats`), not as two independent intervals;
* **tolerance**: a score regresses when it got worse than the baseline by more than
  ``max(abs, rel * |baseline|)`` (:func:`reusespec.stats.regression_check`), with defaults per
  metric (:data:`DEFAULT_TOLERANCES`) and per-spec overrides (``reuse_tolerance`` marker).

With confidence-aware verdicts the paired interval of the difference decides: PASS when all
of it is within the tolerance, FAIL when all of it is beyond, INCONCLUSIVE otherwise.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from reusespec.errors import BaselineError
from reusespec.gate.spread import spread_of
from reusespec.gate.tolerances import (
    DEFAULT_TOLERANCES,
    LOWER_IS_BETTER,
    Tolerance,
    default_tolerance,
    higher_is_better,
    parse_tolerance,
)
from reusespec.hashing import array_digest
from reusespec.stats import Interval, Verdict, mcnemar, paired_bootstrap, regression_check, verdict

SCHEMA = "reusespec-baseline"
SCHEMA_VERSION = 1

# Libraries whose version changes scores; a baseline from another major.minor release of any
# of them is refused (patch releases are accepted).
LIBRARIES = ("reusespec", "torch", "torchvision", "numpy", "scipy", "scikit-learn")

__all__ = [
    "DEFAULT_TOLERANCES",
    "LOWER_IS_BETTER",
    "Baseline",
    "BaselineError",
    "Comparison",
    "Tolerance",
    "check_run_compatible",
    "check_spec_compatible",
    "compare_score",
    "decode_array",
    "default_tolerance",
    "encode_array",
    "higher_is_better",
    "labels_digest",
    "library_versions",
    "match_scores",
    "parse_tolerance",
    "score_key",
    "stored_score",
]


# -- compact arrays --------------------------------------------------------------------------


def encode_array(array: Any) -> str:
    """An integer array as ``dtype:shape:base64(zlib(bytes))``, in the smallest integer dtype."""
    values = np.asarray(array)
    if values.dtype.kind not in "iub":
        raise BaselineError(f"only integer arrays (class predictions) are stored, got {values.dtype}")
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    dtype = next(
        (np.dtype(t) for t in ("u1", "u2", "u4") if low >= 0 and high <= np.iinfo(t).max),
        np.dtype("i8"),
    )
    payload = base64.b64encode(zlib.compress(values.astype(dtype).tobytes(), 9)).decode("ascii")
    shape = "x".join(str(n) for n in values.shape)
    return f"{dtype.str}:{shape}:{payload}"


def decode_array(text: str) -> np.ndarray:
    dtype, shape, payload = text.split(":", 2)
    dims = tuple(int(n) for n in shape.split("x")) if shape else ()
    data = zlib.decompress(base64.b64decode(payload))
    return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(dims).astype(np.int64)


def labels_digest(labels: Any) -> str:
    return array_digest(np.asarray(labels, dtype=np.int64))


# -- receipts and compatibility --------------------------------------------------------------


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _release(version: str) -> str:
    """``2.14.1+cpu`` -> ``2.14``: the part of a version that a baseline must match."""
    return ".".join(version.split("+")[0].split(".")[:2])


def check_run_compatible(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Reasons a baseline receipt cannot be compared with the current run's (empty: compatible).

    Receipts hold ``libraries`` (name -> version), ``seed`` and ``seeds`` (seeds per spec).
    """
    problems = []
    base_libs, libs = baseline.get("libraries", {}), current.get("libraries", {})
    for name in sorted(set(base_libs) | set(libs)):
        old, new = base_libs.get(name, "absent"), libs.get(name, "absent")
        if _release(old) != _release(new):
            problems.append(f"{name} {old} made the baseline, this run has {new}")
    for key, option in (("seed", "--reuse-seed"), ("seeds", "--reuse-seeds")):
        if key in baseline and key in current and baseline[key] != current[key]:
            problems.append(f"the baseline ran with {option} {baseline[key]}, this run with {current[key]}")
    return problems


def check_spec_compatible(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Reasons one spec's baseline cannot be compared with its current run (empty: compatible).

    Each side is a spec receipt: ``tasks`` (``"name@seed"`` -> fingerprints of the splits) and
    ``backbones`` (role -> fingerprint and ``transform``, the key of the input preprocessing).
    A changed backbone fingerprint is what a gate compares, so it is not a reason; a changed
    task split or preprocessing is.
    """
    problems = []
    base_tasks, tasks = baseline.get("tasks", {}), current.get("tasks", {})
    by_name: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for key, info in base_tasks.items():
        by_name.setdefault(info["task"], ({}, {}))[0][key] = info
    for key, info in tasks.items():
        by_name.setdefault(info["task"], ({}, {}))[1][key] = info
    for name, (old, new) in sorted(by_name.items()):
        if not old or not new:
            continue  # the spec now uses other tasks: its scores will not match by key anyway
        old_seeds = sorted(int(i["seed"]) for i in old.values())
        new_seeds = sorted(int(i["seed"]) for i in new.values())
        if old_seeds != new_seeds:
            problems.append(
                f"task {name!r} was split with seeds {old_seeds} in the baseline, {new_seeds} now"
            )
            continue
        for key in sorted(old):
            if old[key]["fingerprint"] != new[key]["fingerprint"]:
                what = "test split" if old[key]["test"] != new[key]["test"] else "train/val split"
                problems.append(
                    f"task {name!r} (seed {old[key]['seed']}) has a different {what} than in the baseline "
                    f"({old[key]['fingerprint'][:12]} vs {new[key]['fingerprint'][:12]}): the data or "
                    "the split changed"
                )
    base_bbs, bbs = baseline.get("backbones", {}), current.get("backbones", {})
    for role in sorted(set(base_bbs) & set(bbs)):
        if base_bbs[role]["transform"] != bbs[role]["transform"]:
            problems.append(
                f"backbone {role!r} preprocesses its input differently than in the baseline "
                f"({base_bbs[role].get('input', '?')} vs {bbs[role].get('input', '?')})"
            )
    return problems


# -- matching and comparing scores -----------------------------------------------------------


def score_key(score: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """What identifies a score within a spec: backbone role, task, strategy, metric."""
    role = score.get("role") or score["backbone"]
    return (str(role), str(score["task"]), str(score["strategy"]), str(score["metric"]))


def match_scores(
    baseline_scores: Sequence[Mapping[str, Any]], current_scores: Sequence[Mapping[str, Any]]
) -> list[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]]:
    """Pairs (baseline, current) by key and occurrence; None on a side that lacks the score."""

    def indexed(scores: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, ...], Mapping[str, Any]]:
        seen: dict[tuple[str, ...], int] = {}
        out = {}
        for score in scores:
            key = score_key(score)
            out[(*key, seen.get(key, 0))] = score
            seen[key] = seen.get(key, 0) + 1
        return out

    old, new = indexed(baseline_scores), indexed(current_scores)
    keys = list(new) + [k for k in old if k not in new]
    return [(old.get(k), new.get(k)) for k in keys]


@dataclass
class Comparison:
    """A score against its baseline value: the numbers, the test used, and the verdict."""

    backbone: str
    task: str
    strategy: str
    metric: str
    baseline: float
    current: float
    delta: float
    allowed: float
    tolerance: str
    higher_is_better: bool
    verdict: Verdict
    test: str
    p_value: float | None = None
    delta_low: float | None = None
    delta_high: float | None = None
    n_paired: int | None = None
    message: str = ""
    tracked: str | None = None  # why the baseline only tracks this score (None: it gates it)

    @property
    def regressed(self) -> bool:
        return self.verdict is Verdict.FAIL and self.tracked is None

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "verdict"}
        return {**data, "verdict": self.verdict.value}


def _correctness(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    correct = (predictions == labels).astype(np.float64)
    return correct.mean(axis=0) if correct.ndim == 2 else correct


def compare_score(
    baseline: Mapping[str, Any],
    current: Mapping[str, Any],
    tolerance: Tolerance,
    *,
    current_examples: tuple[Any, Any] | None = None,
    interval_verdicts: bool = False,
    confidence: float = 0.95,
) -> Comparison:
    """Compare one score with its baseline.

    ``baseline`` and ``current`` are score dicts (``value``, ``metric``, ``op``; the baseline's
    ``predictions`` and ``labels_digest`` when stored). ``current_examples`` are the current
    (labels, predictions). When both sides have predictions on the same test labels the
    comparison is paired: McNemar's test (one seed each) and a paired bootstrap of the
    difference; otherwise the point values are compared.

    Rule: without interval verdicts, FAIL iff the current value is worse than the baseline by
    more than the allowed tolerance (:func:`reusespec.stats.regression_check`). With them, and a
    paired interval of the difference, PASS when the whole interval is within the tolerance,
    FAIL when the whole interval is beyond it, INCONCLUSIVE otherwise.
    """
    metric = str(current["metric"])
    better_high = higher_is_better(metric, current.get("op") or baseline.get("op"))
    old, new = float(baseline["value"]), float(current["value"])
    check = regression_check(
        old, new, abs_tol=tolerance.abs, rel_tol=tolerance.rel, higher_is_better=better_high, metric=metric
    )
    outcome = Verdict.FAIL if check.regressed else Verdict.PASS
    test = "point values (no per-example predictions on both sides)"
    p_value = low = high = None
    n_paired = None
    paired = _paired(baseline, current_examples)
    if paired is not None:
        old_correct, new_correct = paired
        n_paired = int(old_correct.size)
        comparison = paired_bootstrap(old_correct, new_correct, confidence=confidence)
        low, high = comparison.interval.low, comparison.interval.high
        binary = np.all(np.isin(old_correct, (0.0, 1.0))) and np.all(np.isin(new_correct, (0.0, 1.0)))
        if binary:
            mc = mcnemar(old_correct, new_correct)
            p_value = mc.p_value
            test = (
                f"paired on {n_paired} identical test examples: McNemar ({mc.method}) p={mc.p_value:.3g}, "
                f"{mc.only_a_correct} only right in the baseline, {mc.only_b_correct} only right now; "
                f"paired bootstrap {confidence:.0%} CI of the difference [{low:+.4f}, {high:+.4f}]"
            )
        else:
            p_value = comparison.p_value
            test = (
                f"paired on {n_paired} identical test examples (averaged over seeds): paired bootstrap "
                f"{confidence:.0%} CI of the difference [{low:+.4f}, {high:+.4f}], p={comparison.p_value:.3g}"
            )
        if interval_verdicts and metric == "accuracy":
            outcome = _interval_verdict(comparison.interval, check.allowed, better_high)
    delta = new - old
    word = {Verdict.PASS: "ok", Verdict.FAIL: "REGRESSED", Verdict.INCONCLUSIVE: "INCONCLUSIVE"}[outcome]
    signed_allowed = -check.allowed if better_high else check.allowed
    message = (
        f"{word}: {metric} of {current['backbone']} on {current['task']} ({current['strategy']}): "
        f"baseline {old:.4f}, current {new:.4f}, delta {delta:+.4f}, allowed {signed_allowed:+.4f} "
        f"({tolerance.describe()}; {'higher' if better_high else 'lower'} is better); test: {test}"
    )
    return Comparison(
        backbone=str(current["backbone"]),
        task=str(current["task"]),
        strategy=str(current["strategy"]),
        metric=metric,
        baseline=old,
        current=new,
        delta=delta,
        allowed=check.allowed,
        tolerance=tolerance.describe(),
        higher_is_better=better_high,
        verdict=outcome,
        test=test,
        p_value=p_value,
        delta_low=low,
        delta_high=high,
        n_paired=n_paired,
        message=message,
    )


def _paired(
    baseline: Mapping[str, Any], current_examples: tuple[Any, Any] | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-example correctness of both sides, when both have predictions on the same labels."""
    if current_examples is None or not baseline.get("predictions") or not baseline.get("labels_digest"):
        return None
    labels = np.asarray(current_examples[0], dtype=np.int64)
    if labels_digest(labels) != baseline["labels_digest"]:
        return None
    old_predictions = decode_array(str(baseline["predictions"]))
    new_predictions = np.asarray(current_examples[1], dtype=np.int64)
    if old_predictions.shape[-1] != labels.size or new_predictions.shape[-1] != labels.size:
        return None
    return _correctness(old_predictions, labels), _correctness(new_predictions, labels)


def _interval_verdict(difference: Interval, allowed: float, better_high: bool) -> Verdict:
    """Non-inferiority by interval: the difference must stay within the allowed worsening."""
    if better_high:
        return verdict(difference, -allowed, ">=")
    return verdict(difference, allowed, "<=")


# -- the baseline file -----------------------------------------------------------------------


@dataclass
class Baseline:
    """Scores of a run, per spec, with the receipts needed to refuse incompatible comparisons.

    ``specs[nodeid]`` holds ``outcome``, ``receipt`` (tasks and backbones with fingerprints)
    and ``scores`` (score dicts; accuracy scores also ``predictions`` and ``labels_digest``).
    """

    receipt: dict[str, Any]
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "created": self.created,
            "receipt": self.receipt,
            "specs": {k: self.specs[k] for k in sorted(self.specs)},
        }

    def save(self, path: str | Path) -> Path:
        from reusespec.reporting.document import write_json_atomic

        return write_json_atomic(path, self.as_dict())

    @classmethod
    def load(cls, path: str | Path) -> Baseline:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise BaselineError(
                f"baseline {path} does not exist; create it on the reference run with "
                f"--reuse-save-baseline {path}"
            ) from None
        except (OSError, ValueError) as exc:
            raise BaselineError(f"baseline {path} is not readable JSON ({exc}); save it again") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise BaselineError(f"{path} is not a reusespec baseline (no schema {SCHEMA!r})")
        if data.get("version") != SCHEMA_VERSION:
            raise BaselineError(
                f"baseline {path} has format version {data.get('version')}, this reusespec reads "
                f"{SCHEMA_VERSION}; save the baseline again with this version"
            )
        _check_shape(data, path)
        return cls(
            receipt=dict(data.get("receipt", {})),
            specs=dict(data.get("specs", {})),
            created=str(data.get("created", "")),
        )

    def spec(self, nodeid: str) -> dict[str, Any] | None:
        return self.specs.get(nodeid)


def _check_shape(data: Mapping[str, Any], path: Path) -> None:
    """Refuse a baseline whose parts are not what ``--reuse-save-baseline`` writes, naming the part.

    A baseline is user-supplied JSON: a hand edit or another tool's file with the right schema line
    must end in a clear error, not in a traceback from deep inside a comparison.
    """

    def refuse(where: str, expected: str) -> BaselineError:
        return BaselineError(
            f"baseline {path}: {where} is not {expected}; it was not written by --reuse-save-baseline "
            "(or was edited): save it again"
        )

    def mapping(value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise refuse(where, "an object")
        return value

    receipt = mapping(data.get("receipt", {}), "'receipt'")
    for part in ("tasks", "backbones"):
        for key, info in mapping(receipt.get(part, {}), f"'receipt.{part}'").items():
            mapping(info, f"'receipt.{part}.{key}'")
    for nodeid, spec in mapping(data.get("specs", {}), "'specs'").items():
        spec = mapping(spec, f"spec {nodeid!r}")
        spec_receipt = mapping(spec.get("receipt", {}), f"the receipt of spec {nodeid!r}")
        for part in ("tasks", "backbones"):
            for key, info in mapping(
                spec_receipt.get(part, {}), f"the receipt of {nodeid!r}: {part}"
            ).items():
                info = mapping(info, f"the receipt of {nodeid!r}: {part}.{key}")
                if part == "tasks" and not isinstance(info.get("task"), str):
                    raise refuse(f"the receipt of {nodeid!r}: tasks.{key}.task", "a task string")
        scores = spec.get("scores", [])
        if not isinstance(scores, list):
            raise refuse(f"the scores of spec {nodeid!r}", "a list")
        for index, score in enumerate(scores):
            score = mapping(score, f"score {index} of spec {nodeid!r}")
            if not isinstance(score.get("metric"), str):
                raise refuse(f"the metric of score {index} of spec {nodeid!r}", "a string")
            if (
                "task" not in score
                or "strategy" not in score
                or not (score.get("role") or score.get("backbone"))
            ):
                raise refuse(f"score {index} of spec {nodeid!r}", "keyed by backbone, task and strategy")
            value = score.get("value")
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise refuse(f"the value of score {index} of spec {nodeid!r}", "a number or null")
            for text_field in ("backbone", "role", "task", "op", "predictions", "labels_digest"):
                if score.get(text_field) is not None and not isinstance(score[text_field], str):
                    raise refuse(f"{text_field!r} of score {index} of spec {nodeid!r}", "a string")
            spread = score.get("spread")
            if spread is not None and not (
                isinstance(spread, dict)
                and isinstance(spread.get("sd"), int | float)
                and spread["sd"] >= 0
                and type(spread.get("seeds")) is int
            ):
                raise refuse(f"the spread of score {index} of spec {nodeid!r}", "{'sd': >= 0, 'seeds': int}")


def stored_score(score: Mapping[str, Any], examples: tuple[Any, Any] | None) -> dict[str, Any]:
    """A score as a baseline keeps it: its fields, plus compact predictions for accuracy."""
    keep = ("backbone", "role", "task", "strategy", "metric", "value", "ci_low", "ci_high", "threshold", "op")
    stored = {k: score.get(k) for k in keep}
    stored["role"] = stored["role"] or stored["backbone"]
    machine = (score.get("extra") or {}).get("machine")
    if machine:  # a measured cost is compared only with one measured on the same kind of machine
        stored["machine"] = machine
    # the seed spread widens a tolerance that is inside it (reusespec.gate.spread)
    spread = score.get("spread") or spread_of(score)
    if spread is not None:
        stored["spread"] = spread if isinstance(spread, dict) else spread.as_dict()
    if examples is not None:
        stored["predictions"] = encode_array(examples[1])
        stored["labels_digest"] = labels_digest(examples[0])
    return stored
