"""Feature extraction: a frozen backbone run once over a split, in batches, on a device."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from reusespec.backbones.base import Backbone, approximate_macs
from reusespec.devices import SINGLE_THREAD_BATCH_MACS, single_thread_below
from reusespec.errors import ReuseSpecError
from reusespec.hashing import digest
from reusespec.tasks.base import Split

FEATURES_FORMAT = 3  # 2: 2-D conv nets extract in channels_last; 3: fingerprints cover the code


def feature_key(backbone: Backbone, split: Split) -> str:
    """What the features depend on: the backbone's fingerprint (weights and the code that runs them),
    preprocessing, examples, and the numerics library."""
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
    the bytes that float input would need. A batch that runs out of device memory is retried
    with half as many examples, down to one, so a large ``batch_size`` costs speed, not the run.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if backbone.input_spec.modality == "text":
        from reusespec.text_features import extract_text_features

        return extract_text_features(
            backbone, split, device=device, batch_size=batch_size, progress=progress, label=label
        )
    device = torch.device(device)
    model = backbone.model.to(device).eval()
    with single_thread_below(_batch_macs(backbone, batch_size, device), SINGLE_THREAD_BATCH_MACS, device):
        with _channels_last(model) as memory_format:
            try:
                return _extract(backbone, model, split, device, batch_size, progress, label, memory_format)
            except (RuntimeError, ReuseSpecError) as exc:
                if memory_format != torch.channels_last or _is_out_of_memory(exc):
                    raise
                # Some models assume the default layout (``x.view(len(x), -1)`` after a conv):
                # extract as they expect; a genuine error is raised again from there.
        return _extract(backbone, model, split, device, batch_size, progress, label, torch.contiguous_format)


@contextlib.contextmanager
def _channels_last(model: torch.nn.Module) -> Iterator[torch.memory_format]:
    """Run a 2-D conv net in channels_last for the extraction, then give its weights back as they were.

    Measured on the demo's digits CNN on one CPU thread: 21,000 images/s against 11,000 in the
    default layout (docs/benchmarks.md, extraction table); on GPUs it is the layout tensor-core
    convolutions prefer (PyTorch's guidance; no GPU measured here). The
    weights' values do not change, only their layout, and it is restored afterwards, so a
    fine-tune later in the same process starts from the same model whatever ran before it.
    """
    if not any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        yield torch.contiguous_format
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield torch.channels_last
    finally:
        model.to(memory_format=torch.contiguous_format)


def _batch_macs(backbone: Backbone, batch_size: int, device: torch.device) -> float:
    """Multiply-adds of one batch on the CPU (infinite elsewhere, or if the model rejects the input)."""
    if device.type != "cpu":
        return float("inf")
    spec = backbone.input_spec
    try:
        return float(approximate_macs(backbone.model, spec.example_shape()) * batch_size)
    except Exception:  # the extraction itself reports a model that cannot run its input
        return float("inf")


def _extract(
    backbone: Backbone,
    model: torch.nn.Module,
    split: Split,
    device: torch.device,
    batch_size: int,
    progress: Callable[[str], None] | None,
    label: str,
    memory_format: torch.memory_format,
) -> np.ndarray:
    out = np.empty((len(split), backbone.feature_dim), dtype=np.float32)
    start = last_report = time.perf_counter()
    first = 0
    while first < len(split):
        positions = np.arange(first, min(first + batch_size, len(split)))
        feats: np.ndarray | None
        try:
            feats = _batch_features(backbone, model, split, positions, device, memory_format)
        except RuntimeError as exc:  # torch.OutOfMemoryError is one
            if not _is_out_of_memory(exc):
                raise
            if len(positions) == 1:
                what = f"{backbone.name} ({label})" if label else backbone.name
                raise torch.OutOfMemoryError(
                    f"out of memory on {device} extracting features of {what} even one image at a time: the "
                    "model and one input do not fit. Free the device (other processes may hold its memory) "
                    f"or run on another one (--reuse-device). Cause: {exc}"
                ) from exc
            feats = None
        if feats is None:
            # Outside the except block, so the failed batch's tensors are no longer referenced.
            batch_size = max(1, len(positions) // 2)
            _release_cached_memory(device)
            if progress:
                progress(
                    f"out of memory on {device} with {len(positions)} images per batch; retrying with "
                    f"{batch_size} (--reuse-batch-size {batch_size} starts there)"
                )
            continue
        out[positions[0] : positions[-1] + 1] = feats
        first = positions[-1] + 1
        now = time.perf_counter()
        if progress and now - last_report > 5.0:
            last_report = now
            progress(f"extracting {label}: {first}/{len(split)} images, {now - start:.0f}s")
    return out


def _batch_features(
    backbone: Backbone,
    model: torch.nn.Module,
    split: Split,
    positions: np.ndarray,
    device: torch.device,
    memory_format: torch.memory_format,
) -> np.ndarray:
    raw = split.load(positions)
    inputs = backbone.prepare(raw.to(device, non_blocking=True) if isinstance(raw, torch.Tensor) else raw)
    if inputs.ndim == 4:
        inputs = inputs.contiguous(memory_format=memory_format)
    try:
        feats = model(inputs)
    except RuntimeError as exc:  # a layer rejecting the input's shape; out of memory is handled above
        if _is_out_of_memory(exc):
            raise
        raise ReuseSpecError(
            f"{backbone.name} cannot run on the input its InputSpec prepares, shape {tuple(inputs.shape)} "
            f"({_input_spec_summary(backbone)}): {exc}. The model expects other input: make the InputSpec "
            "your factory returns match the model's first layer (channels) and the size it was built for"
        ) from exc
    if not isinstance(feats, torch.Tensor):
        raise ReuseSpecError(
            f"{backbone.name}: a feature extractor must return one tensor (batch, features); its forward "
            f"returned a {type(feats).__name__}. Return the features alone (e.g. out[0] or out['features'])"
        )
    if feats.ndim != 2 or feats.shape[1] != backbone.feature_dim:
        raise ReuseSpecError(
            f"{backbone.name} returned features of shape {tuple(feats.shape)}; expected "
            f"(batch, {backbone.feature_dim}). If its input size is wrong ({_input_spec_summary(backbone)}), "
            "make the InputSpec match the size the model was built for"
        )
    return feats.float().cpu().numpy()


def _input_spec_summary(backbone: Backbone) -> str:
    return backbone.input_spec.describe()


def _is_out_of_memory(exc: BaseException) -> bool:
    """CUDA raises torch.OutOfMemoryError; other backends (MPS) a RuntimeError that says so."""
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _release_cached_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
