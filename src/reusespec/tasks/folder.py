"""A user's own images on disk, in torchvision's ImageFolder layout, as a task.

Two layouts are understood::

    root/<class>/<image>                      split stratified by ``fractions`` with ``seed``
    root/train/<class>/<image>                the folders are the splits; without ``val/``,
    root/test/<class>/<image>                 val is carved (stratified, ``seed``) from train
    root/val/<class>/<image>     (optional)

Class names are the class folder names, sorted; hidden folders and files (``.ipynb_checkpoints``)
and files whose extension is not an image's are ignored. Every image is decoded with PIL, turned
upright by its EXIF orientation, converted to RGB (or to L when every image is grayscale), resized
so its shorter side is ``size`` and centre-cropped to ``size x size``, so the task is held in memory
as uint8 tensors ``(N, C, size, size)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from reusespec.errors import TaskError
from reusespec.tasks.base import Split, Task
from reusespec.tasks.splits import check_splits, stratified_split

SPLIT_FOLDERS = ("train", "val", "test")
# Decoded images are held in memory: refuse a task that would need more than this before decoding.
MAX_TASK_BYTES = 16 * 2**30

# Modes whose pixels carry no colour: such images become single-channel when all images are.
_GRAYSCALE_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})

_LAYOUT_HINT = (
    "expected root/<class>/<image> (one folder per class) or root/train/<class>/<image> and "
    "root/test/<class>/<image> (optionally root/val/<class>/<image>)"
)


def _image_extensions() -> tuple[str, ...]:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return tuple(IMG_EXTENSIONS)


def _class_folders(directory: Path) -> list[str]:
    return sorted(
        entry.name for entry in os.scandir(directory) if entry.is_dir() and not entry.name.startswith(".")
    )


def _images_in(class_dir: Path, extensions: tuple[str, ...]) -> list[Path]:
    """Image files below ``class_dir`` (nested folders included), in a stable order."""
    found: list[Path] = []
    seen: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
        info = os.stat(dirpath)
        first = seen.setdefault((info.st_dev, info.st_ino), dirpath)
        if first != dirpath:  # a symlink back to a folder already walked: a loop, or the same images twice
            raise TaskError(
                f"{dirpath} is the folder {first} again (a symbolic link leads back to it); reading on would "
                "loop forever or count its images twice. Remove the link."
            )
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(
            Path(dirpath) / name
            for name in sorted(filenames)
            if not name.startswith(".") and name.lower().endswith(extensions)
        )
    return found


def _scan(
    directory: Path, class_names: Sequence[str] | None = None
) -> tuple[list[str], list[Path], np.ndarray]:
    """Class names, image paths and labels of one ImageFolder directory.

    With ``class_names`` given (from the train folder), the directory's classes must be among them and
    labels use their indices, so every split agrees on what label ``i`` means.
    """
    extensions = _image_extensions()
    classes = _class_folders(directory)
    if not classes:
        raise TaskError(f"no class folders in {directory}; {_LAYOUT_HINT}")
    if class_names is not None:
        unknown = sorted(set(classes) - set(class_names))
        if unknown:
            raise TaskError(
                f"{directory} has class folders that the train folder lacks: {', '.join(unknown)}; "
                "every class must have training images"
            )
    names = list(class_names) if class_names is not None else classes
    paths: list[Path] = []
    labels: list[int] = []
    empty = []
    for name in classes:
        images = _images_in(directory / name, extensions)
        if not images:
            empty.append(name)
        paths.extend(images)
        labels.extend([names.index(name)] * len(images))
    if not paths:
        raise TaskError(
            f"no images in the class folders of {directory} "
            f"(looked for {', '.join(extensions)}); {_LAYOUT_HINT}"
        )
    if empty and class_names is None:
        raise TaskError(
            f"class folder(s) without images in {directory}: {', '.join(empty)}; "
            "add images or remove the folders"
        )
    return names, paths, np.asarray(labels, dtype=np.int64)


def _open(path: Path) -> Image.Image:
    """Open an image (header only), naming the file if PIL cannot."""
    try:
        return Image.open(path)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise TaskError(f"cannot read image {path}: {err}; fix or remove the file") from err


def _load_pixels(path: Path, mode: str, size: int) -> torch.Tensor:
    import torchvision.transforms.functional as F

    try:
        with _open(path) as image:
            # Phone photos store their rotation in EXIF; apply it so images are upright.
            upright = ImageOps.exif_transpose(image)
            converted = (upright if upright is not None else image).convert(mode)
    except TaskError:
        raise
    except (OSError, ValueError, SyntaxError) as err:  # truncated or corrupt data surfaces on decode
        raise TaskError(f"cannot decode image {path}: {err}; fix or remove the file") from err
    resized = F.resize(converted, [size], interpolation=F.InterpolationMode.BILINEAR, antialias=True)
    return F.pil_to_tensor(F.center_crop(resized, [size, size]))


def _pixel_mode(paths: Sequence[Path]) -> str:
    """ "L" when every image is grayscale, else "RGB" (reads headers only)."""
    for path in paths:
        with _open(path) as image:
            if image.mode not in _GRAYSCALE_MODES:
                return "RGB"
    return "L"


def _validate_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise TaskError(
            "fractions must be three positive numbers (train, val, test) summing to 1, "
            f"got {tuple(fractions)}"
        )
    return (float(fractions[0]), float(fractions[1]), float(fractions[2]))


def load_image_folder(
    path: str | Path,
    *,
    seed: int = 0,
    size: int = 64,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
) -> Task:
    """Load a folder of class-labelled images as a task (layouts and preprocessing: module docstring).

    ``fractions`` (train, val, test) split a flat folder; with ``train/`` and ``test/`` folders and no
    ``val/``, val takes ``val / (train + val)`` of each training class.
    """
    if not str(path).strip():
        raise TaskError(f"no image folder given; {_LAYOUT_HINT}")  # Path("") would mean the cwd
    try:
        root = Path(path).expanduser()
    except RuntimeError:  # "Could not determine home directory" for ~nosuchuser
        user = str(path)[1:].split("/")[0]
        raise TaskError(
            f"image folder {str(path)!r}: there is no user {user!r} whose home directory '~{user}' could "
            "stand for; write the path out in full"
        ) from None
    if not root.exists():
        # A path the user wrote is a mistake in the spec when wrong, not a dataset this machine may
        # lack: fail (not skip), so a typo cannot pass a CI gate.
        raise TaskError(
            f"image folder not found: {root.absolute()} (resolved from the working directory {Path.cwd()}); "
            f"{_LAYOUT_HINT}"
        )
    if not root.is_dir():
        raise TaskError(f"{root} is a file, not a folder; {_LAYOUT_HINT}")
    if size < 1:
        raise TaskError(f"size must be a positive number of pixels, got {size}")
    train_frac, val_frac, test_frac = _validate_fractions(fractions)

    split_layout = (root / "train").is_dir() and (root / "test").is_dir()
    if split_layout:
        class_names, train_paths, train_labels = _scan(root / "train")
        _, test_paths, test_labels = _scan(root / "test", class_names)
        if (root / "val").is_dir():
            _, val_paths, val_labels = _scan(root / "val", class_names)
        else:
            keep, held_out = stratified_split(
                train_labels, (train_frac / (train_frac + val_frac), val_frac / (train_frac + val_frac)), seed
            )
            val_paths, val_labels = [train_paths[i] for i in held_out], train_labels[held_out]
            train_paths, train_labels = [train_paths[i] for i in keep], train_labels[keep]
        parts = {
            "train": (train_paths, train_labels),
            "val": (val_paths, val_labels),
            "test": (test_paths, test_labels),
        }
    else:
        class_names, all_paths, all_labels = _scan(root)
        positions = stratified_split(all_labels, (train_frac, val_frac, test_frac), seed)
        parts = {
            name: ([all_paths[i] for i in pos], all_labels[pos])
            for name, pos in zip(SPLIT_FOLDERS, positions, strict=True)
        }

    if len(class_names) < 2:
        raise TaskError(
            f"{root} has a single class ({class_names[0]!r}); classification needs at least two class folders"
        )
    empty = [name for name, (paths, _) in parts.items() if not paths]
    if empty:
        raise TaskError(
            f"too few images in {root} to fill the {', '.join(empty)} split(s) "
            f"({sum(len(p) for p, _ in parts.values())} images over {len(class_names)} classes); "
            "add images or change fractions"
        )

    all_paths = [p for paths, _ in parts.values() for p in paths]
    mode = _pixel_mode(all_paths)
    needed = len(all_paths) * (1 if mode == "L" else 3) * size * size
    if needed > MAX_TASK_BYTES:
        raise TaskError(
            f"{root}: {len(all_paths)} images at size={size} would take {needed / 2**30:,.1f} GiB in memory, "
            f"more than {MAX_TASK_BYTES / 2**30:.0f} GiB; choose a smaller ?size="
        )
    # Fingerprints follow the pixels and labels, not where the folder happens to live.
    parent = "image-folder"
    splits = {
        name: Split.from_arrays(
            name, torch.stack([_load_pixels(p, mode, size) for p in paths]), labels, parent=parent
        )
        for name, (paths, labels) in parts.items()
    }
    task = Task(
        name=f"folder:{root.name}",
        class_names=class_names,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        modality="image",
        meta={
            "source": "image-folder",
            "path": str(root),
            "layout": "train/test folders" if split_layout else "class folders",
            "size": size,
            "mode": mode,
            "seed": seed,
        },
    )
    check_splits(task, str(root))
    return task
