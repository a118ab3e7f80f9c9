"""Fine-tuning strategies on a real (tiny) backbone and task (reusespec.finetune).

The backbone is a small conv net with BatchNorm, pretrained for a moment on a *source* task
(digits 0-4 from a pool of scikit-learn's digits) and transferred to the target task (all ten
digits, from a disjoint pool) - a miniature of the usual ImageNet -> downstream setting.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from reusespec.backbones.base import Backbone, InputSpec
from reusespec.errors import TrainingDivergedError
from reusespec.finetune import STRATEGIES, FinetunedClassifier, FinetuneResult, TrainConfig, finetune
from reusespec.metrics import classification_metrics
from reusespec.tasks.base import Split, Task
from reusespec.tasks.splits import stratified_split

pytestmark = pytest.mark.usefixtures("one_thread")

BLOCKS = ("stem", "block1", "block2")
SPEC = InputSpec(channels=1, size=(8, 8), mean=(0.5,), std=(0.5,))
TARGET_SIZE = 400
# Settings under which this tiny transfer learns something in a few epochs.
QUICK: dict[str, Any] = {
    "epochs": 4,
    "lr_head": 0.03,
    "lr_backbone": 0.03,
    "augment": False,
    "early_stopping_patience": None,
}


def _digits() -> tuple[torch.Tensor, np.ndarray]:
    digits = load_digits()
    images = torch.as_tensor(np.round(digits.images * (255 / 16)).astype(np.uint8))[:, None]
    return images, digits.target.astype(np.int64)


def _tiny_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            stem=nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
            block1=nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.BatchNorm2d(16), nn.ReLU()),
            block2=nn.Sequential(
                nn.Conv2d(16, 16, 3, padding=1),
                nn.BatchNorm2d(16),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
            ),
        )
    )


def _pretrain(model: nn.Sequential, images: torch.Tensor, labels: np.ndarray) -> None:
    x, y = SPEC.prepare(images), torch.as_tensor(labels)
    head = nn.Linear(16, int(labels.max()) + 1)
    optimizer = torch.optim.SGD([*model.parameters(), *head.parameters()], lr=0.1, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(150):
        idx = torch.randint(0, len(y), (64,), generator=generator)
        loss = nn.functional.cross_entropy(head(model(x[idx])), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # Settle the BatchNorm statistics on the source data, as a released checkpoint would have them.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None  # cumulative average over this pass
        model(x)
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 0.1
    model.eval()


@pytest.fixture(scope="module")
def data() -> tuple[Backbone, Task]:
    images, labels = _digits()
    order = np.random.default_rng(0).permutation(len(labels))
    target, source = np.sort(order[:TARGET_SIZE]), order[TARGET_SIZE:]
    source = source[labels[source] < 5]
    model = _tiny_net()
    _pretrain(model, images[torch.as_tensor(source)], labels[source])
    backbone = Backbone(
        name="tiny-digits-cnn", model=model, feature_dim=16, input_spec=SPEC, fingerprint="x", blocks=BLOCKS
    )
    images, labels = images[torch.as_tensor(target)], labels[target]
    parts = stratified_split(labels, (0.6, 0.2, 0.2), seed=0)
    train, val, test = (
        Split.from_arrays(name, images[torch.as_tensor(p)], labels[p], parent="digits")
        for name, p in zip(("train", "val", "test"), parts, strict=True)
    )
    return backbone, Task("digits", [str(i) for i in range(10)], train, val, test)


@pytest.fixture(scope="module")
def backbone(data: tuple[Backbone, Task]) -> Backbone:
    return data[0]


@pytest.fixture(scope="module")
def task(data: tuple[Backbone, Task]) -> Task:
    return data[1]


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def _changed_blocks(before: nn.Module, after: nn.Module) -> set[str]:
    """Top-level blocks with any parameter or buffer (BatchNorm statistics included) changed."""
    old, new = before.state_dict(), after.state_dict()
    return {name.split(".")[0] for name in old if not torch.equal(old[name], new[name])}


def _batchnorm_stats_changed(before: nn.Module, after: nn.Module) -> dict[str, bool]:
    old, new = before.state_dict(), after.state_dict()
    return {
        name: not torch.equal(old[name], new[name])
        for name in old
        if name.endswith(("running_mean", "running_var", "num_batches_tracked"))
    }


def _trained(result: FinetuneResult) -> FinetunedClassifier:
    assert result.model is not None
    return result.model


def _grads(model: nn.Module) -> list[list[float] | None]:
    return [None if p.grad is None else p.grad.flatten().tolist() for p in model.parameters()]


def _param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- which parameters train ---------------------------------------------------------------------


@pytest.mark.parametrize("augment", [False, True])
def test_head_only_trains_the_head_and_leaves_the_backbone_bit_for_bit(
    backbone: Backbone, task: Task, augment: bool
) -> None:
    result = finetune(backbone, task, strategy="head-only", keep_model=True, **{**QUICK, "augment": augment})
    trained = _trained(result)
    assert _changed_blocks(backbone.model, trained.backbone) == set()
    assert not any(p.requires_grad for p in trained.backbone.parameters())
    assert result.trainable_params == _param_count(trained.head)
    assert result.total_params == _param_count(backbone.model) + _param_count(trained.head)
    # The head did learn.
    assert result.curve[-1]["train_loss"] < result.curve[0]["train_loss"]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_partial_changes_exactly_the_last_k_blocks(backbone: Backbone, task: Task, k: int) -> None:
    result = finetune(backbone, task, strategy="partial", unfreeze=k, keep_model=True, **QUICK)
    trained = _trained(result)
    assert _changed_blocks(backbone.model, trained.backbone) == set(BLOCKS[-k:])
    for name in BLOCKS:
        flags = {p.requires_grad for p in trained.backbone.get_submodule(name).parameters()}
        assert flags == {name in BLOCKS[-k:]}
    unfrozen = sum(_param_count(backbone.model.get_submodule(name)) for name in BLOCKS[-k:])
    assert result.trainable_params == unfrozen + _param_count(trained.head)


def test_partial_with_named_modules_keeps_later_frozen_batchnorm_statistics(
    backbone: Backbone, task: Task
) -> None:
    # block2 is frozen but sits *after* the trained block1: its BatchNorm sees shifting inputs
    # and would update its statistics if it were left in training mode.
    result = finetune(
        backbone, task, strategy="partial", unfreeze_modules=["block1"], keep_model=True, **QUICK
    )
    trained = _trained(result)
    assert _changed_blocks(backbone.model, trained.backbone) == {"block1"}
    stats = _batchnorm_stats_changed(backbone.model, trained.backbone)
    assert stats["block1.1.running_mean"] and not stats["block2.1.running_mean"]
    # train() keeps the frozen modules in eval mode; the trained block trains.
    trained.train()
    modes = {name: trained.backbone.get_submodule(f"{name}.1").training for name in BLOCKS}
    assert modes == {"stem": False, "block1": True, "block2": False}


@pytest.mark.parametrize("strategy", ["full", "lp-ft"])
def test_full_and_lp_ft_change_every_block_and_its_batchnorm_statistics(
    backbone: Backbone, task: Task, strategy: str
) -> None:
    result = finetune(backbone, task, strategy=strategy, keep_model=True, **QUICK)
    trained = _trained(result)
    assert _changed_blocks(backbone.model, trained.backbone) == set(BLOCKS)
    assert all(_batchnorm_stats_changed(backbone.model, trained.backbone).values())
    assert result.trainable_params == result.total_params


def test_partial_without_declared_blocks_uses_the_children_of_a_sequential(
    backbone: Backbone, task: Task
) -> None:
    bare = Backbone(name="bare", model=backbone.model, feature_dim=16, input_spec=SPEC, fingerprint="y")
    result = finetune(bare, task, strategy="partial", unfreeze=1, keep_model=True, **QUICK)
    assert _changed_blocks(backbone.model, _trained(result).backbone) == {"block2"}


class _Wrapped(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x)
        return out


def test_partial_on_a_model_without_blocks_asks_for_module_names(backbone: Backbone, task: Task) -> None:
    opaque = Backbone(
        name="opaque", model=_Wrapped(backbone.model), feature_dim=16, input_spec=SPEC, fingerprint="z"
    )
    with pytest.raises(ValueError, match="unfreeze_modules"):
        finetune(opaque, task, strategy="partial", unfreeze=1, **QUICK)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "partial", "unfreeze": 4}, r"1\.\.3"),
        ({"strategy": "partial", "unfreeze": 0}, r"1\.\.3"),
        ({"strategy": "partial"}, "exactly one of"),
        ({"strategy": "partial", "unfreeze_modules": ["head"]}, "stem"),
        ({"strategy": "full", "unfreeze": 1}, "partial"),
        ({"strategy": "linear"}, "head-only"),
    ],
)
def test_bad_strategy_arguments_are_clear_errors(
    backbone: Backbone, task: Task, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        finetune(backbone, task, **kwargs)  # type: ignore[arg-type]


# --- the caller's objects and global state ------------------------------------------------------


def test_the_callers_backbone_and_global_rng_are_untouched(backbone: Backbone, task: Task) -> None:
    before = _snapshot(backbone.model)
    modes = {name: m.training for name, m in backbone.model.named_modules()}
    grads = {name: p.requires_grad for name, p in backbone.model.named_parameters()}
    grads_before = _grads(backbone.model)
    torch.manual_seed(12345)
    rng = torch.get_rng_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    finetune(backbone, task, strategy="full", seed=3, **{**QUICK, "augment": True})
    after = backbone.model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert {name: m.training for name, m in backbone.model.named_modules()} == modes
    assert {name: p.requires_grad for name, p in backbone.model.named_parameters()} == grads
    assert _grads(backbone.model) == grads_before
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.are_deterministic_algorithms_enabled() == deterministic


# --- reproducibility ----------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_result(backbone: Backbone, task: Task) -> None:
    settings = {**QUICK, "augment": True, "epochs": 3}
    first = finetune(backbone, task, strategy="lp-ft", seed=7, probe_epochs=2, **settings)
    second = finetune(backbone, task, strategy="lp-ft", seed=7, probe_epochs=2, **settings)
    assert first.curve == second.curve
    assert first.accuracy == second.accuracy and first.macro_f1 == second.macro_f1
    assert np.array_equal(first.test_predictions, second.test_predictions)


def test_small_cpu_fine_tunes_run_on_one_thread_whatever_the_process_has(
    backbone: Backbone, task: Task, monkeypatch: pytest.MonkeyPatch
) -> None:
    # So a serial run (all cores) and an xdist worker (its share) report the same scores.
    def run() -> tuple[FinetuneResult, set[int]]:
        threads: set[int] = set()
        result = finetune(
            backbone,
            task,
            strategy="full",
            seed=3,
            progress=lambda _: threads.add(torch.get_num_threads()),
            **QUICK,
        )
        return result, threads

    torch.set_num_threads(1)
    alone, threads_alone = run()
    torch.set_num_threads(2)
    try:
        shared, threads_shared = run()
        assert threads_alone == threads_shared == {1}
        assert alone.curve == shared.curve and np.array_equal(alone.test_predictions, shared.test_predictions)
        monkeypatch.setattr("reusespec.finetune.SINGLE_THREAD_STEP_MACS", 0.0)  # every model counts as large
        _, threads_large = run()
        assert threads_large == {2}
    finally:
        torch.set_num_threads(1)


def test_a_different_seed_gives_a_different_but_close_result(backbone: Backbone, task: Task) -> None:
    results = [finetune(backbone, task, strategy="lp-ft", seed=seed, **QUICK) for seed in (0, 1)]
    assert results[0].curve != results[1].curve
    assert not np.array_equal(results[0].test_predictions, results[1].test_predictions)
    assert abs(results[0].accuracy - results[1].accuracy) <= 0.1


# --- scoring, early stopping, schedule ----------------------------------------------------------


def test_the_result_scores_the_returned_weights_on_the_test_split(backbone: Backbone, task: Task) -> None:
    result = finetune(backbone, task, strategy="partial", unfreeze=2, keep_model=True, **QUICK)
    trained = _trained(result)
    with torch.no_grad():
        logits = trained(backbone.prepare(task.test.load(np.arange(len(task.test))))).numpy()
    metrics = classification_metrics(task.test.labels, logits)
    assert result.accuracy == pytest.approx(metrics["accuracy"])
    assert result.macro_f1 == pytest.approx(metrics["macro_f1"])
    assert result.top5_accuracy == pytest.approx(metrics["top5_accuracy"])
    assert np.array_equal(result.test_predictions, logits.argmax(axis=1))
    assert np.array_equal(result.test_labels, task.test.labels)
    assert result.device == "cpu" and result.seconds > 0


def test_early_stopping_restores_the_best_validation_weights(backbone: Backbone, task: Task) -> None:
    patience = 2
    messages: list[str] = []
    result = finetune(
        backbone,
        task,
        strategy="head-only",
        keep_model=True,
        progress=messages.append,
        **{**QUICK, "epochs": 12, "early_stopping_patience": patience, "lr_head": 0.1},
    )
    val_curve = [entry["val_accuracy"] for entry in result.curve]
    # This setting overfits after a few epochs, so the last weights are not the best ones.
    assert val_curve[-1] < max(val_curve)
    assert result.epochs_run == len(result.curve) == len(messages)
    assert result.curve[result.best_epoch - 1]["val_accuracy"] == max(val_curve)
    assert result.epochs_run <= result.best_epoch + patience
    # The weights scored are the best epoch's: they reproduce its validation accuracy.
    trained = _trained(result)
    with torch.no_grad():
        logits = trained(backbone.prepare(task.val.load(np.arange(len(task.val))))).numpy()
    assert classification_metrics(task.val.labels, logits)["accuracy"] == max(val_curve)
    assert all("val_acc=" in message for message in messages)


def test_without_early_stopping_every_epoch_runs(backbone: Backbone, task: Task) -> None:
    messages: list[str] = []
    result = finetune(backbone, task, strategy="head-only", progress=messages.append, **QUICK)
    assert result.epochs_run == result.best_epoch == QUICK["epochs"] == len(messages)
    assert [entry["epoch"] for entry in result.curve] == list(range(1, result.epochs_run + 1))


def test_without_a_validation_split_there_is_no_early_stopping(backbone: Backbone, task: Task) -> None:
    no_val = Task(
        task.name, task.class_names, task.train, task.val.subset(np.array([], dtype=np.int64)), task.test
    )
    result = finetune(backbone, no_val, strategy="head-only", **{**QUICK, "early_stopping_patience": 1})
    assert result.epochs_run == result.best_epoch == QUICK["epochs"]
    assert all(entry["val_accuracy"] is None for entry in result.curve)


def test_max_steps_cuts_training_short_with_adamw_and_a_constant_schedule(
    backbone: Backbone, task: Task
) -> None:
    batch_size = 32
    steps_per_epoch = math.ceil(len(task.train) / batch_size)
    result = finetune(
        backbone,
        task,
        strategy="full",
        optimizer="adamw",
        schedule="constant",
        grad_clip=1.0,
        batch_size=batch_size,
        max_steps=steps_per_epoch + 1,
        **{**QUICK, "lr_head": 1e-2, "lr_backbone": 1e-3},
    )
    assert result.epochs_run == 2
    assert result.config["optimizer"] == "adamw" and result.config["max_steps"] == steps_per_epoch + 1
    assert result.curve[1]["train_loss"] < result.curve[0]["train_loss"]


def test_lp_ft_is_at_least_as_accurate_as_its_own_linear_probe(backbone: Backbone, task: Task) -> None:
    result = finetune(backbone, task, strategy="lp-ft", seed=0, **QUICK)
    assert result.probe_accuracy is not None
    assert result.accuracy >= result.probe_accuracy
    stages = [entry["stage"] for entry in result.curve]
    probe_epochs = TrainConfig.for_strategy("lp-ft").probe_epochs
    assert stages == ["probe"] * probe_epochs + ["lp-ft"] * QUICK["epochs"]


# --- divergence ---------------------------------------------------------------------------------


def test_an_absurd_learning_rate_raises_a_clear_divergence_error(backbone: Backbone, task: Task) -> None:
    with pytest.raises(TrainingDivergedError) as raised:
        finetune(backbone, task, strategy="full", **{**QUICK, "lr_head": 1e6, "lr_backbone": 1e6})
    message = str(raised.value)
    assert "nan" in message or "inf" in message
    for expected in ("step", "epoch", "lr_head=", "lr_backbone=", "grad_clip=1.0", "mixed precision"):
        assert expected in message


# --- configuration ------------------------------------------------------------------------------


def test_strategy_defaults_follow_the_protocols() -> None:
    configs = {strategy: TrainConfig.for_strategy(strategy) for strategy in STRATEGIES}
    # Augmentation is opt-in everywhere: what preserves labels depends on the domain.
    assert not any(config.augment for config in configs.values())
    assert configs["lp-ft"].probe_epochs > 0
    assert configs["lp-ft"].lr_backbone < configs["full"].lr_backbone
    for strategy in ("partial", "full"):
        assert configs[strategy].lr_head > configs[strategy].lr_backbone


def test_overrides_replace_single_fields(backbone: Backbone, task: Task) -> None:
    config = TrainConfig.for_strategy("full", epochs=2, batch_size=16)
    assert (config.epochs, config.batch_size) == (2, 16)
    assert config.lr_backbone == TrainConfig.for_strategy("full").lr_backbone
    result = finetune(backbone, task, strategy="full", config=config, epochs=1, augment=False)
    assert result.config == {**config.as_dict(), "epochs": 1, "augment": False}


def test_an_unknown_or_invalid_setting_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="valid fields"):
        TrainConfig.for_strategy("full", learning_rate=0.1)
    with pytest.raises(ValueError, match="optimizer='adam'"):
        TrainConfig(optimizer="adam")
    with pytest.raises(ValueError, match="lr_head"):
        TrainConfig(lr_head=float("nan"))
    with pytest.raises(ValueError, match="mixed_precision"):
        TrainConfig(mixed_precision="fp8")
