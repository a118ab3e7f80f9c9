"""Real datasets that install from the package index (asset group ``real-data``), read directly.

- ``elpv``: 2,624 electroluminescence images of solar-cell crops (300x300 greyscale) from the
  elpv-dataset package, four classes by defect probability (0, 1/3, 2/3, 1). Licence
  CC-BY-NC-SA 4.0: optional, never bundled.
- ``elpv:type``: the same images labelled by cell type (mono / poly).
- ``elpv:small``, ``elpv:type-small``, ``animal-mnist:small``: a fixed stratified subset of about 600 images
  (drawn once, before splitting), for specs that must run in CI time.
- ``animal-mnist``: animal silhouettes, 28x28, 10 classes, from the animal-mnist package. The file
  holds 284 exact duplicate images; duplicates are removed *before* splitting, so no image is in
  two splits.

The packages are installed with ``--no-deps`` (``python -m reusespec.assets install real-data``)
and never imported: animal-mnist's loader imports TensorFlow, so its data file (a gzipped pickle of
two numpy arrays) is read by an unpickler that accepts numpy arrays and nothing else. As for the
bundled tasks, a fixed 20% per class (seed 0) is the test split whatever the run's seed; the seed
moves only the train/val boundary.
"""

from __future__ import annotations

import functools
import gzip
import io
import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from reusespec.errors import MissingDatasetError, TaskError
from reusespec.hashing import array_digest, digest
from reusespec.tasks.base import Split, Task
from reusespec.tasks.bundled import TEST_FRACTION, TEST_SPLIT_SEED
from reusespec.tasks.plugins import register_task
from reusespec.tasks.splits import stratified_split

INSTALL_REAL_DATA = "python -m reusespec.assets install real-data"
ELPV_DEFECT_CLASSES = ("functional", "possibly defective", "likely defective", "defective")
ELPV_TYPES = ("mono", "poly")
ANIMAL_CLASSES = tuple(str(i) for i in range(10))
# ``:small`` variants: a fixed stratified subset (drawn once with seed 0, before splitting), so that
# specs over the real zoo run in CI time on 2 CPU cores (docs/benchmarks.md, "Real zoo").
SMALL_SIZE = 600
SMALL_SEED = 0


def _package_dir(package: str, task: str) -> Path:
    from reusespec.backbones.real_zoo import locate_package_file

    marker = locate_package_file(package, "__init__.py")
    if marker is None:
        raise MissingDatasetError(
            f"task {task!r} reads the {package.replace('_', '-')} package, which is not installed: "
            f"{INSTALL_REAL_DATA}"
        )
    return marker.parent


# --------------------------------------------------------------------------------------------------
# ELPV


@functools.cache
def _elpv_table() -> tuple[Path, tuple[str, ...], np.ndarray, np.ndarray]:
    """Image folder, file names, defect class 0..3 and type 0/1 of every cell."""
    root = _package_dir("elpv_dataset", "elpv") / "data"
    names, defect, kind = [], [], []
    for line in (root / "labels.csv").read_text().splitlines():
        if not line.strip():
            continue
        path, probability, cell_type = line.split()
        names.append(path)
        defect.append(round(float(probability) * 3))
        kind.append(ELPV_TYPES.index(cell_type))
    return root, tuple(names), np.array(defect, dtype=np.int64), np.array(kind, dtype=np.int64)


def _elpv_images(root: Path, names: tuple[str, ...], positions: np.ndarray) -> torch.Tensor:
    from PIL import Image

    out = np.empty((len(positions), 1, 300, 300), dtype=np.uint8)
    for row, position in enumerate(np.asarray(positions).reshape(-1)):
        with Image.open(root / names[int(position)]) as image:
            out[row, 0] = np.asarray(image.convert("L"))
    return torch.from_numpy(out)


def load_elpv(selector: str | None, *, seed: int = 0, val_fraction: float = 0.2) -> Task:
    """``elpv`` (defect class), ``elpv:type`` (mono/poly), and their ``small`` subsets.

    Both label sets split the same cells the same way (stratified by defect class and type together),
    and ``elpv:type`` relabels the defect task's splits, so features are extracted once for both.
    """
    root, names, defect, kind = _elpv_table()
    small = selector is not None and selector.endswith("small")
    rows = _small_subset(defect * len(ELPV_TYPES) + kind) if small else np.arange(len(defect))
    strata = (defect * len(ELPV_TYPES) + kind)[rows]
    content = digest("elpv", (root / "labels.csv").read_bytes(), array_digest(rows))
    base_name = "elpv:small" if small else "elpv"

    def make(split: str, positions: np.ndarray) -> Split:
        cells = rows[positions]
        fingerprint = digest("split", content, split, array_digest(cells), array_digest(defect[cells]))

        def load(idx: np.ndarray) -> torch.Tensor:
            return _elpv_images(root, names, cells[np.asarray(idx)])

        return Split(split, defect[cells], load, fingerprint)

    task = _task(base_name, ELPV_DEFECT_CLASSES, strata, make, seed, val_fraction, rows)
    if selector is None or not selector.startswith("type"):
        return task
    positions = task.meta["positions"]

    def relabel(split: Split) -> Split:
        cells = rows[np.asarray(positions[split.name])]
        return split.subset(np.arange(len(split)), kind[cells], tag="cell type")

    return replace(
        task,
        name=f"elpv:{selector}",
        class_names=list(ELPV_TYPES),
        train=relabel(task.train),
        val=relabel(task.val),
        test=relabel(task.test),
    )


# --------------------------------------------------------------------------------------------------
# Animal-MNIST


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and refuses every other global: the file is untrusted."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are expected")
        if name == "_reconstruct":
            try:  # numpy >= 2 keeps it in numpy._core; numpy.core is a warning shim there
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy 1.x
                from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
            return _reconstruct
        return getattr(np, name)


def _read_numpy_pickle(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        obj = _NumpyOnlyUnpickler(io.BytesIO(handle.read())).load()
    if not isinstance(obj, np.ndarray):
        raise TaskError(f"{path} does not hold a numpy array (found {type(obj).__name__})")
    return obj


@functools.cache
def animal_mnist_arrays() -> tuple[torch.Tensor, np.ndarray, int]:
    """Unique images (N, 1, 28, 28) uint8, their labels, and how many exact duplicates were dropped."""
    folder = _package_dir("animal_mnist", "animal-mnist") / "data" / "Animal_MNIST"
    images = _read_numpy_pickle(folder / "animal_data_version_3.gz")
    labels = _read_numpy_pickle(folder / "animal_label_version_3.gz").astype(np.int64).reshape(-1)
    images = np.ascontiguousarray(images.reshape(len(images), 28, 28).astype(np.uint8))
    if len(images) != len(labels):
        raise TaskError(f"animal-mnist: {len(images)} images but {len(labels)} labels")
    # Keep the first occurrence of each exact image (np.unique on the raw bytes, first index).
    rows = images.reshape(len(images), -1)
    _, first = np.unique(rows, axis=0, return_index=True)
    keep = np.sort(first)
    return torch.from_numpy(images[keep][:, None]), labels[keep], len(images) - len(keep)


def load_animal_mnist(selector: str | None, *, seed: int = 0, val_fraction: float = 0.2) -> Task:
    images, labels, _ = animal_mnist_arrays()
    rows = _small_subset(labels) if selector == "small" else np.arange(len(labels))
    name = "animal-mnist:small" if selector == "small" else "animal-mnist"

    def make(split: str, positions: np.ndarray) -> Split:
        chosen = rows[positions]
        return Split.from_arrays(split, images[torch.from_numpy(chosen)], labels[chosen], name)

    return _task(name, ANIMAL_CLASSES, labels[rows], make, seed, val_fraction, rows)


# --------------------------------------------------------------------------------------------------


def _task(
    name: str,
    class_names: tuple[str, ...],
    strata: np.ndarray,
    make: Any,
    seed: int,
    val_fraction: float,
    rows: np.ndarray,
) -> Task:
    if not 0 < val_fraction < 1 - TEST_FRACTION:
        raise TaskError(
            f"task {name!r}: val={val_fraction:g} must be between 0 and {1 - TEST_FRACTION:g} (a fixed "
            f"{TEST_FRACTION:.0%} of the data is the test split; val is a fraction of the whole)"
        )
    pool, test = stratified_split(strata, (1 - TEST_FRACTION, TEST_FRACTION), TEST_SPLIT_SEED)
    share = val_fraction / (1 - TEST_FRACTION)
    train_in_pool, val_in_pool = stratified_split(strata[pool], (1 - share, share), seed)
    parts = {"train": pool[train_in_pool], "val": pool[val_in_pool], "test": test}
    splits = {split: make(split, positions) for split, positions in parts.items()}
    meta = {"source": name, "split_seed": seed, "test_split_seed": TEST_SPLIT_SEED}
    # Which rows of the (deduplicated) dataset each split holds, so a user can trace an example.
    meta["positions"] = {split: positions.tolist() for split, positions in parts.items()}
    meta["rows"] = {split: rows[positions].tolist() for split, positions in parts.items()}
    return Task(name, list(class_names), splits["train"], splits["val"], splits["test"], meta=meta)


def _small_subset(strata: np.ndarray) -> np.ndarray:
    """A fixed stratified subset of SMALL_SIZE rows (seed 0, whatever the run's seed), sorted."""
    share = min(1.0, SMALL_SIZE / len(strata))
    chosen, _ = stratified_split(strata, (share, 1 - share), SMALL_SEED)
    return chosen


register_task(
    "elpv",
    load_elpv,
    selectors=("type", "small", "type-small"),
    description="solar-cell defects (4 classes) or cell type; 'small': a fixed subset of about 600 cells",
)
register_task(
    "animal-mnist",
    load_animal_mnist,
    selectors=("small",),
    description="animal silhouettes, 10 classes, deduplicated; 'small': a fixed subset of about 600 images",
)
