"""The real zoo on real tasks: head-only accuracy, LogME agreement, random twins, extraction speed.

Run: ``python -m bench.bench_real_zoo [table|batchnorm|extraction|coldprobe]`` with the ``real-zoo`` and
``real-data`` asset groups installed. Prints JSON lines; docs/benchmarks.md ("Real zoo") records them.

- ``table``: every real-zoo backbone (and its random twin) x the real tasks (and ``sklearn-digits``):
  probe accuracy, and per task LogME's weighted Kendall tau against the probe's ranking.
- ``batchnorm``: a random twin as initialised against the same twin with batch-norm statistics
  re-estimated on the task's training images (one pass in train mode, cumulative average).
- ``extraction``: images per second by batch size, channels_last and threads, MobileNetV2 and Lite0.
- ``coldprobe``: a cold ``reuse.probe`` (empty cache) against one bare forward pass over the same images.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESOLUTION = 128
FAMILIES = ("mobilenet-v2", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
TASKS = ("elpv:small", "elpv:type-small", "animal-mnist:small", "sklearn-digits")
DIGITS_FAMILIES = ("mobilenet-v2", "efficientnet-lite0")  # the digits task on two families only (time)


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def session(cache: str | None = None) -> Any:
    from reusespec import ReuseSession
    from reusespec.config import ReuseConfig

    config = ReuseConfig(cache_dir=Path(cache or tempfile.mkdtemp(prefix="reusespec-bench-")))
    return ReuseSession(config).reuse()


def backbones(families: tuple[str, ...] = FAMILIES) -> list[str]:
    return [f"zoo:{family}-{kind}?res={RESOLUTION}" for family in families for kind in ("imagenet", "random")]


def table(cache: str | None) -> None:
    reuse = session(cache)
    for task in TASKS:
        accuracies: dict[str, float] = {}
        zoo = backbones(DIGITS_FAMILIES if task == "sklearn-digits" else FAMILIES)
        for backbone in zoo:
            start = time.perf_counter()
            accuracies[backbone] = float(reuse.probe(backbone, task).accuracy)
            emit(
                {
                    "task": task,
                    "backbone": backbone,
                    "accuracy": accuracies[backbone],
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
        agreement = reuse.rank_agreement(zoo, task, method="logme")
        emit(
            {
                "task": task,
                "logme_weighted_tau": agreement.agreement.weighted_kendall_tau,
                "logme_scores": agreement.ranking.scores_by_backbone,
            }
        )


def reestimated(model: torch.nn.Module, inputs: torch.Tensor) -> torch.nn.Module:
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the pass
    model.train()
    with torch.no_grad():
        for batch in inputs.split(100):
            model(batch)
    return model.eval()


def batchnorm(cache: str | None) -> None:
    from reusespec.features import extract_features
    from reusespec.probe import fit_probe

    reuse = session(cache)
    for task_spec in ("animal-mnist:small",):
        task = reuse.task(task_spec)
        for family in ("mobilenet-v2", "efficientnet-lite0"):
            backbone = reuse.backbone(f"zoo:{family}-random?res={RESOLUTION}")
            # "as initialised" is the table's random-twin row (same probe, same splits).
            for variant in ("re-estimated",):
                if variant == "re-estimated":
                    images = backbone.prepare(task.train.load(np.arange(len(task.train))))
                    reestimated(backbone.model, images)
                feats = {
                    s.name: extract_features(backbone, s, device="cpu", batch_size=128) for s in task.splits()
                }
                fit = fit_probe(
                    feats["train"],
                    task.train.labels,
                    feats["val"],
                    task.val.labels,
                    num_classes=task.num_classes,
                )
                accuracy = float(np.mean(fit.head.logits(feats["test"]).argmax(1) == task.test.labels))
                emit(
                    {
                        "task": task_spec,
                        "backbone": family + "-random",
                        "batchnorm": variant,
                        "accuracy": accuracy,
                        "feature_std": float(feats["train"].std(0).mean()),
                    }
                )


def extraction(cache: str | None) -> None:
    from reusespec.features import extract_features

    reuse = session(cache)
    task = reuse.task("animal-mnist:small")
    split = task.train.subset(np.arange(64))
    for family in ("mobilenet-v2", "efficientnet-lite0"):
        backbone = reuse.backbone(f"zoo:{family}-imagenet?res={RESOLUTION}")
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for batch_size in (16, 64):
                for channels_last in (False, True):
                    model = backbone.model
                    if channels_last:
                        model.to(memory_format=torch.channels_last)
                    start = time.perf_counter()
                    extract_features(backbone, split, device="cpu", batch_size=batch_size)
                    seconds = time.perf_counter() - start
                    model.to(memory_format=torch.contiguous_format)
                    emit(
                        {
                            "backbone": family,
                            "threads": threads,
                            "batch_size": batch_size,
                            "channels_last": channels_last,
                            "images_per_s": round(len(split) / seconds, 1),
                        }
                    )


def coldprobe(cache: str | None) -> None:
    reuse = session(None)  # an empty cache: the probe extracts everything
    task_spec = "elpv:small"
    backbone_spec = f"zoo:mobilenet-v2-imagenet?res={RESOLUTION}"
    backbone = reuse.backbone(backbone_spec)
    task = reuse.task(task_spec)
    # One bare forward pass over the same images: load, prepare, run, nothing else.
    start = time.perf_counter()
    with torch.inference_mode():
        for split in task.splits():
            for first in range(0, len(split), 256):
                positions = np.arange(first, min(first + 256, len(split)))
                backbone.model(backbone.prepare(split.load(positions)))
    bare = time.perf_counter() - start
    start = time.perf_counter()
    reuse.probe(backbone_spec, task_spec)
    cold = time.perf_counter() - start
    emit(
        {
            "cold_probe_s": round(cold, 2),
            "bare_forward_s": round(bare, 2),
            "ratio": round(cold / bare, 3),
            "images": sum(len(s) for s in task.splits()),
        }
    )


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "table"
    cache_dir = sys.argv[2] if len(sys.argv) > 2 else None
    {"table": table, "batchnorm": batchnorm, "extraction": extraction, "coldprobe": coldprobe}[what](
        cache_dir
    )
