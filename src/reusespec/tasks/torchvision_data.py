"""Standard torchvision datasets as reusespec tasks, read from disk (no download unless allowed).

Splits: ``test`` is the dataset's official test split; ``val`` is a stratified ``val_fraction`` of the
official training split drawn with ``seed``; ``train`` is the rest of the official training split.
Images are held in memory as uint8 tensors ``(N, C, H, W)`` taken straight from the dataset's arrays
(decoding tens of thousands of PIL images one by one would take minutes).

Data directory: :func:`default_data_dir` is ``$REUSESPEC_DATA_DIR`` when that is set, else
``~/.cache/reusespec/data``. Each dataset lives below it in torchvision's own layout, e.g.
``<dir>/cifar-10-batches-py/`` or ``<dir>/MNIST/raw/``.
"""

from __future__ import annotations

import os
import pickle
import urllib.error
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reusespec.errors import MissingDatasetError, TaskError, UnknownTaskError
from reusespec.tasks.base import Split, Task
from reusespec.tasks.splits import stratified_split

DATA_DIR_ENV = "REUSESPEC_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.cache/reusespec/data")

# STL-10's class_names.txt is optional in torchvision (the attribute is absent without it).
_STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")


def default_data_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where datasets are looked for: ``$REUSESPEC_DATA_DIR`` if set, else ``~/.cache/reusespec/data``."""
    configured = env.get(DATA_DIR_ENV, "").strip()
    return Path(configured or DEFAULT_DATA_DIR).expanduser()


@dataclass(frozen=True)
class TorchvisionTaskSpec:
    """How one torchvision dataset class is opened, where its files live, and how its arrays are read.

    ``dataset_class`` is resolved in ``torchvision.datasets`` at load time, so importing this module
    stays cheap and the class's own attributes (folders, checksum tables) are always the live ones.
    """

    dataset_class: str
    open_split: Callable[[type, Path, bool, bool], Any]  # (cls, root, train, download) -> dataset
    directory: Callable[[type, Path], Path]  # (cls, root) -> folder holding the files
    expected_files: Callable[[type], list[tuple[str, str | None]]]  # (file name, md5 or None)
    images: Callable[[Any], torch.Tensor]  # dataset -> uint8 (N, C, H, W)
    labels: Callable[[Any], np.ndarray]
    class_names: Callable[[Any], Sequence[str]]

    def resolve(self) -> type:
        import torchvision.datasets

        cls: type = getattr(torchvision.datasets, self.dataset_class)
        return cls


def _open_with_train_flag(cls: type, root: Path, train: bool, download: bool) -> Any:
    return cls(str(root), train=train, download=download)


def _open_with_split_name(cls: type, root: Path, train: bool, download: bool) -> Any:
    return cls(str(root), split="train" if train else "test", download=download)


def _cifar(dataset_class: str) -> TorchvisionTaskSpec:
    return TorchvisionTaskSpec(
        dataset_class,
        open_split=_open_with_train_flag,
        directory=lambda cls, root: root / cls.base_folder,  # type: ignore[attr-defined]
        expected_files=lambda cls: [
            *((name, md5) for name, md5 in cls.train_list + cls.test_list),  # type: ignore[attr-defined]
            (cls.meta["filename"], cls.meta["md5"]),  # type: ignore[attr-defined]
        ],
        # CIFAR's .data is NHWC uint8.
        images=lambda ds: torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous(),
        labels=lambda ds: np.asarray(ds.targets, dtype=np.int64),
        class_names=lambda ds: list(ds.classes),
    )


def _mnist(dataset_class: str) -> TorchvisionTaskSpec:
    return TorchvisionTaskSpec(
        dataset_class,
        open_split=_open_with_train_flag,
        directory=lambda cls, root: root / cls.__name__ / "raw",
        # torchvision reads the uncompressed idx files and only checks that they exist.
        expected_files=lambda cls: [
            (Path(url).name.removesuffix(".gz"), None)
            for url, _ in cls.resources  # type: ignore[attr-defined]
        ],
        # MNIST's .data is an NHW uint8 tensor.
        images=lambda ds: ds.data.to(torch.uint8).unsqueeze(1).contiguous(),
        labels=lambda ds: ds.targets.numpy().astype(np.int64),
        class_names=lambda ds: list(ds.classes),
    )


def _svhn() -> TorchvisionTaskSpec:
    return TorchvisionTaskSpec(
        "SVHN",
        open_split=_open_with_split_name,
        # SVHN keeps its .mat files directly in root.
        directory=lambda cls, root: root,
        expected_files=lambda cls: [
            (cls.split_list[s][1], cls.split_list[s][2])  # type: ignore[attr-defined]
            for s in ("train", "test")
        ],
        # SVHN's .data is already NCHW uint8, and torchvision has mapped label 10 to digit 0.
        images=lambda ds: torch.from_numpy(np.ascontiguousarray(ds.data, dtype=np.uint8)),
        labels=lambda ds: np.asarray(ds.labels, dtype=np.int64),
        class_names=lambda ds: [str(digit) for digit in range(10)],
    )


def _stl10() -> TorchvisionTaskSpec:
    return TorchvisionTaskSpec(
        "STL10",
        open_split=_open_with_split_name,  # split "train" is the 5,000 labelled images only
        directory=lambda cls, root: root / cls.base_folder,  # type: ignore[attr-defined]
        expected_files=lambda cls: [
            (name, md5)
            for name, md5 in cls.train_list + cls.test_list  # type: ignore[attr-defined]
        ],
        # STL-10's .data is already NCHW uint8.
        images=lambda ds: torch.from_numpy(np.ascontiguousarray(ds.data, dtype=np.uint8)),
        labels=lambda ds: np.asarray(ds.labels, dtype=np.int64),
        class_names=lambda ds: list(getattr(ds, "classes", _STL10_CLASSES)),
    )


TORCHVISION_TASKS: dict[str, TorchvisionTaskSpec] = {
    "cifar10": _cifar("CIFAR10"),
    "cifar100": _cifar("CIFAR100"),
    "mnist": _mnist("MNIST"),
    "fashion-mnist": _mnist("FashionMNIST"),
    "kmnist": _mnist("KMNIST"),
    "svhn": _svhn(),
    "stl10": _stl10(),
}


_ALIASES = {
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "fashionmnist": "fashion-mnist",
    "stl-10": "stl10",
}


def _canonical_name(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    return _ALIASES.get(key, key)


def load_torchvision_task(
    name: str,
    root: str | Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    allow_download: bool = False,
) -> Task:
    """Load the torchvision dataset ``name`` from ``root`` as a task (see the module docstring).

    Raises :class:`MissingDatasetError` (a skip under the pytest plugin) when the files are not in
    ``root`` (or fail torchvision's integrity check) and downloading is not allowed or fails.
    """
    key = _canonical_name(name)
    if key not in TORCHVISION_TASKS:
        raise UnknownTaskError(
            f"unknown torchvision task {name!r}; supported: {', '.join(sorted(TORCHVISION_TASKS))}"
        )
    if not 0.0 < val_fraction < 1.0:
        raise TaskError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    spec = TORCHVISION_TASKS[key]
    root = Path(root).expanduser()
    cls = spec.resolve()

    try:
        train_set = spec.open_split(cls, root, True, allow_download)
        test_set = spec.open_split(cls, root, False, allow_download)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
        raise _missing_dataset_error(key, spec, cls, root, allow_download, cause=str(err)) from err
    except (RuntimeError, AssertionError, EOFError, pickle.UnpicklingError) as err:
        # RuntimeError: torchvision's "Dataset not found or corrupted" family, and torch's view()
        # on a truncated MNIST idx file (those carry no checksum); AssertionError: the idx reader
        # on a malformed header; EOFError/UnpicklingError: a truncated pickle batch.
        cause = f"{type(err).__name__}: {err}"
        raise _missing_dataset_error(key, spec, cls, root, allow_download, cause=cause) from err

    official_train_images, official_train_labels = spec.images(train_set), spec.labels(train_set)
    test_images, test_labels = spec.images(test_set), spec.labels(test_set)
    class_names = spec.class_names(train_set)

    train_positions, val_positions = stratified_split(
        official_train_labels, (1.0 - val_fraction, val_fraction), seed
    )
    if len(train_positions) == 0 or len(val_positions) == 0:
        raise TaskError(
            f"{key}: {len(official_train_labels)} training examples are too few to hold out "
            f"val_fraction={val_fraction} per class; use a larger dataset or another val_fraction"
        )

    parent = f"torchvision:{key}"

    def part_of_official_train(split_name: str, positions: np.ndarray) -> Split:
        images = official_train_images[torch.as_tensor(positions)]
        return Split.from_arrays(split_name, images, official_train_labels[positions], parent)

    return Task(
        name=key,
        class_names=class_names,
        train=part_of_official_train("train", train_positions),
        val=part_of_official_train("val", val_positions),
        test=Split.from_arrays("test", test_images, test_labels, parent),
        modality="image",
        meta={
            "source": "torchvision",
            "dataset_class": spec.dataset_class,
            "root": str(root),
            "seed": seed,
            "val_fraction": val_fraction,
        },
    )


def _missing_dataset_error(
    key: str, spec: TorchvisionTaskSpec, cls: type, root: Path, allow_download: bool, cause: str
) -> MissingDatasetError:
    """Say what is missing or broken, where it was looked for, and the three ways to provide it."""
    from torchvision.datasets.utils import check_integrity

    directory = spec.directory(cls, root)
    expected = spec.expected_files(cls)
    absent = [name for name, _ in expected if not (directory / name).is_file()]
    corrupt = [
        name
        for name, md5 in expected
        if md5 is not None and name not in absent and not check_integrity(str(directory / name), md5)
    ]
    file_list = ", ".join(name for name, _ in expected)
    holder = "the files" if directory == root else f"'{directory.relative_to(root)}'"

    if not corrupt and not absent:
        problem = f"{key} files in {directory} could not be read ({cause}); they look corrupted."
    elif allow_download:
        problem = f"{key} could not be downloaded into {root} ({cause})."
    elif corrupt or len(absent) < len(expected):
        details = []
        if corrupt:
            details.append(
                f"failing torchvision's MD5 check (corrupted, truncated or another version): "
                f"{', '.join(corrupt)}"
            )
        if absent:
            details.append(f"missing: {', '.join(absent)}")
        problem = f"{key} dataset in {directory} is incomplete or corrupted; " + "; ".join(details) + "."
    else:
        problem = f"{key} dataset not found: looked in {directory} for {file_list}."

    remedies = (
        f" To provide it: put the torchvision-format files in {directory}; "
        f"or point --reuse-data-dir (or the {DATA_DIR_ENV} environment variable) at the folder that "
        f"contains {holder}; or pass --reuse-allow-download to let torchvision download it."
    )
    return MissingDatasetError(problem + remedies)
