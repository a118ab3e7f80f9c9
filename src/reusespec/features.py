"""Feature extraction: a frozen backbone run once over a split, in batches, on a device."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from reusespec.backbones.base import Backbone
from reusespec.hashing import digest
from reusespec.tasks.base import Split

FEATURES_FORMAT = 1


def feature_key(backbone: Backbone, split: Split) -> str:
    """What the features depend on: weights, preprocessing, examples, and the numerics library."""
    return digest(
        "features",
        FEATURES_FORMAT,
        backbone.fingerprint,
        backbone.input_spec.key(),
        split.fingerprint,
        torch.__version__,
    )


@torch.inference_mode()
def extract_features(
    backbone: Backbone,
    split: Split,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    progress: Callable[[str], None] | None = None,
    label: str = "",
) -> np.ndarray:
    """Features of every example of ``split`` as a float32 array ``(N, feature_dim)``.

    Raw uint8 batches go to the device before preprocessing, so the host sends a quarter of
    the bytes that float input would need.
    """
    device = torch.device(device)
    model = backbone.model.to(device).eval()
    out = np.empty((len(split), backbone.feature_dim), dtype=np.float32)
    start = last_report = time.perf_counter()
    for first in range(0, len(split), batch_size):
        positions = np.arange(first, min(first + batch_size, len(split)))
        raw = split.load(positions)
        inputs = backbone.prepare(raw.to(device, non_blocking=True) if isinstance(raw, torch.Tensor) else raw)
        feats = model(inputs)
        if feats.ndim != 2 or feats.shape[1] != backbone.feature_dim:
            raise ValueError(
                f"{backbone.name} returned features of shape {tuple(feats.shape)}; expected "
                f"(batch, {backbone.feature_dim})"
            )
        out[positions[0] : positions[-1] + 1] = feats.float().cpu().numpy()
        now = time.perf_counter()
        if progress and now - last_report > 5.0:
            last_report = now
            progress(f"extracting {label}: {positions[-1] + 1}/{len(split)} images, {now - start:.0f}s")
    return out
