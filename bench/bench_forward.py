"""A cold head-only run versus the bare cost of one forward pass over the same data.

The bare pass is ``model(prepare(images))`` in batches of the session's batch size, under
``inference_mode``, over the task's own train + val + test images, nothing stored. The cold run
is ``Reuse.probe`` on a fresh cache; its parts are timed by repeating the same steps the facade
takes (resolve backbone and task, features per split through the cache, head fit, test logits)
from a new session, cold and then warm (features read from the cache).
Target: cold run <= 1.2x the bare pass.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import Context, load_window, ratio, summary, timed
from bench.synthetic import write_image_folder


def cases(ctx: Context) -> list[tuple[str, str, int]]:
    chosen = [("zoo:digits-cnn", "mnist5k", ctx.repeats), ("zoo:digits-cnn", "mnist5k:5-9", ctx.repeats)]
    if not ctx.quick:
        folder = write_image_folder(ctx.work_dir / "synthetic-images", classes=10, per_class=100, size=64)
        chosen.append(("bench.synthetic:resnet18_64", f"folder:{folder}?size=64", ctx.repeats))
    return chosen


def bare_forward(backbone: Any, task: Any, device: torch.device, batch_size: int) -> int:
    """One forward pass over the task's images; returns how many images went through."""
    model = backbone.model.to(device).eval()
    count = 0
    with torch.inference_mode():
        for split in task.splits():
            for first in range(0, len(split), batch_size):
                positions = np.arange(first, min(first + batch_size, len(split)))
                model(backbone.prepare(split.load(positions).to(device)))
                count += len(positions)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return count


def probe_parts(backbone: str, task: str, cache: Path) -> dict[str, float]:
    """The steps of ``Reuse.probe`` from a new session on ``cache`` (cold or warm), each timed."""
    from reusespec.probe import fit_probe
    from reusespec.session import ReuseConfig, ReuseSession

    session = ReuseSession(ReuseConfig(cache_dir=cache))
    parts: dict[str, float] = {}
    start = time.perf_counter()
    t, bb = timed(lambda: session.backbone(backbone))
    parts["resolve backbone"] = t
    t, tk = timed(lambda: session.task(task))
    parts["load task"] = t
    feats = {}
    t_extract = 0.0
    for split in tk.splits():
        t, (feats[split.name], _) = timed(partial(session.features, bb, split))
        t_extract += t
    parts["features"] = t_extract
    fit_args = (feats["train"], tk.train.labels, feats["val"], tk.val.labels)
    t, probe = timed(partial(fit_probe, *fit_args, num_classes=tk.num_classes, device=session.device))
    parts["head fit + sweep"] = t
    t, _ = timed(partial(probe.head.logits, feats["test"]))
    parts["test logits"] = t
    parts["total"] = time.perf_counter() - start
    return parts


def extracted_images(task: Any) -> int:
    """Images a cold run pushes through the backbone: a class subset extracts its whole base split."""
    return sum(len(split.base if split.base is not None else split) for split in task.splits())


def measure(ctx: Context, backbone: str, task: str, repeats: int) -> dict[str, Any]:
    from reusespec.session import ReuseConfig, ReuseSession

    warm = ReuseSession(ReuseConfig(cache_dir=ctx.zoo_dir))
    bb, tk = warm.backbone(backbone), warm.task(task)
    device = warm.device
    ctx.log(f"forward {backbone} on {task}: {repeats} repeat(s)")
    bare: list[float] = []
    cold: list[float] = []
    runs: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    with load_window() as load:
        for _ in range(repeats):
            t, images = timed(lambda: bare_forward(bb, tk, device, warm.config.batch_size))
            bare.append(t)

            def facade() -> Any:
                session = ReuseSession(ReuseConfig(cache_dir=ctx.fresh_cache()))
                return session.reuse().probe(backbone, task)

            t, _ = timed(facade)
            cold.append(t)
            cache = ctx.fresh_cache()
            runs["cold"].append(probe_parts(backbone, task, cache))
            runs["warm"].append(probe_parts(backbone, task, cache))
            ctx.log(f"  bare {bare[-1]:.2f}s, cold {cold[-1]:.2f}s")
            for name, parts_run in runs.items():
                ctx.log(f"    {name}: {_fmt(parts_run[-1])}")
    bare_median = summary(bare)["median"]
    parts = {name: {k: summary([p[k] for p in r])["median"] for k in r[0]} for name, r in runs.items()}
    cold_over_bare = ratio(summary(cold)["median"], bare_median)
    return {
        "backbone": backbone,
        "task": task if not task.startswith("folder:") else "synthetic 10-class images, 64 px (folder:)",
        "device": str(device),
        "task_images": images,
        "images_extracted_cold": extracted_images(tk),
        "seconds": {"bare forward": summary(bare), "cold probe": summary(cold)},
        "parts_median": parts,
        "cold_over_bare": cold_over_bare,
        "target_met": {"cold <= 1.2x bare forward": cold_over_bare <= 1.2},
        **load,
    }


def _fmt(parts: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}s" for k, v in parts.items())


def run(ctx: Context) -> dict[str, Any]:
    return {"cases": [measure(ctx, backbone, task, repeats) for backbone, task, repeats in cases(ctx)]}
