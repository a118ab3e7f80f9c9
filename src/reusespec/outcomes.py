"""Results of fine-tuning, domain shift, profiles, complexity and rankings.

Like :class:`~reusespec.results.ProbeResult`, each exposes its numbers as
:class:`~reusespec.results.Score` floats, so thresholds asserted on them reach the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reusespec.measurement import attach_measurement
from reusespec.results import ProbeResult, Result, Score, attach_accuracy_ci


class FinetuneOutcome(Result):
    """A fine-tuning run (partial, full, lp-ft, head-only trained end to end)."""

    def __init__(self, backbone: str, task: str, run: Any) -> None:
        self.records = []
        self.run = run  # reusespec.finetune.FinetuneResult
        self.backbone, self.task, self.strategy = backbone, task, run.strategy
        last = run.curve[-1] if run.curve else {}
        extra = {
            "trainable_params": run.trainable_params,
            "total_params": run.total_params,
            "epochs_run": run.epochs_run,
            "best_epoch": run.best_epoch,
            "final_train_loss": last.get("train_loss"),
            "final_val_accuracy": last.get("val_accuracy"),
            "device": run.device,
            "seed": run.seed,
        }
        if run.probe_accuracy is not None:
            extra["probe_accuracy"] = run.probe_accuracy
        common: dict[str, Any] = dict(
            backbone=backbone, task=task, strategy=run.strategy, seconds=run.seconds
        )
        self.accuracy = self._score("accuracy", run.accuracy, extra=extra, **common)
        attach_accuracy_ci(self.records[-1], run.test_labels, run.test_predictions)
        self.macro_f1 = self._score("macro_f1", run.macro_f1, extra=extra, **common)
        self.top5_accuracy = (
            self._score("top5_accuracy", run.top5_accuracy, extra=extra, **common)
            if run.top5_accuracy is not None
            else None
        )
        # The training curve's end points, as rows of their own so the summary table shows them.
        if last.get("train_loss") is not None:
            self.final_train_loss = self._score("final_train_loss", last["train_loss"], extra=extra, **common)
        if last.get("val_accuracy") is not None:
            self.final_val_accuracy = self._score(
                "final_val_accuracy", last["val_accuracy"], extra=extra, **common
            )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["run"], name)  # curve, trainable_params, seconds, ...

    def __repr__(self) -> str:
        return (
            f"FinetuneOutcome({self.backbone} on {self.task}, {self.strategy}: accuracy={self.accuracy:.4f}, "
            f"trainable={self.run.trainable_params}, epochs={self.run.epochs_run}, {self.run.seconds:.1f}s)"
        )


class ShiftResult(Result):
    """A head trained on clean data, scored clean and under a shift (corruption or another dataset)."""

    def __init__(
        self,
        backbone: str,
        task: str,
        shift: str,
        clean: ProbeResult,
        shifted_accuracy: float,
        seconds: float,
        cache_hit: bool,
    ) -> None:
        self.records = []
        self.backbone, self.task, self.shift = backbone, task, shift
        self.clean = clean
        label = f"{task} ~ {shift}"
        drop = clean.accuracy - shifted_accuracy
        relative = drop / clean.accuracy if clean.accuracy > 0 else 0.0
        common: dict[str, Any] = dict(
            backbone=backbone, task=label, strategy="head-only", seconds=seconds, cache_hit=cache_hit
        )
        self.clean_accuracy = self._score("clean_accuracy", clean.accuracy, **common)
        self.shifted_accuracy = self._score("shifted_accuracy", shifted_accuracy, **common)
        self.absolute_drop = self._score("absolute_drop", drop, **common)
        self.relative_drop = self._score("relative_drop", relative, **common)
        corruption, at, severity = shift.rpartition("@")
        for record in self.records:
            record.shift = shift
            if at and corruption and severity.isdigit():  # a corruption, not another dataset
                record.corruption, record.severity = corruption, int(severity)

    def __repr__(self) -> str:
        return (
            f"ShiftResult({self.backbone} on {self.task} ~ {self.shift}: clean={self.clean_accuracy:.4f}, "
            f"shifted={self.shifted_accuracy:.4f}, relative_drop={self.relative_drop:.4f})"
        )


class ShiftSuiteResult(Result):
    """Accuracy under each corruption and severity, and the means over the suite."""

    def __init__(self, backbone: str, task: str, shifts: Sequence[tuple[str, int, ShiftResult]]) -> None:
        self.records = []
        self.backbone, self.task = backbone, task
        self.table: dict[str, dict[int, float]] = {}
        for name, severity, result in shifts:
            self.table.setdefault(name, {})[severity] = float(result.shifted_accuracy)
        clean = float(shifts[0][2].clean_accuracy) if shifts else 0.0
        accuracies = [float(r.shifted_accuracy) for _, _, r in shifts]
        mean_acc = sum(accuracies) / len(accuracies) if accuracies else 0.0
        seconds = sum(r.clean.seconds for _, _, r in shifts[:1])
        common: dict[str, Any] = dict(
            backbone=backbone,
            task=f"{task} ~ suite",
            strategy="head-only",
            seconds=seconds,
            extra={"table": self.table, "clean_accuracy": clean},
        )
        self.clean_accuracy = Score(clean)
        self.mean_accuracy = self._score("mean_corrupted_accuracy", mean_acc, **common)
        self.mean_relative_drop = self._score(
            "mean_relative_drop", (clean - mean_acc) / clean if clean else 0.0, **common
        )
        for record in self.records:
            record.shift = "suite"
        worst = min(self.table, key=lambda n: sum(self.table[n].values())) if self.table else ""
        self.worst_corruption = worst

    def __repr__(self) -> str:
        return (
            f"ShiftSuiteResult({self.backbone} on {self.task}: clean={float(self.clean_accuracy):.4f}, "
            f"mean corrupted={self.mean_accuracy:.4f}, worst={self.worst_corruption})"
        )


class ProfileResult(Result):
    """One backbone over many tasks: per-task scores and their aggregates."""

    def __init__(self, backbone: str, per_task: Mapping[str, Result], metric: str = "accuracy") -> None:
        self.records = []
        self.backbone = backbone
        self.results = dict(per_task)
        self.accuracies: dict[str, Score] = {}
        for task, result in per_task.items():
            value = getattr(result, metric)
            self.records.append(value.record)
            self.accuracies[task] = value
        values = {t: float(v) for t, v in self.accuracies.items()}
        self.worst_task = min(values, key=values.__getitem__)
        self.best_task = max(values, key=values.__getitem__)
        common: dict[str, Any] = dict(
            backbone=backbone,
            task=f"profile({len(values)} tasks)",
            strategy="profile",
            extra={"per_task": values, "worst_task": self.worst_task},
        )
        self.mean_accuracy = self._score("mean_accuracy", sum(values.values()) / len(values), **common)
        self.min_accuracy = self._score("min_accuracy", values[self.worst_task], **common)

    def __repr__(self) -> str:
        return (
            f"ProfileResult({self.backbone}: mean={self.mean_accuracy:.4f}, min={self.min_accuracy:.4f} "
            f"({self.worst_task}))"
        )


class ProfileMatrix(Result):
    """Several backbones over the same tasks: the backbone x task matrix."""

    def __init__(self, profiles: Sequence[ProfileResult]) -> None:
        self.records = [r for p in profiles for r in p.records]
        self.profiles = {p.backbone: p for p in profiles}
        self.matrix = {p.backbone: {t: float(a) for t, a in p.accuracies.items()} for p in profiles}
        self.best_backbone = max(self.profiles, key=lambda b: float(self.profiles[b].mean_accuracy))

    def __getitem__(self, backbone: str) -> ProfileResult:
        return self.profiles[backbone]

    def __repr__(self) -> str:
        return f"ProfileMatrix({len(self.profiles)} backbones, best={self.best_backbone})"


class ComplexityResult(Result):
    """Parameters, MACs/FLOPs, latency, memory and checkpoint size of a backbone."""

    def __init__(self, backbone: str, complexity: Any, seconds: float, weights_loaded: bool) -> None:
        self.records = []
        self.backbone, self.complexity = backbone, complexity
        size = "x".join(str(s) for s in complexity.input_size)
        extra = {
            "input_size": list(complexity.input_size),
            "device": complexity.device,
            "latency_batch_size": complexity.latency_batch_size,
            "weights_loaded": weights_loaded,
        }
        common: dict[str, Any] = dict(
            backbone=backbone, task=f"input {size}", strategy="complexity", seconds=seconds, extra=extra
        )
        self.params = self._score("params", complexity.params, **common)
        self.trainable_params = Score(complexity.trainable_params)
        self.gmacs = self._score("gmacs", complexity.gmacs, **common)
        self.gflops = self._score("gflops", complexity.gflops, **common)
        self.macs, self.flops = Score(complexity.macs), Score(complexity.flops)
        self.checkpoint_mb = self._score("checkpoint_mb", complexity.checkpoint_mb, **common)
        self.latency_ms = (
            self._score("latency_ms", complexity.latency_ms, **common)
            if complexity.latency_ms is not None
            else None
        )
        self.peak_memory_mb = (
            self._score("peak_memory_mb", complexity.peak_memory_mb, **common)
            if complexity.peak_memory_mb is not None
            else None
        )
        for record in self.records:  # measured costs carry their spread, interval, load and machine
            attach_measurement(record, complexity)

    def __repr__(self) -> str:
        return (
            f"ComplexityResult({self.backbone}: params={int(self.params):,}, gmacs={self.gmacs:.3f}, "
            f"checkpoint={self.checkpoint_mb:.1f} MiB, latency={self.latency_ms})"
        )


class Ranking(Result):
    """Backbones ordered by a transferability score computed on frozen features (no training)."""

    def __init__(
        self, task: str, method: str, scores: Mapping[str, float], seconds: float, cache_hit: bool
    ) -> None:
        self.records = []
        self.task, self.method = task, method
        self.scores_by_backbone = {
            b: self._score(
                method,
                v,
                backbone=b,
                task=task,
                strategy=f"score:{method}",
                seconds=seconds,
                cache_hit=cache_hit,
            )
            for b, v in scores.items()
        }
        self.order = sorted(scores, key=lambda b: scores[b], reverse=True)
        self.best = self.order[0]
        self.seconds = seconds

    def __getitem__(self, backbone: str) -> Score:
        return self.scores_by_backbone[backbone]

    def __repr__(self) -> str:
        ranked = ", ".join(f"{b}={float(self.scores_by_backbone[b]):.4g}" for b in self.order)
        return f"Ranking({self.method} on {self.task}: {ranked})"


class RankAgreementResult(Result):
    """How well a score's ranking agrees with head-only accuracy on the same task."""

    def __init__(
        self, ranking: Ranking, accuracies: Mapping[str, float], agreement: Any, probe_seconds: float
    ) -> None:
        self.records = []
        self.ranking, self.accuracies, self.agreement = ranking, dict(accuracies), agreement
        common: dict[str, Any] = dict(
            backbone=f"{len(accuracies)} backbones",
            task=ranking.task,
            strategy=f"score:{ranking.method}",
            seconds=ranking.seconds,
            extra={
                "scores": {b: float(v) for b, v in ranking.scores_by_backbone.items()},
                "accuracies": dict(accuracies),
                "scoring_seconds": ranking.seconds,
                "probing_seconds": probe_seconds,
            },
        )
        self.weighted_kendall_tau = self._score(
            "weighted_kendall_tau", agreement.weighted_kendall_tau, **common
        )
        self.spearman = self._score("spearman", agreement.spearman, **common)
        self.kendall_tau = Score(agreement.kendall_tau)
        self.probe_seconds = probe_seconds

    def __repr__(self) -> str:
        return (
            f"RankAgreementResult({self.ranking.method} on {self.ranking.task}: "
            f"weighted_tau={self.weighted_kendall_tau:.3f}, spearman={self.spearman:.3f})"
        )
