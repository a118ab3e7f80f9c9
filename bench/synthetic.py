"""Synthetic data and backbones for the benchmarks that need sizes the demo does not have.

- :func:`gaussian_mixture`: feature matrices of any size (class means plus correlated noise with a
  decaying spectrum, so the head fit is as ill-conditioned as on real features).
- :func:`write_image_folder`: class-conditional colour images for a ``folder:`` task.
- ``bench.synthetic:resnet18_64``: torchvision's ResNet-18 at random init on 64 px input, a factory
  backbone (``pkg.module:factory``) to show how the ratios scale with backbone cost.
- ``bench.synthetic:wide_mlp``: a cheap backbone with 1,024 features, so stored features dominate
  memory in the extraction memory benchmark.
- :func:`lazy_split`: a split whose images are computed from their positions on load, so the
  dataset itself takes no memory and only extraction's own memory shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from reusespec.backbones.base import InputSpec
from reusespec.hashing import digest
from reusespec.tasks.base import Split

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MNIST_INPUT = InputSpec(channels=1, size=(28, 28), mean=(0.1307,), std=(0.3081,))


@dataclass
class FeatureSplits:
    train_x: npt.NDArray[np.float32]
    train_y: npt.NDArray[np.int64]
    val_x: npt.NDArray[np.float32]
    val_y: npt.NDArray[np.int64]
    test_x: npt.NDArray[np.float32]
    test_y: npt.NDArray[np.int64]

    @property
    def shape(self) -> tuple[int, int]:
        return self.train_x.shape[0], self.train_x.shape[1]


def gaussian_mixture(
    n_train: int, width: int, classes: int, *, seed: int = 0, separation: float = 3.0
) -> FeatureSplits:
    """Train / val / test features (val and test a fifth of train each) from one Gaussian mixture.

    Class means are ``separation / sqrt(width)`` times standard normal vectors; the noise has
    per-direction scales falling over two decades, rotated at random, and a shared offset, like
    the correlated, uncentred features of a real backbone.
    """
    rng = np.random.default_rng(seed)
    n_val = n_test = max(classes, n_train // 5)
    total = n_train + n_val + n_test
    means = (rng.standard_normal((classes, width)) * separation / np.sqrt(width)).astype(np.float32)
    spectrum = np.logspace(0, -2, width) ** 0.5
    spectrum *= np.sqrt(width / np.sum(spectrum**2))  # unit noise energy per direction on average
    rotation, _ = np.linalg.qr(rng.standard_normal((width, width)))
    mixing = (spectrum[:, None] * rotation).astype(np.float32)
    labels = rng.integers(0, classes, size=total)
    labels[:classes] = np.arange(classes)  # every class present
    rng.shuffle(labels)
    x = rng.standard_normal((total, width), dtype=np.float32) @ mixing
    x += means[labels]
    x += rng.standard_normal(width).astype(np.float32)  # an offset, as ReLU features have
    cut1, cut2 = n_train, n_train + n_val
    return FeatureSplits(x[:cut1], labels[:cut1], x[cut1:cut2], labels[cut1:cut2], x[cut2:], labels[cut2:])


def write_image_folder(
    root: Path, classes: int = 10, per_class: int = 100, size: int = 64, seed: int = 0
) -> Path:
    """Write ``classes`` folders of PNG images: each class is a colour grating of its own frequency
    and orientation, each image shifted, recoloured and noised at random."""
    from PIL import Image

    done = root / ".complete"
    if done.exists():
        return root
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for c in range(classes):
        folder = root / f"class{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        angle = np.pi * c / classes
        frequency = 2.0 + 3.0 * rng.random()
        colour = rng.random(3)
        for i in range(per_class):
            phase = rng.random() * 2 * np.pi
            wave = np.sin(2 * np.pi * frequency * (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
            tint = np.clip(colour + 0.25 * rng.standard_normal(3), 0, 1)
            image = 0.5 + 0.35 * wave[..., None] * tint[None, None, :]
            image += 0.15 * rng.standard_normal((size, size, 3))
            pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    done.touch()
    return root


def resnet18_64() -> tuple[nn.Module, InputSpec]:
    """ResNet-18 (random init, seeded by the registry) reading 64 x 64 colour images."""
    import torchvision

    spec = InputSpec(channels=3, size=(64, 64), mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return torchvision.models.resnet18(weights=None), spec


def wide_mlp() -> tuple[nn.Module, InputSpec]:
    """One hidden layer of 1,024 ReLU units on MNIST-sized input: cheap to run, wide features."""
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 1024), nn.ReLU()), MNIST_INPUT


def lazy_split(n: int, name: str = "train", classes: int = 10) -> Split:
    """A split of ``n`` 28 x 28 grey images computed from their positions whenever they are loaded."""
    pixels = np.arange(28 * 28, dtype=np.int64)

    def load(positions: npt.ArrayLike) -> torch.Tensor:
        p = np.asarray(positions, dtype=np.int64)[:, None]
        values = (p * 2654435761 + pixels * 40503) % 251
        return torch.from_numpy(values.astype(np.uint8).reshape(-1, 1, 28, 28))

    labels = np.arange(n, dtype=np.int64) % classes
    return Split(name, labels, load, digest("bench-lazy-split", n, name, classes))
