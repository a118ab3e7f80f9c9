"""The fine-tuning strategies and their training configuration.

Which backbone parameters each strategy trains (see :mod:`reusespec.finetune`), the
:class:`TrainConfig` with every strategy's defaults, and the network being trained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from reusespec.backbones.base import Backbone

STRATEGIES = ("head-only", "partial", "full", "lp-ft")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")
PRECISIONS = ("auto", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``TrainConfig.for_strategy`` gives the defaults of each strategy.

    ``lr_head`` and ``lr_backbone`` are the peak learning rates of the head and of the trainable
    backbone parameters. ``max_steps`` caps the optimizer steps (the schedule spans
    ``min(epochs * steps_per_epoch, max_steps)``). ``augment`` adds a random shift (crop of the
    zero-padded prepared image, padding 1/8 of the side) and, for 3-channel input, a horizontal
    flip. ``batch_size`` is the largest batch (each epoch is cut into near-equal batches).
    ``early_stopping_patience`` stops after that many epochs without a better validation
    accuracy and scores the best-validation weights; None trains every epoch and scores the last
    weights. ``mixed_precision``: "auto" uses bf16 (else fp16) autocast on CUDA and full precision
    on the CPU; "bf16"/"fp16" force a type; False turns it off. ``probe_epochs``/``probe_lr`` are the
    linear-probe stage of lp-ft (ignored by the other strategies).
    """

    optimizer: str = "sgd"
    lr_head: float = 0.01
    lr_backbone: float = 0.001
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 64
    augment: bool = True
    early_stopping_patience: int | None = 3
    grad_clip: float | None = None
    mixed_precision: str | bool = "auto"
    probe_epochs: int = 0
    probe_lr: float = 0.05

    def __post_init__(self) -> None:
        problems = []
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer={self.optimizer!r} (use one of {OPTIMIZERS})")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule={self.schedule!r} (use one of {SCHEDULES})")
        for name in ("lr_head", "lr_backbone", "weight_decay", "probe_lr"):
            value = getattr(self, name)
            if not value >= 0:  # also rejects NaN
                problems.append(f"{name}={value!r} (must be >= 0)")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)!r} (must be >= 1)")
        if self.probe_epochs < 0:
            problems.append(f"probe_epochs={self.probe_epochs!r} (must be >= 0)")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"max_steps={self.max_steps!r} (must be >= 1 or None)")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            problems.append(
                f"early_stopping_patience={self.early_stopping_patience!r} (must be >= 1 or None)"
            )
        if self.grad_clip is not None and not self.grad_clip > 0:
            problems.append(f"grad_clip={self.grad_clip!r} (must be > 0 or None)")
        if self.mixed_precision is not False and self.mixed_precision not in PRECISIONS:
            problems.append(f"mixed_precision={self.mixed_precision!r} (use False or one of {PRECISIONS})")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    @classmethod
    def for_strategy(cls, strategy: str, **overrides: Any) -> TrainConfig:
        """The defaults of ``strategy`` with any field overridden by keyword."""
        check_strategy(strategy)
        _check_fields(overrides)
        return cls(**{**_STRATEGY_DEFAULTS[strategy], **overrides})

    def replace(self, **overrides: Any) -> TrainConfig:
        """A copy with some fields changed (unknown names are an error listing the valid ones)."""
        _check_fields(overrides)
        return dataclasses.replace(self, **overrides)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# SGD + Nesterov with a cosine schedule is the protocol behind published transfer tables
# (docs/reference.md, "Fine-tuning strategies"); the head gets a 5x larger rate than the pretrained
# backbone (0.01 is inside the published sweep, logspace(-4, -1)). Augmentation is opt-in: what
# is label-preserving depends on the domain (a flip turns a 2 into something else), and on the
# demo tasks it cost accuracy at short schedules. head-only follows the linear-probe protocol;
# lp-ft fine-tunes with half the rates because its head already fits (Kumar et al. 2022).
_STRATEGY_DEFAULTS: dict[str, dict[str, Any]] = {
    "head-only": {"lr_head": 0.05, "lr_backbone": 0.0, "augment": False},
    "partial": {"lr_head": 0.05, "lr_backbone": 0.01, "augment": False},
    "full": {"lr_head": 0.05, "lr_backbone": 0.01, "augment": False},
    "lp-ft": {"lr_head": 0.01, "lr_backbone": 0.005, "augment": False, "probe_epochs": 5, "probe_lr": 0.05},
}


def _check_fields(overrides: dict[str, Any]) -> None:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"unknown TrainConfig field(s) {unknown}; valid fields: {sorted(fields)}")


def check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown fine-tuning strategy {strategy!r}; use one of {STRATEGIES}")


def trainable_module_names(
    backbone: Backbone, strategy: str, unfreeze: int | None, unfreeze_modules: Sequence[str] | None
) -> list[str]:
    """Names of the backbone modules whose parameters train ("" is the whole model)."""
    if strategy != "partial":
        if unfreeze is not None or unfreeze_modules is not None:
            raise ValueError(f"unfreeze/unfreeze_modules apply to strategy='partial' only, not {strategy!r}")
        return [] if strategy == "head-only" else [""]
    if (unfreeze is None) == (unfreeze_modules is None):
        raise ValueError(
            "strategy='partial' needs exactly one of unfreeze=k (train the last k blocks) "
            "or unfreeze_modules=[names]"
        )
    model = backbone.model
    if unfreeze_modules is not None:
        names = list(unfreeze_modules)
        if not names:
            raise ValueError(
                "unfreeze_modules is empty; name at least one module, or use strategy='head-only'"
            )
        known = dict(model.named_modules())
        missing = [name for name in names if name not in known]
        if missing:
            children = [name for name, _ in model.named_children()]
            raise ValueError(
                f"backbone {backbone.name!r} has no module(s) {missing}; "
                f"its top-level modules are {children} "
                "(nested modules are named with dots, e.g. 'layer4.1')"
            )
        return names
    blocks = list(backbone.blocks)
    if not blocks:
        if not isinstance(model, nn.Sequential):
            raise ValueError(
                f"backbone {backbone.name!r} declares no blocks and its model is a {type(model).__name__}, "
                "not an nn.Sequential, so 'the last k blocks' is undefined; pass unfreeze_modules=[...] with "
                f"the names to train (top-level modules: {[n for n, _ in model.named_children()]})"
            )
        blocks = [name for name, _ in model.named_children()]
    assert unfreeze is not None
    if not 1 <= unfreeze <= len(blocks):
        raise ValueError(
            f"unfreeze={unfreeze} but backbone {backbone.name!r} has {len(blocks)} blocks {blocks}; "
            f"use 1..{len(blocks)} (or strategy='full' / 'head-only')"
        )
    return blocks[len(blocks) - unfreeze :]


class FinetunedClassifier(nn.Module):
    """The fine-tuned network: ``backbone`` (a copy) then the linear ``head``.

    Maps a prepared batch (``Backbone.prepare``) to logits. ``train()`` keeps the frozen parts
    of the backbone in eval mode.
    """

    def __init__(self, backbone: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.frozen_modules: list[nn.Module] = []

    def set_trainable(self, names: Sequence[str]) -> None:
        """Train the parameters of the named backbone modules (and the head); freeze the rest.

        Every backbone module outside the named ones, and not containing one, is frozen:
        its ``training`` flag is forced off so BatchNorm keeps its running statistics.
        """
        self.backbone.requires_grad_(False)
        for name in names:
            self.backbone.get_submodule(name).requires_grad_(True)
        self.head.requires_grad_(True)

        def is_inside(module_name: str, root: str) -> bool:
            return root == "" or module_name == root or module_name.startswith(root + ".")

        self.frozen_modules = [
            module
            for module_name, module in self.backbone.named_modules()
            if not any(is_inside(module_name, root) or is_inside(root, module_name) for root in names)
        ]

    def train(self, mode: bool = True) -> FinetunedClassifier:
        super().train(mode)
        for module in self.frozen_modules:
            module.training = False  # not .eval(): that would recurse into trainable children
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.head(self.backbone(x))
        return result
