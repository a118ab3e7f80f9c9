"""The core API: a session that resolves, caches and probes, usable without pytest.

>>> from reusespec import ReuseSession
>>> ReuseSession().reuse().probe("zoo:digits-cnn", "mnist5k:5-9").accuracy  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from reusespec.backbones.base import Backbone, TextInputSpec, check_modality
from reusespec.backbones.registry import BackboneContext, resolve_backbone
from reusespec.cache import FeatureCache
from reusespec.config import ReuseConfig
from reusespec.errors import ResourceUnavailable, ReuseSpecError, TaskError
from reusespec.feature_checks import check_features
from reusespec.features import extract_features, feature_key
from reusespec.heads import cached_fit, head_key
from reusespec.metrics import classification_metrics
from reusespec.outcomes import (
    ComplexityResult,
    FinetuneOutcome,
    ProfileMatrix,
    ProfileResult,
    RankAgreementResult,
    Ranking,
    ShiftResult,
    ShiftSuiteResult,
)
from reusespec.probe import DEFAULT_GRID, ProbeFit, fit_probe
from reusespec.results import ProbeResult, ScoreRecord
from reusespec.shift_and_rank import corrupted_test_split, score_features
from reusespec.tasks.base import Split, Task
from reusespec.tasks.registry import load_task


class ReuseSession:
    """Holds what a run shares: loaded backbones, loaded tasks, the feature cache, the device."""

    def __init__(self, config: ReuseConfig | None = None, worker_id: str | None = None) -> None:
        self.config = config or ReuseConfig()
        self.worker_id = worker_id
        cache_dir = self.config.cache_dir
        self.feature_cache = FeatureCache(cache_dir / "features", cache_dir=cache_dir)
        self.head_cache = FeatureCache(cache_dir / "heads", contents="probe heads", cache_dir=cache_dir)
        self.extractions = 0
        self._backbones: dict[str, Backbone] = {}
        self._tasks: dict[tuple[str, int], Task] = {}
        self.probe_fits: dict[tuple[str, str, tuple[float, ...]], ProbeFit] = {}
        self._device: torch.device | None = None
        # What specs used since the release gate last cleared these (its reproducibility receipt),
        # and the gate's backbone swap (--reuse-swap-backbone): spec string -> string to load.
        self.used_backbones: dict[str, Backbone] = {}
        self.used_tasks: dict[tuple[str, int], Task] = {}
        self.backbone_alias: Callable[[str], str] | None = None

    @property
    def device(self) -> torch.device:
        if self._device is None:
            from reusespec.devices import select_device

            self._device = select_device(self.config.device, self.worker_id)
        return self._device

    def progress(self, message: str) -> None:
        if self.config.progress is not None:
            self.config.progress(message)

    def backbone(self, spec: str) -> Backbone:
        """A backbone, loaded once per session."""
        target = self.backbone_alias(spec) if self.backbone_alias is not None else spec
        if target not in self._backbones:
            context = BackboneContext(
                cache_dir=self.config.cache_dir,
                allow_download=self.config.allow_download,
                trusted_pickles=self.config.trusted_pickles,
                progress=self.progress,
            )
            self._backbones[target] = resolve_backbone(target, context)
        self.used_backbones[spec] = self._backbones[target]
        return self._backbones[target]

    def task(self, spec: str, seed: int | None = None) -> Task:
        """A task with its splits for ``seed`` (the run's seed by default), loaded once per session."""
        seed = self.config.seed if seed is None else seed
        if (spec, seed) not in self._tasks:
            self._tasks[spec, seed] = load_task(
                spec, seed=seed, data_dir=self.config.data_dir, allow_download=self.config.allow_download
            )
        self.used_tasks[spec, seed] = self._tasks[spec, seed]
        return self._tasks[spec, seed]

    def features(self, backbone: Backbone, split: Split, label: str = "") -> tuple[np.ndarray, bool]:
        """Features of a split, from the cache or extracted once (under a lock) and cached."""

        def compute() -> np.ndarray:
            self.extractions += 1
            start = time.perf_counter()
            feats = extract_features(
                backbone,
                split,
                device=self.device,
                batch_size=self.config.batch_size,
                progress=self.progress,
                label=label,
            )
            self.progress(f"extracted {label} ({len(split)} examples) in {time.perf_counter() - start:.1f}s")
            return feats

        if split.base is not None and split.base_positions is not None:
            base_features, hit = self.features(backbone, split.base, label)
            return np.asarray(base_features[split.base_positions]), hit
        meta = {"backbone": backbone.name, "split": label, "n": len(split)}
        return self.feature_cache.get_or_compute(feature_key(backbone, split), compute, meta)

    def fit_head(
        self,
        backbone: Backbone,
        task: Task,
        feats: dict[str, np.ndarray],
        l2_grid: tuple[float, ...],
        label: str,
    ) -> ProbeFit:
        """The probe's head on these features: from the head cache, or fitted once and cached."""

        def fit() -> ProbeFit:
            start = time.perf_counter()
            fitted = fit_probe(
                feats["train"],
                task.train.labels,
                feats["val"],
                task.val.labels,
                num_classes=task.num_classes,
                l2_grid=l2_grid,
                device=self.device,
            )
            self.progress(f"fitted the probe head of {label} in {time.perf_counter() - start:.1f}s")
            return fitted

        key = head_key(backbone, task.train, task.val, task.num_classes, l2_grid, self.device)
        return cached_fit(self.head_cache, key, fit, self.device)

    def reuse(self, sink: list[ScoreRecord] | None = None) -> Reuse:
        return Reuse(self, sink)


class Reuse:
    """The facade a spec talks to; every result it returns is also added to ``records``."""

    def __init__(self, session: ReuseSession, sink: list[ScoreRecord] | None = None) -> None:
        self.session = session
        self.records: list[ScoreRecord] = [] if sink is None else sink

    def __repr__(self) -> str:
        config = self.session.config
        # Stable across runs and machines: it appears in assertion messages that reports compare.
        return f"{type(self).__name__}(seed={config.seed}, device={config.device!r})"

    def _unavailable(self, exc: ResourceUnavailable) -> None:
        """Called when weights or data are missing; the pytest plugin skips the spec here."""
        raise exc

    def _keep(self, result: Any) -> Any:
        self.records.extend(result.records)
        return result

    def backbone(self, spec: str) -> Backbone:
        try:
            return self.session.backbone(spec)
        except ResourceUnavailable as exc:
            self._unavailable(exc)
            raise

    def task(self, spec: str, seed: int | None = None) -> Task:
        try:
            return self.session.task(spec, seed)
        except ResourceUnavailable as exc:
            self._unavailable(exc)
            raise

    def zoo(self) -> list[str]:
        """The demo zoo's backbone strings."""
        from reusespec.backbones.zoo import zoo_names

        return zoo_names()

    def _probe(
        self, backbone: str, task: str, seed: int | None, l2_grid: tuple[float, ...]
    ) -> tuple[ProbeResult, ProbeFit, Backbone, Task]:
        start = time.perf_counter()
        bb = self.backbone(backbone)
        tk = self.task(task, seed)
        check_modality(backbone, bb.input_spec, task, tk.modality)
        feats, hits = {}, []
        for split in tk.splits():
            feats[split.name], hit = self.session.features(
                bb, split, label=f"{backbone} on {task} [{split.name}]"
            )
            hits.append(hit)
            check_features(
                feats[split.name],
                backbone,
                f"{split.name} features on {task}",
                warn_constant=split.name == "train",
            )
        key = (bb.fingerprint, tk.fingerprint, tuple(l2_grid))
        fit = self.session.probe_fits.get(key)
        if fit is None:  # a shift, a suite and a profile on the same task share one clean probe
            fit = self.session.fit_head(bb, tk, feats, l2_grid, label=f"{backbone} on {task}")
            self.session.probe_fits[key] = fit
        logits = fit.head.logits(feats["test"])
        result = ProbeResult(
            backbone=backbone,
            task=task,
            metrics=classification_metrics(tk.test.labels, logits),
            seconds=time.perf_counter() - start,
            cache_hit=all(hits),
            l2=fit.l2,
            val_accuracy=fit.val_accuracy,
            sizes={s.name: len(s) for s in tk.splits()},
            test_labels=tk.test.labels,
            test_predictions=logits.argmax(1),
        )
        return result, fit, bb, tk

    def probe(
        self,
        backbone: str,
        task: str,
        *,
        seed: int | None = None,
        seeds: int | None = None,
        l2_grid: tuple[float, ...] = DEFAULT_GRID,
    ) -> ProbeResult:
        """Head-only transfer: a linear probe on the backbone's frozen, cached features.

        ``seeds=k`` repeats it with seeds ``seed, seed+1, ...``: scores are means over the seeds,
        with an interval holding seed and test-set noise (:mod:`reusespec.across_seeds`).
        """
        if seeds is not None:
            return self._over_seeds(seed, seeds, lambda s: self._probe(backbone, task, s, l2_grid)[0])
        return self._keep(self._probe(backbone, task, seed, l2_grid)[0])

    def _over_seeds(self, seed: int | None, seeds: int, run: Callable[[int], Any]) -> Any:
        from reusespec.across_seeds import over_seeds

        first = self.session.config.seed if seed is None else seed
        return self._keep(over_seeds(run, range(first, first + seeds)))

    def finetune(
        self,
        backbone: str,
        task: str,
        *,
        strategy: str = "full",
        seed: int | None = None,
        seeds: int | None = None,
        unfreeze: int | None = None,
        unfreeze_modules: list[str] | None = None,
        **overrides: Any,
    ) -> FinetuneOutcome:
        """Adapt the backbone: ``head-only`` (trained end to end), ``partial``, ``full`` or ``lp-ft``.

        Training settings (``epochs``, ``lr_head``, ``lr_backbone``, ``batch_size``, ``augment``,
        ...) override the strategy's defaults; see :class:`reusespec.finetune.TrainConfig`.
        ``seeds=k`` repeats it over k seeds, as for :meth:`probe`.
        """
        from reusespec.finetune import finetune

        if seeds is not None:
            inner = Reuse(self.session)
            kwargs: dict[str, Any] = dict(unfreeze=unfreeze, unfreeze_modules=unfreeze_modules, **overrides)
            return self._over_seeds(
                seed, seeds, lambda s: inner.finetune(backbone, task, strategy=strategy, seed=s, **kwargs)
            )

        bb = self.backbone(backbone)
        tk = self.task(task, seed)
        run = finetune(
            bb,
            tk,
            strategy=strategy,
            unfreeze=unfreeze,
            unfreeze_modules=unfreeze_modules,
            device=self.session.device,
            seed=self.session.config.seed if seed is None else seed,
            progress=self.session.progress,
            **overrides,
        )
        return self._keep(FinetuneOutcome(backbone, task, run))

    def shift(
        self,
        backbone: str,
        task: str,
        *,
        corruption: str | None = None,
        severity: int = 3,
        target: str | None = None,
        seed: int | None = None,
        seeds: int | None = None,
    ) -> ShiftResult:
        """Domain shift: a probe trained on clean ``task``, scored on shifted test data.

        Either ``corruption`` (a CIFAR-10-C corruption at ``severity`` 1..5, applied to the test
        split on the fly, deterministic per seed) or ``target`` (another task with the same
        classes, e.g. MNIST-sample digits to scikit-learn digits). ``seeds=k``: as for :meth:`probe`.
        """
        if (corruption is None) == (target is None):
            raise ValueError(
                "give exactly one of corruption= (e.g. 'gaussian_noise') or target= (another task)"
            )

        def one(run_seed: int | None) -> ShiftResult:
            start = time.perf_counter()
            clean, fit, bb, tk = self._probe(backbone, task, run_seed, DEFAULT_GRID)
            return self._shifted(bb, tk, clean, fit, corruption, severity, target, run_seed, start)

        return self._over_seeds(seed, seeds, one) if seeds is not None else self._keep(one(seed))

    def shift_suite(
        self,
        backbone: str,
        task: str,
        *,
        corruptions: tuple[str, ...] | None = None,
        severities: tuple[int, ...] = (1, 2, 3, 4, 5),
        seed: int | None = None,
    ) -> ShiftSuiteResult:
        """Accuracy under every corruption of a suite (default: the CIFAR-10-C benchmark set) and severity.

        One head is trained on clean data and scored on every shifted test split; the report gets
        the suite's aggregates and the full table (in the score's ``extra``), not one row per cell.
        """
        from reusespec.corruptions import DEFAULT_SUITE
        from reusespec.text_corruptions import TEXT_CORRUPTIONS

        clean, fit, bb, tk = self._probe(backbone, task, seed, DEFAULT_GRID)
        shifts = []
        for name in corruptions or (TEXT_CORRUPTIONS if tk.modality == "text" else DEFAULT_SUITE):
            for severity in severities:
                shifted = self._shifted(bb, tk, clean, fit, name, severity, None, seed, time.perf_counter())
                shifts.append((name, severity, shifted))
        return self._keep(ShiftSuiteResult(backbone, task, shifts))

    def _shifted(
        self,
        bb: Backbone,
        tk: Task,
        clean: ProbeResult,
        fit: ProbeFit,
        corruption: str | None,
        severity: int,
        target: str | None,
        seed: int | None,
        start: float,
    ) -> ShiftResult:
        split, label = self._shifted_test_split(tk, corruption, severity, target, seed)
        feats, hit = self.session.features(bb, split, label=f"{bb.name} on {tk.name} ~ {label}")
        accuracy = classification_metrics(split.labels, fit.head.logits(feats))["accuracy"]
        elapsed = time.perf_counter() - start
        return ShiftResult(bb.name, tk.name, label, clean, accuracy, elapsed, bool(clean.cache_hit and hit))

    def _shifted_test_split(
        self, task: Task, corruption: str | None, severity: int, target: str | None, seed: int | None
    ) -> tuple[Split, str]:
        if target is not None:
            other = self.task(target, seed)
            if list(other.class_names) != list(task.class_names):
                raise TaskError(
                    f"cannot score a head trained on {task.name!r} on {target!r}: their classes differ "
                    f"({list(task.class_names)} vs {list(other.class_names)}); cross-dataset shift needs "
                    "the same label space (select classes with e.g. 'mnist5k:0-4')"
                )
            return other.test, f"target {target}"
        assert corruption is not None
        corruption_seed = self.session.config.seed if seed is None else seed
        return corrupted_test_split(task, corruption, severity, corruption_seed)

    def profile(
        self, backbone: str | list[str], tasks: list[str], *, strategy: str = "head-only", **kwargs: Any
    ) -> ProfileResult | ProfileMatrix:
        """One backbone over many tasks (a ProfileResult), or several (a ProfileMatrix)."""
        if not isinstance(backbone, str):
            return ProfileMatrix([self._profile_one(b, tasks, strategy, kwargs) for b in backbone])
        return self._profile_one(backbone, tasks, strategy, kwargs)

    def _profile_one(
        self, backbone: str, tasks: list[str], strategy: str, kwargs: dict[str, Any]
    ) -> ProfileResult:
        inner = Reuse(self.session)
        per_task: dict[str, Any] = {}
        for task in tasks:
            if strategy == "head-only":
                per_task[task] = inner.probe(backbone, task, **kwargs)
            else:
                per_task[task] = inner.finetune(backbone, task, strategy=strategy, **kwargs)
        return self._keep(ProfileResult(backbone, per_task))

    def complexity(
        self,
        backbone: str,
        *,
        input_size: tuple[int, ...] | None = None,
        batch_size: int = 1,
        latency: bool = True,
        memory: bool = True,
        include_head: bool = True,
    ) -> ComplexityResult:
        """Parameters, MACs (FLOPs = 2 x MACs), latency, peak memory and checkpoint size.

        Counted on the backbone as published, with its source head unless ``include_head=False``
        (as torchvision's weights' metadata counts). Missing weights: counted on the architecture.
        """
        from torch import nn

        from reusespec.backbones.registry import build_architecture
        from reusespec.complexity import measure_complexity

        start = time.perf_counter()
        try:
            bb = self.session.backbone(backbone)
            model: nn.Module = bb.model
            if include_head and bb.source_head is not None:
                model = nn.Sequential(bb.model, bb.source_head)
            spec = bb.input_spec
            weights_loaded = True
        except ResourceUnavailable as exc:
            scheme, _, rest = backbone.partition(":")
            try:
                if scheme == "torchvision":
                    model, spec = build_architecture(f"torchvision:{rest.split(':')[0]}:none")
                elif scheme in ("timm", "zoo") and not rest.startswith("digits-"):
                    model, spec = build_architecture(backbone)  # the architecture needs no weights
                else:
                    raise exc
            except ReuseSpecError:  # no weights-free architecture either: the missing resource is the reason
                self._unavailable(exc)
                raise exc from None
            weights_loaded = False
        size = input_size or (
            (spec.max_length,) if isinstance(spec, TextInputSpec) else (spec.channels, *spec.size)
        )
        measured = measure_complexity(
            model,
            tuple(size),
            device=self.session.device,
            batch_size=batch_size,
            measure_latency=latency,
            measure_memory=memory,
        )
        return self._keep(ComplexityResult(backbone, measured, time.perf_counter() - start, weights_loaded))

    def rank(
        self, backbones: list[str], task: str, *, method: str = "logme", seed: int | None = None
    ) -> Ranking:
        """Order backbones by a transferability score on the task's training data; no training.

        Methods: logme, hscore, hscore-shrink, nce and leep (need a source head), knn.
        """
        start = time.perf_counter()
        scores: dict[str, float] = {}
        hits = []
        for name in backbones:
            bb = self.backbone(name)
            tk = self.task(task, seed)
            check_modality(name, bb.input_spec, task, tk.modality)
            parts = [
                self.session.features(bb, s, label=f"{name} on {task} [{s.name}]") for s in (tk.train, tk.val)
            ]
            hits += [hit for _, hit in parts]
            features = np.concatenate([np.asarray(f) for f, _ in parts])
            check_features(features, name, f"training features on {task}")
            labels = np.concatenate([tk.train.labels, tk.val.labels])
            scores[name] = score_features(method, features, labels, bb.source_head)
        return self._keep(Ranking(task, method, scores, time.perf_counter() - start, all(hits)))

    def rank_agreement(
        self, backbones: list[str], task: str, *, method: str = "logme", seed: int | None = None
    ) -> RankAgreementResult:
        """Compare a score's ranking with head-only probe accuracy (weighted Kendall tau, Spearman)."""
        from reusespec.transferability import rank_agreement

        inner = Reuse(self.session)
        try:
            ranking = inner.rank(backbones, task, method=method, seed=seed)
            start = time.perf_counter()
            accuracies = {b: float(inner.probe(b, task, seed=seed).accuracy) for b in backbones}
        except ResourceUnavailable as exc:  # the inner facade only raises: skip here, as every call does
            self._unavailable(exc)
            raise
        probe_seconds = time.perf_counter() - start
        agreement = rank_agreement({b: float(v) for b, v in ranking.scores_by_backbone.items()}, accuracies)
        return self._keep(RankAgreementResult(ranking, accuracies, agreement, probe_seconds))
