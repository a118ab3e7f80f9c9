"""The demo zoo: small digit backbones that reusespec pretrains itself, reproducibly.

Each entry is a recipe (architecture, source task, epochs, seed). On first use the recipe
is trained on the pool (train + val) of ``mnist5k:0-4`` and saved as safetensors in the
cache, named by a digest of the recipe; every later use, in any process, loads that file.
Training runs single-threaded with a fixed seed, so the checkpoint is the same on every
run of the same machine and library versions.

A checkpoint is written atomically with a checksum (:mod:`reusespec.atomic`) and verified on
every read: a damaged one (truncated, altered) is discarded and rebuilt, and counted in
:func:`reusespec.cache.repair_counts`; temporary files of builders that were killed are removed.
An unusable cache directory falls back as the feature cache does (:func:`reusespec.cache.writable_root`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from reusespec import atomic
from reusespec.backbones.base import Backbone, InputSpec, approximate_macs
from reusespec.backbones.convert import classifier_to_backbone
from reusespec.cache import lock_path, record_repair, writable_root
from reusespec.errors import UnknownBackboneError
from reusespec.hashing import digest

MNIST_INPUT = InputSpec(channels=1, size=(28, 28), mean=(0.1307,), std=(0.3081,))
SOURCE_TASK = "mnist5k:0-4"
ZOO_FORMAT = 2  # 2: written with a checksum sidecar


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)
    )


class DigitsCNN(nn.Module):
    """Three conv blocks and global pooling: features of width ``4 * width``."""

    def __init__(self, width: int = 16, num_classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_block(1, width),
            _conv_block(width, 2 * width),
            _conv_block(2 * width, 4 * width),
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        )
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class DigitsMLP(nn.Module):
    """Two hidden layers on raw pixels: features of width ``hidden // 2``."""

    def __init__(self, hidden: int = 256, num_classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Flatten(),
            nn.Sequential(nn.Linear(28 * 28, hidden), nn.ReLU()),
            nn.Sequential(nn.Linear(hidden, hidden // 2), nn.ReLU()),
        )
        self.classifier = nn.Linear(hidden // 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "cnn16": lambda: DigitsCNN(16),
    "cnn32": lambda: DigitsCNN(32),
    "mlp256": lambda: DigitsMLP(256),
}


@dataclass(frozen=True)
class ZooRecipe:
    architecture: str
    epochs: int
    seed: int = 0
    lr: float = 2e-3
    batch_size: int = 64
    source_task: str = SOURCE_TASK
    description: str = ""


ZOO: dict[str, ZooRecipe] = {
    "digits-cnn": ZooRecipe("cnn16", epochs=6, description="CNN pretrained on MNIST-sample digits 0-4"),
    "digits-cnn-wide": ZooRecipe("cnn32", epochs=6, description="twice as wide, same pretraining"),
    "digits-cnn-1epoch": ZooRecipe("cnn16", epochs=1, description="same CNN, one pretraining epoch"),
    "digits-cnn-random": ZooRecipe("cnn16", epochs=0, description="same CNN at random init (seeded)"),
    "digits-mlp": ZooRecipe("mlp256", epochs=6, description="MLP on raw pixels, same pretraining"),
}


def zoo_names() -> list[str]:
    return [f"zoo:{name}" for name in ZOO]


def recipe_for(name: str) -> ZooRecipe:
    try:
        return ZOO[name]
    except KeyError:
        raise UnknownBackboneError(
            f"unknown zoo backbone 'zoo:{name}'; the demo zoo has {', '.join(zoo_names())}"
        ) from None


def pretraining_cost(name: str) -> int:
    """Relative cost of pretraining a zoo backbone: epochs x multiply-adds per image."""
    recipe = recipe_for(name)
    return recipe.epochs * approximate_macs(
        ARCHITECTURES[recipe.architecture](), (MNIST_INPUT.channels, *MNIST_INPUT.size)
    )


def checkpoint_path(name: str, cache_dir: Path) -> Path:
    recipe = recipe_for(name)
    key = digest("zoo", ZOO_FORMAT, asdict(recipe), torch.__version__)
    return cache_dir / "zoo" / f"{name}-{key[:16]}.safetensors"


def load_zoo_backbone(name: str, cache_dir: Path, progress: Callable[[str], None] | None = None) -> Backbone:
    """Load a zoo backbone, pretraining and caching it first if this cache has none."""
    path, state = _checkpoint(name, cache_dir, progress)
    model = ARCHITECTURES[recipe_for(name).architecture]()
    model.load_state_dict(state)
    meta = {"source": "zoo", "checkpoint": str(path), **asdict(recipe_for(name))}
    return classifier_to_backbone(f"zoo:{name}", model, MNIST_INPUT, meta=meta)


def ensure_checkpoint(name: str, cache_dir: Path, progress: Callable[[str], None] | None = None) -> Path:
    """Path of the verified zoo checkpoint, built once across processes under a file lock."""
    return _checkpoint(name, cache_dir, progress)[0]


def _checkpoint(
    name: str, cache_dir: Path, progress: Callable[[str], None] | None
) -> tuple[Path, dict[str, torch.Tensor]]:
    """The checkpoint's path and weights: read and verified, or (re)built under the lock."""
    path = checkpoint_path(name, cache_dir)
    state = _read_verified(path)
    if state is not None:
        return path, state
    write_dir = writable_root(path.parent, "zoo checkpoints", cache_dir, subdirs=())
    target = write_dir / path.name
    if target != path and (state := _read_verified(target)) is not None:
        return target, state
    with FileLock(str(lock_path(write_dir, path.name))):
        state = _read_verified(target)  # another process built it while we waited
        if state is not None:
            return target, state
        if _discard(target):
            record_repair("zoo checkpoints")
            if progress:
                progress(f"zoo:{name}: the cached checkpoint {target} was damaged; rebuilding it")
        record_repair("temp files", atomic.remove_stale_temps(write_dir))
        start = time.perf_counter()
        recipe = recipe_for(name)
        state = {k: v.contiguous() for k, v in pretrain(recipe).state_dict().items()}
        metadata = {"reusespec.arch": f"zoo:{name}", "reusespec.recipe": json.dumps(asdict(recipe))}
        atomic.write_bytes(target, save_safetensors(state, metadata=metadata), checksum=True)
        if progress:
            progress(f"built zoo:{name} ({recipe.description}) in {time.perf_counter() - start:.1f}s")
    return target, state


def _read_verified(path: Path) -> dict[str, torch.Tensor] | None:
    """The checkpoint's weights if the file is whole (its checksum matches), else None."""
    if not path.exists():
        return None
    try:
        return load_safetensors(atomic.read_verified(path))
    except (atomic.DamagedFileError, SafetensorError, ValueError):
        return None


def _discard(path: Path) -> bool:
    """Remove a damaged checkpoint and its checksum; whether there was anything to remove."""
    found = False
    for stale in (path, path.with_name(path.name + atomic.CHECKSUM_SUFFIX)):
        try:
            stale.unlink()
            found = True
        except FileNotFoundError:
            pass
    return found


def pretrain(recipe: ZooRecipe) -> nn.Module:
    """Train a recipe's architecture on its source task; deterministic for a given seed."""
    from reusespec.tasks.registry import load_task

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-identical checkpoints whatever the caller's thread setting
    try:
        torch.manual_seed(recipe.seed)
        model = ARCHITECTURES[recipe.architecture]()
        if recipe.epochs == 0:
            return model.eval()
        task = load_task(recipe.source_task, seed=0)
        positions = np.concatenate([np.arange(len(task.train)), np.arange(len(task.val)) + len(task.train)])
        images = torch.cat(
            [task.train.load(np.arange(len(task.train))), task.val.load(np.arange(len(task.val)))]
        )
        labels = torch.from_numpy(np.concatenate([task.train.labels, task.val.labels]))
        inputs = MNIST_INPUT.prepare(images)
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        generator = torch.Generator().manual_seed(recipe.seed)
        model.train()
        for _ in range(recipe.epochs):
            order = torch.randperm(len(positions), generator=generator)
            for batch in order.split(recipe.batch_size):
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(inputs[batch]), labels[batch])
                loss.backward()
                optimizer.step()
        return model.eval()
    finally:
        torch.set_num_threads(threads)
