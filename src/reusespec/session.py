"""The core API: a session that resolves, caches and probes, usable without pytest.

>>> from reusespec import ReuseSession
>>> reuse = ReuseSession().reuse()
>>> reuse.probe("zoo:digits-cnn", "mnist5k:5-9").accuracy  # doctest: +SKIP
0.97...
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reusespec.backbones.base import Backbone
from reusespec.backbones.registry import BackboneContext, resolve_backbone
from reusespec.cache import FeatureCache
from reusespec.errors import ResourceUnavailable
from reusespec.features import extract_features, feature_key
from reusespec.metrics import classification_metrics
from reusespec.probe import DEFAULT_GRID, fit_probe
from reusespec.results import ProbeResult, ScoreRecord
from reusespec.tasks.base import Split, Task
from reusespec.tasks.registry import load_task


def default_cache_dir(env: dict[str, str] | None = None) -> Path:
    """``REUSESPEC_CACHE_DIR`` if set, else ``~/.cache/reusespec``."""
    env = dict(os.environ) if env is None else env
    return Path(env.get("REUSESPEC_CACHE_DIR") or Path.home() / ".cache" / "reusespec")


@dataclass
class ReuseConfig:
    """Settings of a run (the pytest plugin fills these from ``--reuse-*`` options)."""

    cache_dir: Path = field(default_factory=default_cache_dir)
    data_dir: Path | None = None
    device: str = "auto"
    seed: int = 0
    allow_download: bool = False
    trusted_pickles: tuple[Path, ...] = ()
    batch_size: int = 256
    progress: Callable[[str], None] | None = None


class ReuseSession:
    """Holds what a run shares: loaded backbones, loaded tasks, the feature cache, the device."""

    def __init__(self, config: ReuseConfig | None = None, worker_id: str | None = None) -> None:
        self.config = config or ReuseConfig()
        self.worker_id = worker_id
        self.feature_cache = FeatureCache(self.config.cache_dir / "features")
        self.extractions = 0
        self._backbones: dict[str, Backbone] = {}
        self._tasks: dict[tuple[str, int], Task] = {}
        self._device: torch.device | None = None

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
        if spec not in self._backbones:
            context = BackboneContext(
                cache_dir=self.config.cache_dir,
                allow_download=self.config.allow_download,
                trusted_pickles=self.config.trusted_pickles,
                progress=self.progress,
            )
            self._backbones[spec] = resolve_backbone(spec, context)
        return self._backbones[spec]

    def task(self, spec: str, seed: int | None = None) -> Task:
        """A task with its splits for ``seed`` (the run's seed by default), loaded once per session."""
        seed = self.config.seed if seed is None else seed
        if (spec, seed) not in self._tasks:
            self._tasks[spec, seed] = load_task(
                spec, seed=seed, data_dir=self.config.data_dir, allow_download=self.config.allow_download
            )
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
            self.progress(f"extracted {label} ({len(split)} images) in {time.perf_counter() - start:.1f}s")
            return feats

        if split.base is not None and split.base_positions is not None:
            base_features, hit = self.features(backbone, split.base, label)
            return np.asarray(base_features[split.base_positions]), hit
        meta = {"backbone": backbone.name, "split": label, "n": len(split)}
        return self.feature_cache.get_or_compute(feature_key(backbone, split), compute, meta)

    def reuse(self, sink: list[ScoreRecord] | None = None) -> Reuse:
        return Reuse(self, sink)


class Reuse:
    """The facade a spec talks to; every result it returns is also added to ``records``."""

    def __init__(self, session: ReuseSession, sink: list[ScoreRecord] | None = None) -> None:
        self.session = session
        self.records: list[ScoreRecord] = [] if sink is None else sink

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

    def probe(
        self, backbone: str, task: str, *, seed: int | None = None, l2_grid: tuple[float, ...] = DEFAULT_GRID
    ) -> ProbeResult:
        """Head-only transfer: a linear probe on the backbone's frozen, cached features."""
        start = time.perf_counter()
        bb = self.backbone(backbone)
        tk = self.task(task, seed)
        feats, hits = {}, []
        for split in tk.splits():
            feats[split.name], hit = self.session.features(
                bb, split, label=f"{backbone} on {task} [{split.name}]"
            )
            hits.append(hit)
        fit = fit_probe(
            feats["train"],
            tk.train.labels,
            feats["val"],
            tk.val.labels,
            num_classes=tk.num_classes,
            l2_grid=l2_grid,
            device=self.session.device,
        )
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
        return self._keep(result)
