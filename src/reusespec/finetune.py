"""Fine-tuning a backbone on a task: head-only, partial, full and LP-FT.

Every strategy puts a fresh linear head on the backbone's features and trains with
cross-entropy; they differ in which backbone parameters train:

``head-only``  none: the backbone is a frozen feature extractor (in eval mode), trained through
               end to end so augmentation can be used. Without augmentation the features never
               change, so they are computed once and only the head is trained on them.
``partial``    the last ``unfreeze`` entries of ``backbone.blocks`` (or the modules named in
               ``unfreeze_modules``).
``full``       all of them.
``lp-ft``      Kumar et al. (ICLR 2022): first a linear probe (head-only, ``probe_epochs`` at
               ``probe_lr``), then full fine-tuning starting from that head with a small
               backbone learning rate, so the features are not distorted by a random head.

Frozen parts stay in eval mode, so their BatchNorm running statistics (and dropout) do not
change. ``finetune`` deep-copies the backbone's model: the caller's model is never modified.
One seed fixes the data order, the augmentation, the head initialisation and dropout.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reusespec.backbones.base import Backbone, approximate_macs, check_modality
from reusespec.devices import SINGLE_THREAD_BATCH_MACS, select_device, single_thread_below
from reusespec.errors import TrainingDivergedError
from reusespec.finetune_strategies import (
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    STRATEGIES,
    FinetunedClassifier,
    TrainConfig,
    check_strategy,
    trainable_module_names,
)
from reusespec.metrics import classification_metrics
from reusespec.tasks.base import Split, Task

__all__ = [
    "OPTIMIZERS",
    "PRECISIONS",
    "SCHEDULES",
    "SINGLE_THREAD_STEP_MACS",
    "STRATEGIES",
    "FinetuneResult",
    "FinetunedClassifier",
    "TrainConfig",
    "finetune",
]


@dataclass
class FinetuneResult:
    """The outcome of one fine-tuning run, scored on the task's test split.

    ``curve`` has one entry per epoch: ``epoch`` (counting across stages), ``stage`` ("probe" for
    the first stage of lp-ft, else the strategy), ``train_loss`` (mean over the epoch) and
    ``val_accuracy`` (None without a validation split). ``best_epoch`` is the epoch whose
    weights were scored; ``probe_accuracy`` is the test accuracy of lp-ft's linear-probe stage.
    ``model`` is the trained network (``model.backbone`` then ``model.head``, mapping a prepared
    batch to logits) when ``finetune(..., keep_model=True)``, else None to keep results light.
    """

    strategy: str
    accuracy: float
    macro_f1: float
    top5_accuracy: float | None
    curve: list[dict[str, Any]]
    trainable_params: int
    total_params: int
    seconds: float
    device: str
    seed: int
    epochs_run: int
    best_epoch: int
    test_predictions: np.ndarray
    test_labels: np.ndarray
    config: dict[str, Any]
    probe_accuracy: float | None = None
    model: FinetunedClassifier | None = field(default=None, repr=False, compare=False)


def finetune(
    backbone: Backbone,
    task: Task,
    *,
    strategy: str,
    config: TrainConfig | None = None,
    unfreeze: int | None = None,
    unfreeze_modules: Sequence[str] | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    keep_model: bool = False,
    **overrides: Any,
) -> FinetuneResult:
    """Fine-tune a copy of ``backbone`` on ``task`` with ``strategy`` and score it on the test split.

    ``config`` defaults to ``TrainConfig.for_strategy(strategy)``; keyword ``overrides`` replace
    single fields of it. ``partial`` needs ``unfreeze`` (the last k blocks) or
    ``unfreeze_modules`` (module names). ``device`` may be "auto" (this worker's GPU, else CPU).
    ``progress`` receives one line per epoch; ``keep_model`` returns the trained network in the
    result. Raises TrainingDivergedError on a non-finite loss.
    """
    check_strategy(strategy)
    config = (
        TrainConfig.for_strategy(strategy, **overrides) if config is None else config.replace(**overrides)
    )
    trainable_names = trainable_module_names(backbone, strategy, unfreeze, unfreeze_modules)
    check_modality(backbone.name, backbone.input_spec, task.name, task.modality)
    if config.augment and task.modality != "image":
        raise ValueError(f"augment=True shifts and flips images; task {task.name!r} yields {task.modality}s")
    if len(task.train) == 0 or len(task.test) == 0:
        raise ValueError(
            f"task {task.name!r} needs non-empty train and test splits to fine-tune, got {task!r}"
        )
    device = select_device(device) if isinstance(device, str) else device

    start = time.perf_counter()
    step_work = _step_macs(backbone, config.batch_size) if device.type == "cpu" else 0.0
    with (
        _seeded(seed, device),
        _deterministic(device.type == "cpu"),
        single_thread_below(step_work, SINGLE_THREAD_STEP_MACS, device),
    ):
        run = _Run(backbone, task, config, device, seed, progress)
        probe_accuracy = None
        if strategy == "lp-ft" and config.probe_epochs > 0:
            probe_config = dataclasses.replace(
                config, epochs=config.probe_epochs, lr_head=config.probe_lr, augment=False, max_steps=None
            )
            run.train_stage("probe", probe_config, trainable_names=[])
            probe_accuracy = classification_metrics(run.test.labels, run.logits(run.test))["accuracy"]
        run.train_stage(strategy, config, trainable_names=trainable_names)
        logits = run.logits(run.test)
    metrics = classification_metrics(run.test.labels, logits)
    model = run.classifier
    return FinetuneResult(
        strategy=strategy,
        accuracy=metrics["accuracy"],
        macro_f1=metrics["macro_f1"],
        top5_accuracy=metrics.get("top5_accuracy"),
        curve=run.curve,
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        total_params=sum(p.numel() for p in model.parameters()),
        seconds=time.perf_counter() - start,
        device=str(device),
        seed=seed,
        epochs_run=len(run.curve),
        best_epoch=run.best_epoch,
        test_predictions=logits.argmax(axis=1),
        test_labels=run.test.labels.copy(),
        config=config.as_dict(),
        probe_accuracy=probe_accuracy,
        model=model.eval() if keep_model else None,
    )


class _Run:
    """The state shared by the stages of one run: model, data, generators, curve."""

    def __init__(
        self,
        backbone: Backbone,
        task: Task,
        config: TrainConfig,
        device: torch.device,
        seed: int,
        progress: Callable[[str], None] | None,
    ) -> None:
        self.backbone = backbone
        self.task = task
        self.device = device
        self.progress = progress
        self.train_split, self.val, self.test = task.train, task.val, task.test
        # Separate streams, so that e.g. turning augmentation on does not change the data order.
        self.data_generator = torch.Generator().manual_seed(seed)
        self.augment_generator = torch.Generator().manual_seed(seed + 1_000_003)
        head_generator = torch.Generator().manual_seed(seed + 2_000_003)
        head = _new_head(backbone.feature_dim, task.num_classes, head_generator)
        model = copy.deepcopy(backbone.model)
        for parameter in model.parameters():
            parameter.grad = None  # deepcopy copies the caller's stale gradients too
        self.classifier = FinetunedClassifier(model, head).to(device)
        self.precision = _autocast_dtype(config.mixed_precision, device)
        self.curve: list[dict[str, Any]] = []
        self.best_epoch = 0
        self.feature_cache: dict[str, torch.Tensor] | None = None

    # --- data -----------------------------------------------------------------------------

    def _inputs(self, split: Split, idx: np.ndarray, augment: bool) -> torch.Tensor:
        raw = split.load(idx)
        if isinstance(raw, list):  # texts: the tokenizer runs on the host
            return self.backbone.prepare(raw).to(self.device, non_blocking=True)
        x = self.backbone.prepare(torch.as_tensor(raw).to(self.device, non_blocking=True))
        return _augment(x, self.augment_generator) if augment else x

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.precision)

    def _batches(self, n: int, batch_size: int) -> Iterator[np.ndarray]:
        for begin in range(0, n, batch_size):
            yield np.arange(begin, min(begin + batch_size, n))

    def _features(self, split: Split, batch_size: int) -> torch.Tensor:
        """Backbone features of a whole split (frozen backbone, eval mode), computed once."""
        assert self.feature_cache is not None
        if split.fingerprint not in self.feature_cache:
            parts = []
            self.classifier.eval()
            # no_grad, not inference_mode: the head's backward needs to save these features.
            with torch.no_grad(), self._autocast():
                for idx in self._batches(len(split), batch_size):
                    parts.append(self.classifier.backbone(self._inputs(split, idx, augment=False)).float())
            self.feature_cache[split.fingerprint] = torch.cat(parts)
        return self.feature_cache[split.fingerprint]

    def logits(self, split: Split, batch_size: int = 256) -> np.ndarray:
        """Logits of a whole split in eval mode, as float32 numpy."""
        self.classifier.eval()
        parts = []
        with torch.inference_mode(), self._autocast():
            if self.feature_cache is not None:
                features = self._features(split, batch_size)
                parts.append(self.classifier.head(features).float())
            else:
                for idx in self._batches(len(split), batch_size):
                    parts.append(self.classifier(self._inputs(split, idx, augment=False)).float())
        return torch.cat(parts).cpu().numpy()

    # --- training -------------------------------------------------------------------------

    def train_stage(self, stage: str, config: TrainConfig, trainable_names: Sequence[str]) -> None:
        """Train for ``config.epochs`` (or until early stopping), leaving the weights to score."""
        model = self.classifier
        model.set_trainable(trainable_names)
        # A frozen backbone without augmentation sees the same input every epoch: its features
        # are computed once and only the head trains (same result, far cheaper).
        self.feature_cache = {} if not trainable_names and not config.augment else None
        train_labels = torch.as_tensor(self.train_split.labels, device=self.device)
        n = len(self.train_split)
        # Each epoch is cut into ceil(n / batch_size) near-equal batches (never a lone last
        # example, which would break BatchNorm in training mode).
        steps_per_epoch = -(-n // config.batch_size)
        total_steps = config.epochs * steps_per_epoch
        if config.max_steps is not None:
            total_steps = min(total_steps, config.max_steps)
        optimizer = _optimizer(model, config)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config.schedule, total_steps))
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == torch.float16)
        trainable = [p for p in model.parameters() if p.requires_grad]

        if self.feature_cache is not None:
            train_features = self._features(self.train_split, 256)
        best_accuracy, best_state, best_epoch, stale = -math.inf, None, 0, 0
        step = 0
        for epoch_in_stage in range(1, config.epochs + 1):
            epoch = len(self.curve) + 1
            order = torch.randperm(n, generator=self.data_generator).numpy()
            batches = np.array_split(order, steps_per_epoch)
            model.train()
            loss_sum, seen = torch.zeros((), device=self.device), 0
            for idx in batches:
                if step >= total_steps:
                    break
                with self._autocast():
                    if self.feature_cache is not None:
                        logits = model.head(train_features[torch.as_tensor(idx, device=self.device)])
                    else:
                        logits = model(self._inputs(self.train_split, idx, augment=config.augment))
                    loss = F.cross_entropy(
                        logits.float(), train_labels[torch.as_tensor(idx, device=self.device)]
                    )
                if not torch.isfinite(loss):
                    raise _diverged(stage, epoch, step + 1, loss, optimizer, config, self.precision)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if config.grad_clip is not None:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                loss_sum += loss.detach() * len(idx)
                seen += len(idx)
            train_loss = float(loss_sum) / max(seen, 1)
            val_accuracy = self._val_accuracy()
            self.curve.append(
                {"epoch": epoch, "stage": stage, "train_loss": train_loss, "val_accuracy": val_accuracy}
            )
            if self.progress is not None:
                val_text = "n/a" if val_accuracy is None else f"{val_accuracy:.4f}"
                self.progress(
                    f"[{stage}] epoch {epoch_in_stage}/{config.epochs}: train_loss={train_loss:.4f} "
                    f"val_acc={val_text} step={step}/{total_steps}"
                )
            self.best_epoch = epoch
            if config.early_stopping_patience is not None and val_accuracy is not None:
                if val_accuracy > best_accuracy:
                    best_accuracy, stale, best_epoch = val_accuracy, 0, epoch
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    stale += 1
                if stale >= config.early_stopping_patience:
                    break
            if step >= total_steps:
                break
        if best_state is not None:
            model.load_state_dict(best_state)
            self.best_epoch = best_epoch

    def _val_accuracy(self) -> float | None:
        if len(self.val) == 0:
            return None
        return classification_metrics(self.val.labels, self.logits(self.val))["accuracy"]


def _new_head(feature_dim: int, num_classes: int, generator: torch.Generator) -> nn.Linear:
    """A linear head with torch's default initialisation, drawn from ``generator``."""
    head = nn.Linear(feature_dim, num_classes)
    bound = 1.0 / math.sqrt(feature_dim)
    with torch.no_grad():
        head.weight.copy_(torch.rand(head.weight.shape, generator=generator) * 2 * bound - bound)
        head.bias.copy_(torch.rand(head.bias.shape, generator=generator) * 2 * bound - bound)
    return head


def _optimizer(model: FinetunedClassifier, config: TrainConfig) -> torch.optim.Optimizer:
    groups = [{"params": list(model.head.parameters()), "lr": config.lr_head, "name": "head"}]
    backbone_params = [p for p in model.backbone.parameters() if p.requires_grad]
    if backbone_params:
        groups.append({"params": backbone_params, "lr": config.lr_backbone, "name": "backbone"})
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    return torch.optim.AdamW(groups, weight_decay=config.weight_decay)


def _schedule(schedule: str, total_steps: int) -> Callable[[int], float]:
    if schedule == "constant":
        return lambda step: 1.0
    return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random shift (crop of the zero-padded image) and, for RGB, random horizontal flip.

    The random draws come from a CPU generator (reproducible on any device); the image work
    stays on ``x``'s device. Zero is the mean colour of the prepared (normalised) input.
    """
    n, channels, height, width = x.shape
    pad = max(1, round(min(height, width) / 8))
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    rows = torch.arange(height, device=x.device)[None, :] + dy[:, None]
    cols = torch.arange(width, device=x.device)[None, :] + dx[:, None]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(channels, device=x.device)[None, :, None, None]
    out = padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]
    if channels == 3:
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    return out


def _autocast_dtype(mixed_precision: str | bool, device: torch.device) -> torch.dtype | None:
    if mixed_precision is False:
        return None
    if mixed_precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if mixed_precision == "bf16" else torch.float16


def _diverged(
    stage: str,
    epoch: int,
    step: int,
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    precision: torch.dtype | None,
) -> TrainingDivergedError:
    rates = ", ".join(f"lr_{group['name']}={group['lr']:.3g}" for group in optimizer.param_groups)
    if config.grad_clip is None:
        clipping = "enable gradient clipping (grad_clip=1.0)"
    else:
        clipping = f"clip gradients harder (grad_clip is {config.grad_clip})"
    if precision is None:
        precision_hint = "mixed precision was off, so it is not the cause"
    else:
        precision_hint = f"turn off mixed precision (mixed_precision=False; it ran in {precision})"
    return TrainingDivergedError(
        f"training diverged: the loss became {loss.detach().item()} at step {step} "
        f"(epoch {epoch}, stage {stage!r}) with {rates} (current values, after the schedule). "
        f"Try a lower lr_backbone/lr_head (e.g. 10x lower), {clipping}; {precision_hint}."
    )


SINGLE_THREAD_STEP_MACS = SINGLE_THREAD_BATCH_MACS  # one thread below it (see reusespec.devices)


def _step_macs(backbone: Backbone, batch_size: int) -> float:
    """Multiply-adds of the backbone's forward pass over one training batch (convs and linears)."""
    return float(approximate_macs(backbone.model, backbone.input_spec.example_shape()) * batch_size)


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG (dropout) for the run, restoring the caller's state afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """Deterministic algorithms for the run (CPU only: CUDA would need CUBLAS_WORKSPACE_CONFIG)."""
    if not enabled:
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)
