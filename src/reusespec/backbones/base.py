"""What a backbone is to reusespec: a feature extractor plus the input it expects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from reusespec.errors import ModalityMismatchError
from reusespec.hashing import digest

IMAGE = "image"
TEXT = "text"


@dataclass(frozen=True)
class InputSpec:
    """The images a backbone expects, so that any task can be adapted to it.

    Images arrive as uint8 batches ``(N, C, H, W)``. They are converted to ``channels``,
    resized (shorter side to ``resize`` and centre-cropped to ``size``, or straight to
    ``size`` when ``resize`` is None), scaled to [0, 1] and normalised with ``mean``/``std``.
    For torchvision weights these come from the weights' own ``transforms()``.
    """

    channels: int
    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: int | None = None
    interpolation: str = "bilinear"
    modality: ClassVar[str] = IMAGE

    def key(self) -> str:
        """Identifies the preprocessing in cache keys."""
        return digest(
            "InputSpec", self.channels, self.size, self.mean, self.std, self.resize, self.interpolation
        )

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Turn a uint8 (or float in [0, 1]) batch into the backbone's normalised input."""
        if not isinstance(images, torch.Tensor):
            raise ModalityMismatchError(
                f"this backbone takes images, but the batch is a {type(images).__name__} (texts?); "
                "give it an image task, or use a text backbone (hf:..., zoo:minilm-l6) for a text task"
            )
        if images.ndim != 4:
            raise ValueError(f"expected a batch of images (N, C, H, W), got shape {tuple(images.shape)}")
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        x = _convert_channels(x, self.channels)
        if self.resize is not None or tuple(x.shape[-2:]) != tuple(self.size):
            x = self._resize(x)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def example_shape(self) -> tuple[int, ...]:
        """The shape of one prepared example (no batch dimension)."""
        return (self.channels, *self.size)

    def describe(self) -> str:
        return f"InputSpec channels={self.channels}, size={self.size[0]}x{self.size[1]}"

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        # Imported here: torchvision takes about a second to import, and inputs already at the
        # backbone's size (the demo's) never need it.
        from torchvision.transforms.v2 import functional as TF

        mode = TF.InterpolationMode(self.interpolation)
        if self.resize is not None:
            x = TF.resize(x, [self.resize], interpolation=mode, antialias=True)
            return TF.center_crop(x, list(self.size))
        return TF.resize(x, list(self.size), interpolation=mode, antialias=True)


@dataclass(frozen=True)
class TextInputSpec:
    """The texts a text encoder expects: its tokenizer, how far it reads, how it pools.

    A text task's batch is a list of strings. ``prepare`` tokenizes the whole batch in one call,
    padded to its longest text and truncated to ``max_length`` tokens, and packs token ids and
    attention mask into one int64 tensor ``(N, 2, L)`` (row 0 ids, row 1 mask), so that every
    part of reusespec that moves a prepared batch to a device treats texts like images.
    ``tokenizer_digest`` is a content hash of the tokenizer's files: with ``max_length`` and
    ``pooling`` it identifies the preprocessing in cache keys.
    """

    tokenizer: Any = field(compare=False, hash=False, repr=False)
    tokenizer_digest: str
    max_length: int = 256
    pooling: str = "mean"
    modality: ClassVar[str] = TEXT

    def key(self) -> str:
        return digest("TextInputSpec", self.tokenizer_digest, self.max_length, self.pooling)

    def prepare(self, texts: Any) -> torch.Tensor:
        if isinstance(texts, torch.Tensor | str):
            raise ModalityMismatchError(
                f"this backbone takes texts, but the batch is a {type(texts).__name__} (images?); give it "
                "a text task (bbc-news, csv:PATH?text=COL&label=COL, ...), or an image backbone for images"
            )
        encoded = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return torch.stack([encoded["input_ids"], encoded["attention_mask"]], dim=1).long()

    def example_shape(self) -> tuple[int, ...]:
        return (2, self.max_length)

    def describe(self) -> str:
        return (
            f"TextInputSpec tokenizer={self.tokenizer_digest[:12]}, max_length={self.max_length}, "
            f"pooling={self.pooling}"
        )


AnyInputSpec = InputSpec | TextInputSpec


def check_modality(backbone_name: str, spec: AnyInputSpec, task_name: str, task_modality: str) -> None:
    """Raise a clear error when a task's examples are not what the backbone takes."""
    if spec.modality != task_modality:
        fix = (
            "a text encoder (hf:ID_OR_PATH, zoo:minilm-l6)"
            if task_modality == TEXT
            else "an image backbone (torchvision:..., zoo:digits-cnn)"
        )
        raise ModalityMismatchError(
            f"task {task_name!r} yields {task_modality}s but backbone {backbone_name!r} takes "
            f"{spec.modality}s; pair the task with {fix}, or the backbone with a {spec.modality} task"
        )


def _convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    have = x.shape[1]
    if have == channels:
        return x
    if have == 1:
        return x.expand(-1, channels, -1, -1)
    if have == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * weights).sum(dim=1, keepdim=True)
    raise ValueError(
        f"cannot adapt images with {have} channels to a backbone that expects {channels}; "
        "give the task images with 1 or 3 channels"
    )


@dataclass
class Backbone:
    """A resolved backbone.

    ``model`` maps a prepared batch to features of width ``feature_dim`` (its classification
    head removed). ``source_head`` keeps that head when there was one, for scores such as
    LEEP that need the source classifier. ``blocks`` names the model's top-level blocks in
    forward order, for strategies that unfreeze the last k of them. ``fingerprint`` is a
    content hash of architecture and weights: the identity used by every cache.
    """

    name: str
    model: nn.Module
    feature_dim: int
    input_spec: AnyInputSpec
    fingerprint: str
    source_head: nn.Module | None = None
    blocks: Sequence[str] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def prepare(self, raw: Any) -> torch.Tensor:
        """Adapt a raw batch from a task to this backbone's input."""
        return self.input_spec.prepare(raw)

    def __repr__(self) -> str:
        return f"Backbone({self.name!r}, feature_dim={self.feature_dim}, fingerprint={self.fingerprint[:12]})"


def approximate_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of the convolutions and linear layers in one forward pass of one input.

    Counted with forward hooks on a zero input of ``input_shape`` (without the batch dimension).
    For deciding thread counts or balancing work this is enough, and it is instant; torch's
    FlopCounterMode (what :mod:`reusespec.complexity` reports) costs about 0.8 s on first use in
    a process, as it imports torch's tracing machinery.
    """
    total = 0

    def count(module: nn.Module, inputs: Any, output: Any) -> None:
        nonlocal total
        weight = module.weight
        if isinstance(output, torch.Tensor) and isinstance(weight, torch.Tensor):
            total += output.numel() * (weight.numel() // weight.shape[0])

    layers = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, layers)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return total
