"""Real datasets that install from the package index (asset group ``real-data``), read directly.

- ``elpv``: 2,624 electroluminescence images of solar-cell crops (300x300 greyscale) from the
  elpv-dataset package, four classes by defect probability (0, 1/3, 2/3, 1). Licence
  CC-BY-NC-SA 4.0: optional, never bundled.
- ``elpv:type``: the same images labelled by cell type (mono / poly).
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
    root, names, defect, kind = _elpv_table()
    by_type = selector == "type"
    labels = kind if by_type else defect
    name = "elpv:type" if by_type else "elpv"
    # The split is stratified by defect class and type together, so both tasks share it.
    strata = defect * len(ELPV_TYPES) + kind
    content = digest("elpv", (root / "labels.csv").read_bytes())

    def make(split: str, positions: np.ndarray) -> Split:
        fingerprint = digest("split", content, name, split, array_digest(positions), array_digest(labels))

        def load(idx: np.ndarray) -> torch.Tensor:
            return _elpv_images(root, names, positions[np.asarray(idx)])

        return Split(split, labels[positions], load, fingerprint)

    return _task(name, ELPV_TYPES if by_type else ELPV_DEFECT_CLASSES, strata, make, seed, val_fraction)


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

    def make(split: str, positions: np.ndarray) -> Split:
        return Split.from_arrays(
            split, images[torch.from_numpy(positions)], labels[positions], "animal-mnist"
        )

    return _task("animal-mnist", ANIMAL_CLASSES, labels, make, seed, val_fraction)


# --------------------------------------------------------------------------------------------------


def _task(
    name: str,
    class_names: tuple[str, ...],
    strata: np.ndarray,
    make: Any,
    seed: int,
    val_fraction: float,
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
    return Task(name, list(class_names), splits["train"], splits["val"], splits["test"], meta=meta)


register_task("elpv", load_elpv, selectors=("type",), description="solar-cell defects (4 classes) or type")
register_task("animal-mnist", load_animal_mnist, description="animal silhouettes, 10 classes, deduplicated")
