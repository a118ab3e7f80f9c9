"""Extraction throughput by thread count, batch size and ``channels_last``.

:func:`reusespec.features.extract_features` as it is (the session's batch size, torch's thread
setting, contiguous NCHW) against the same loop with each setting changed, so the numbers say
which of the issue's suggested changes pay here. Images per second, median over repeats.
"""

from __future__ import annotations

import itertools
import os
from functools import partial
from typing import Any

import numpy as np
import torch

from bench.common import Context, load_window, repeat_timed, summary, timed
from bench.synthetic import write_image_folder


def extract(backbone: Any, split: Any, batch_size: int, channels_last: bool) -> np.ndarray:
    """extract_features' loop with channels_last as an option."""
    model = backbone.model.eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    out = np.empty((len(split), backbone.feature_dim), dtype=np.float32)
    with torch.inference_mode():
        for first in range(0, len(split), batch_size):
            positions = np.arange(first, min(first + batch_size, len(split)))
            inputs = backbone.prepare(split.load(positions))
            if channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            out[first : first + len(positions)] = model(inputs).float().numpy()
    if channels_last:
        backbone.model.to(memory_format=torch.contiguous_format)
    return out


def measure(ctx: Context, backbone_spec: str, task_spec: str) -> dict[str, Any]:
    from reusespec.features import extract_features
    from reusespec.session import ReuseConfig, ReuseSession

    session = ReuseSession(ReuseConfig(cache_dir=ctx.zoo_dir, device="cpu"))
    backbone, split = session.backbone(backbone_spec), session.task(task_spec).train
    default_threads = torch.get_num_threads()
    thread_options = sorted({1, default_threads, os.cpu_count() or 1})
    batch_options = [256] if ctx.quick else [64, 256, 1024]
    ctx.log(
        f"extraction {backbone_spec}: {len(split)} images, threads {thread_options}, batches {batch_options}"
    )
    rows = []
    with load_window() as load:
        reference = []
        for _ in range(ctx.repeats):
            t, _ = timed(
                lambda: extract_features(backbone, split, device="cpu", batch_size=session.config.batch_size)
            )
            reference.append(t)
        for threads, batch, channels_last in itertools.product(thread_options, batch_options, (False, True)):
            torch.set_num_threads(threads)
            runs = repeat_timed(partial(extract, backbone, split, batch, channels_last), ctx.repeats)
            median = summary(runs)["median"]
            rows.append(
                {
                    "threads": threads,
                    "batch_size": batch,
                    "channels_last": channels_last,
                    "seconds": summary(runs),
                    "images_per_second": len(split) / median,
                }
            )
            rate = len(split) / median
            ctx.log(f"  threads {threads} batch {batch} channels_last {channels_last}: {rate:.0f} img/s")
        torch.set_num_threads(default_threads)
    best = max(rows, key=lambda r: r["images_per_second"])
    ref_median = summary(reference)["median"]
    return {
        "backbone": backbone_spec,
        "images": len(split),
        "extract_features_as_is": {
            "threads": default_threads,
            "batch_size": session.config.batch_size,
            "seconds": summary(reference),
            "images_per_second": len(split) / ref_median,
        },
        "settings": rows,
        "best": best,
        "best_over_as_is": best["images_per_second"] / (len(split) / ref_median),
        **load,
    }


def run(ctx: Context) -> dict[str, Any]:
    chosen = [("zoo:digits-cnn", "mnist5k")]
    if not ctx.quick:
        folder = write_image_folder(ctx.work_dir / "synthetic-images", classes=10, per_class=100, size=64)
        chosen.append(("bench.synthetic:resnet18_64", f"folder:{folder}?size=64"))
    return {"cases": [measure(ctx, b, t) for b, t in chosen]}
