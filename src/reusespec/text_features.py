"""Feature extraction for text encoders: length-sorted batches with dynamic padding.

Texts are sorted by length (characters, a cheap proxy of token count) and cut into batches of
similar length, so each batch pads to its own longest text rather than to the split's; the
tokenizer runs once per batch (``TextInputSpec.prepare``) and truncates at ``max_length``.
Features are written back at each text's own position, so the result is in the split's order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from reusespec.backbones.base import Backbone
from reusespec.errors import ReuseSpecError
from reusespec.tasks.base import Split


def length_sorted_batches(texts: Sequence[str], batch_size: int) -> list[np.ndarray]:
    """Positions of ``texts`` cut into batches of similar length (longest first, stable order)."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.inference_mode()
def extract_text_features(
    backbone: Backbone,
    split: Split,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    progress: Callable[[str], None] | None = None,
    label: str = "",
) -> np.ndarray:
    """Features of every text of ``split`` as float32 ``(N, feature_dim)``, in the split's order.

    A batch that runs out of device memory is retried in halves, as for images.
    """
    device = torch.device(device)
    model = backbone.model.to(device).eval()
    texts = split.load(np.arange(len(split)))
    if isinstance(texts, torch.Tensor):
        backbone.input_spec.prepare(texts)  # raises the modality error naming the fix
    out = np.empty((len(split), backbone.feature_dim), dtype=np.float32)
    pending = length_sorted_batches(texts, batch_size)
    start = last_report = time.perf_counter()
    done = tokens = 0
    while pending:
        positions = pending.pop(0)
        batch = backbone.prepare([texts[i] for i in positions]).to(device)
        try:
            feats = model(batch)
        except RuntimeError as exc:
            if not _is_out_of_memory(exc) or len(positions) == 1:
                raise ReuseSpecError(
                    f"{backbone.name} failed on a batch of {len(positions)} texts "
                    f"({backbone.input_spec.describe()}): {exc}"
                ) from exc
            half = len(positions) // 2
            pending[:0] = [positions[:half], positions[half:]]
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        if feats.ndim != 2 or feats.shape[1] != backbone.feature_dim:
            raise ReuseSpecError(
                f"{backbone.name} returned features of shape {tuple(feats.shape)}; expected "
                f"(batch, {backbone.feature_dim})"
            )
        out[positions] = feats.float().cpu().numpy()
        done += len(positions)
        tokens += int(batch[:, 1].sum())
        now = time.perf_counter()
        if progress and now - last_report > 5.0:
            last_report = now
            progress(f"extracting {label}: {done}/{len(split)} texts, {tokens} tokens, {now - start:.0f}s")
    return out


def _is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()
