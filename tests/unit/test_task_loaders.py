"""Task loaders on files written in the real on-disk formats, read through the real torchvision classes.

torchvision verifies the MD5s of CIFAR/SVHN/STL-10 files against its own checksum tables; the
fixtures below point those tables (class attributes of the dataset classes, not code under test) at
the MD5s of the tiny files they write.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision.datasets as tvd
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from reusespec.errors import MissingDatasetError, ResourceUnavailable, TaskError, UnknownTaskError
from reusespec.tasks.base import Split, Task
from reusespec.tasks.folder import load_image_folder
from reusespec.tasks.torchvision_data import TORCHVISION_TASKS, default_data_dir, load_torchvision_task

RNG_SEED = 1234


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _all_images(split: Split) -> torch.Tensor:
    images = split.load(np.arange(len(split)))
    assert isinstance(images, torch.Tensor)
    return images


@dataclass
class OfficialData:
    """What a writer put on disk: the official train/test splits as NCHW uint8 plus class names."""

    train_images: torch.Tensor
    train_labels: np.ndarray
    test_images: torch.Tensor
    test_labels: np.ndarray
    class_names: list[str]


def _balanced_labels(num_classes: int, per_class: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.repeat(np.arange(num_classes), per_class))


def _random_images(n: int, channels: int, side: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=(n, channels, side, side), dtype=np.uint8)


# --- writers of the real formats ---------------------------------------------------------------


def write_cifar10(root: Path, monkeypatch: pytest.MonkeyPatch, per_batch: int = 20) -> OfficialData:
    """cifar-10-batches-py/: five training batches, a test batch, batches.meta (pickled dicts)."""
    rng = np.random.default_rng(RNG_SEED)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    def write_batch(filename: str, label: str) -> tuple[np.ndarray, np.ndarray]:
        labels = _balanced_labels(10, per_batch // 10, rng)
        images = _random_images(len(labels), 3, 32, rng)
        entry = {
            "batch_label": label,
            "labels": labels.tolist(),
            "data": images.reshape(len(labels), 3 * 32 * 32),  # rows: 1024 R, 1024 G, 1024 B
            "filenames": [f"{filename}_{i}.png" for i in range(len(labels))],
        }
        (folder / filename).write_bytes(pickle.dumps(entry, protocol=2))
        return images, labels

    train = [write_batch(f"data_batch_{i}", f"training batch {i} of 5") for i in range(1, 6)]
    test_images, test_labels = write_batch("test_batch", "testing batch 1 of 1")
    meta = {"num_cases_per_batch": per_batch, "label_names": names, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))

    monkeypatch.setattr(
        tvd.CIFAR10,
        "train_list",
        [[f"data_batch_{i}", _md5(folder / f"data_batch_{i}")] for i in range(1, 6)],
    )
    monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", _md5(folder / "test_batch")]])
    monkeypatch.setattr(
        tvd.CIFAR10,
        "meta",
        {"filename": "batches.meta", "key": "label_names", "md5": _md5(folder / "batches.meta")},
    )
    return OfficialData(
        torch.from_numpy(np.concatenate([images for images, _ in train])),
        np.concatenate([labels for _, labels in train]),
        torch.from_numpy(test_images),
        test_labels,
        names,
    )


def write_cifar100(root: Path, monkeypatch: pytest.MonkeyPatch) -> OfficialData:
    """cifar-100-python/: train, test (fine_labels and coarse_labels) and meta."""
    rng = np.random.default_rng(RNG_SEED)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    fine_names = [f"fine_{i:02d}" for i in range(100)]
    coarse_names = [f"coarse_{i:02d}" for i in range(20)]

    def write(filename: str, per_class: int) -> tuple[np.ndarray, np.ndarray]:
        labels = _balanced_labels(100, per_class, rng)
        images = _random_images(len(labels), 3, 32, rng)
        entry = {
            "filenames": [f"{filename}_{i}.png" for i in range(len(labels))],
            "batch_label": f"{filename} batch 1 of 1",
            "fine_labels": labels.tolist(),
            "coarse_labels": (labels // 5).tolist(),
            "data": images.reshape(len(labels), -1),
        }
        (folder / filename).write_bytes(pickle.dumps(entry, protocol=2))
        return images, labels

    train_images, train_labels = write("train", per_class=5)
    test_images, test_labels = write("test", per_class=1)
    meta = {"fine_label_names": fine_names, "coarse_label_names": coarse_names}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))

    monkeypatch.setattr(tvd.CIFAR100, "train_list", [["train", _md5(folder / "train")]])
    monkeypatch.setattr(tvd.CIFAR100, "test_list", [["test", _md5(folder / "test")]])
    monkeypatch.setattr(
        tvd.CIFAR100, "meta", {"filename": "meta", "key": "fine_label_names", "md5": _md5(folder / "meta")}
    )
    return OfficialData(
        torch.from_numpy(train_images), train_labels, torch.from_numpy(test_images), test_labels, fine_names
    )


def _write_idx(path: Path, array: np.ndarray) -> None:
    """IDX format: magic (0, 0, type 0x08 = ubyte, ndim), big-endian dimensions, raw bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def _mnist_writer(dataset_class: type) -> Callable[[Path, pytest.MonkeyPatch], OfficialData]:
    def write(root: Path, monkeypatch: pytest.MonkeyPatch) -> OfficialData:
        """<Class>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte, uncompressed."""
        rng = np.random.default_rng(RNG_SEED)
        raw = root / dataset_class.__name__ / "raw"
        raw.mkdir(parents=True)
        splits = {}
        for prefix, per_class in (("train", 5), ("t10k", 2)):
            labels = _balanced_labels(10, per_class, rng)
            images = _random_images(len(labels), 1, 28, rng)
            _write_idx(raw / f"{prefix}-images-idx3-ubyte", images[:, 0])
            _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels.astype(np.uint8))
            splits[prefix] = (torch.from_numpy(images), labels)
        return OfficialData(*splits["train"], *splits["t10k"], list(dataset_class.classes))  # type: ignore[attr-defined]

    return write


def write_svhn(root: Path, monkeypatch: pytest.MonkeyPatch) -> OfficialData:
    """{train,test}_32x32.mat in root: X is (32, 32, 3, N), y is (N, 1) with digit 0 stored as 10."""
    rng = np.random.default_rng(RNG_SEED)
    root.mkdir(parents=True, exist_ok=True)
    split_list = dict(tvd.SVHN.split_list)
    splits = {}
    for split, per_class in (("train", 5), ("test", 2)):
        labels = _balanced_labels(10, per_class, rng)
        images = _random_images(len(labels), 3, 32, rng)
        stored_y = np.where(labels == 0, 10, labels).reshape(-1, 1).astype(np.uint8)
        path = root / f"{split}_32x32.mat"
        scipy.io.savemat(path, {"X": images.transpose(2, 3, 1, 0), "y": stored_y})
        split_list[split] = [split_list[split][0], path.name, _md5(path)]
        splits[split] = (torch.from_numpy(images), labels)
    monkeypatch.setattr(tvd.SVHN, "split_list", split_list)
    return OfficialData(*splits["train"], *splits["test"], [str(d) for d in range(10)])


def write_stl10(root: Path, monkeypatch: pytest.MonkeyPatch) -> OfficialData:
    """stl10_binary/: {train,test}_X.bin column-major uint8 images, *_y.bin labels 1..10, unlabeled_X.bin."""
    rng = np.random.default_rng(RNG_SEED)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    splits = {}
    for split, per_class in (("train", 5), ("test", 2)):
        labels = _balanced_labels(10, per_class, rng)
        images = _random_images(len(labels), 3, 96, rng)
        (folder / f"{split}_X.bin").write_bytes(images.transpose(0, 1, 3, 2).tobytes())
        (folder / f"{split}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())
        splits[split] = (torch.from_numpy(images), labels)
    (folder / "unlabeled_X.bin").write_bytes(_random_images(2, 3, 96, rng).tobytes())
    monkeypatch.setattr(
        tvd.STL10,
        "train_list",
        [[n, _md5(folder / n)] for n in ("train_X.bin", "train_y.bin", "unlabeled_X.bin")],
    )
    monkeypatch.setattr(tvd.STL10, "test_list", [[n, _md5(folder / n)] for n in ("test_X.bin", "test_y.bin")])
    return OfficialData(*splits["train"], *splits["test"], names)


WRITERS: dict[str, Callable[[Path, pytest.MonkeyPatch], OfficialData]] = {
    "cifar10": write_cifar10,
    "cifar100": write_cifar100,
    "mnist": _mnist_writer(tvd.MNIST),
    "fashion-mnist": _mnist_writer(tvd.FashionMNIST),
    "kmnist": _mnist_writer(tvd.KMNIST),
    "svhn": write_svhn,
    "stl10": write_stl10,
}


def test_every_supported_dataset_has_a_format_test() -> None:
    assert set(WRITERS) == set(TORCHVISION_TASKS)


# --- torchvision datasets ----------------------------------------------------------------------


def _image_keys(images: torch.Tensor) -> list[bytes]:
    return [image.numpy().tobytes() for image in images]


def assert_splits_partition_official_data(task: Task, official: OfficialData) -> None:
    # test is the official test split, in order.
    assert torch.equal(_all_images(task.test), official.test_images)
    np.testing.assert_array_equal(task.test.labels, official.test_labels)

    # train and val are disjoint and together exactly the official training split, labels attached.
    label_of = dict(zip(_image_keys(official.train_images), official.train_labels.tolist(), strict=True))
    assert len(label_of) == len(official.train_labels)  # random images: every key unique
    seen: list[bytes] = []
    for split in (task.train, task.val):
        keys = _image_keys(_all_images(split))
        assert [label_of[k] for k in keys] == split.labels.tolist()
        seen.extend(keys)
    assert sorted(seen) == sorted(label_of)


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_dataset_files_round_trip_into_the_splits(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    official = WRITERS[name](tmp_path, monkeypatch)
    task = load_torchvision_task(name, tmp_path, seed=3)

    assert list(task.class_names) == official.class_names
    for split in task.splits():
        images = _all_images(split)
        assert images.dtype == torch.uint8
        assert images.shape[1:] == official.train_images.shape[1:]
    assert_splits_partition_official_data(task, official)


@pytest.fixture(scope="module")
def cifar10_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, OfficialData]]:
    """One CIFAR-10 directory (and checksum table) shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("cifar10")
    with pytest.MonkeyPatch.context() as patch:
        yield root, write_cifar10(root, patch)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), val_fraction=st.floats(0.1, 0.5))
def test_val_is_a_stratified_fraction_of_official_train(
    cifar10_root: tuple[Path, OfficialData], seed: int, val_fraction: float
) -> None:
    root, official = cifar10_root
    task = load_torchvision_task("cifar10", root, seed=seed, val_fraction=val_fraction)

    assert_splits_partition_official_data(task, official)
    # Every class has the same number of training images, so a stratified val has equal counts too.
    per_class = np.bincount(task.val.labels, minlength=10)
    assert len(set(per_class.tolist())) == 1
    assert abs(len(task.val) / len(official.train_labels) - val_fraction) <= 0.5 / 10


def test_splits_are_deterministic_per_seed(cifar10_root: tuple[Path, OfficialData]) -> None:
    root, _ = cifar10_root
    first = load_torchvision_task("cifar10", root, seed=7)
    again = load_torchvision_task("cifar10", root, seed=7)
    other = load_torchvision_task("cifar10", root, seed=8)

    assert first.fingerprint == again.fingerprint
    assert torch.equal(_all_images(first.val), _all_images(again.val))
    assert first.val.fingerprint != other.val.fingerprint
    assert not torch.equal(_all_images(first.val), _all_images(other.val))
    assert first.test.fingerprint == other.test.fingerprint  # the official test split never moves


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("mnist", "MNIST/raw"),
        ("fashion-mnist", "FashionMNIST/raw"),
        ("kmnist", "KMNIST/raw"),
        ("svhn", "."),
        ("stl10", "stl10_binary"),
    ],
)
def test_missing_dataset_names_the_directory_and_the_remedies(name: str, folder: str, tmp_path: Path) -> None:
    with pytest.raises(MissingDatasetError) as caught:
        load_torchvision_task(name, tmp_path)

    message = str(caught.value)
    assert isinstance(caught.value, ResourceUnavailable)  # the plugin turns it into a skip
    assert "not found" in message
    assert str(tmp_path / folder if folder != "." else tmp_path) in message
    for remedy in ("--reuse-data-dir", "REUSESPEC_DATA_DIR", "--reuse-allow-download"):
        assert remedy in message
    assert not any(tmp_path.iterdir())  # nothing downloaded or created


def test_a_corrupted_batch_is_reported_as_corrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar10(tmp_path, monkeypatch)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    payload = bytearray(batch.read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    batch.write_bytes(bytes(payload))

    with pytest.raises(MissingDatasetError, match="corrupted") as caught:
        load_torchvision_task("cifar10", tmp_path)
    message = str(caught.value)
    assert "data_batch_3" in message
    assert "data_batch_2" not in message.split("To provide it")[0]  # only the broken file is blamed
    assert "--reuse-allow-download" in message


def test_a_partial_download_names_the_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar100(tmp_path, monkeypatch)
    (tmp_path / "cifar-100-python" / "test").unlink()

    with pytest.raises(MissingDatasetError, match="missing: test") as caught:
        load_torchvision_task("cifar100", tmp_path)
    assert str(tmp_path / "cifar-100-python") in str(caught.value)


def test_a_malformed_idx_file_is_reported_as_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _mnist_writer(tvd.MNIST)(tmp_path, monkeypatch)
    images = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])  # truncated

    with pytest.raises(MissingDatasetError, match="could not be read"):
        load_torchvision_task("mnist", tmp_path)


def test_a_failed_download_is_a_missing_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Port 9 on localhost refuses the connection at once: a download that cannot happen.
    monkeypatch.setattr(tvd.CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    with pytest.raises(MissingDatasetError, match="could not be downloaded"):
        load_torchvision_task("cifar10", tmp_path, allow_download=True)


def test_unknown_name_and_bad_val_fraction_are_rejected(cifar10_root: tuple[Path, OfficialData]) -> None:
    root, _ = cifar10_root
    with pytest.raises(UnknownTaskError, match="cifar100"):
        load_torchvision_task("imagenet", root)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(TaskError, match="val_fraction"):
            load_torchvision_task("cifar10", root, val_fraction=bad)
    assert (
        load_torchvision_task("CIFAR_10", root).fingerprint
        == load_torchvision_task("cifar10", root).fingerprint
    )


def test_default_data_dir_prefers_the_environment(tmp_path: Path) -> None:
    assert default_data_dir({"REUSESPEC_DATA_DIR": str(tmp_path)}) == tmp_path
    assert default_data_dir({"REUSESPEC_DATA_DIR": "~/data"}) == Path.home() / "data"
    assert default_data_dir({}) == Path.home() / ".cache" / "reusespec" / "data"


# --- image folders -----------------------------------------------------------------------------

# One distinct solid colour per image, so every loaded image can be traced back to its class.
CLASS_BASE_COLOURS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "emu": (40, 40, 200), "yak": (120, 120, 0)}


def _colour(cls: str, index: int) -> tuple[int, int, int]:
    r, g, b = CLASS_BASE_COLOURS[cls]
    return (r, g, b + 9 * index) if cls != "emu" else (r + 9 * index, g, b)


def write_folder(root: Path, per_class: int = 5, classes: tuple[str, ...] = ("cat", "dog", "emu")) -> None:
    """Class folders of PNG and JPEG files in varied sizes and aspect ratios."""
    sizes = [(40, 30), (30, 50), (64, 64), (90, 20), (25, 25), (33, 70)]
    for cls in classes:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = Image.new("RGB", sizes[(i + len(cls)) % len(sizes)], _colour(cls, i))
            if cls == "dog":
                image.save(root / cls / f"{i}.jpg", quality=95)
            else:
                image.save(root / cls / f"{cls}_{i}.png")


def _class_of_pixel_colour(image: torch.Tensor) -> str:
    mean = image.float().mean(dim=(1, 2)).numpy()
    candidates = [(cls, i) for cls in CLASS_BASE_COLOURS for i in range(10)]
    return min(candidates, key=lambda ci: float(np.abs(mean - np.array(_colour(*ci))).sum()))[0]


def test_image_folder_is_split_stratified_and_resized(tmp_path: Path) -> None:
    write_folder(tmp_path, per_class=5)
    (tmp_path / ".ipynb_checkpoints").mkdir()  # hidden: not a class
    (tmp_path / "cat" / "notes.txt").write_text("not an image")  # ignored

    task = load_image_folder(tmp_path, seed=0, size=16)

    assert list(task.class_names) == ["cat", "dog", "emu"]
    assert [len(s) for s in task.splits()] == [9, 3, 3]  # 3/1/1 of each class's five images
    for split in task.splits():
        images = _all_images(split)
        assert images.dtype == torch.uint8
        assert images.shape[1:] == (3, 16, 16)
        assert [_class_of_pixel_colour(img) for img in images] == [task.class_names[c] for c in split.labels]
        assert np.bincount(split.labels).tolist() == [len(split) // 3] * 3


def test_image_folder_splits_are_deterministic_per_seed(tmp_path: Path) -> None:
    write_folder(tmp_path, per_class=5)
    first, again = load_image_folder(tmp_path, seed=1, size=8), load_image_folder(tmp_path, seed=1, size=8)
    other = load_image_folder(tmp_path, seed=2, size=8)

    assert first.fingerprint == again.fingerprint
    assert first.fingerprint != other.fingerprint

    def every_image(task: Task) -> list[bytes]:
        return sorted(key for split in task.splits() for key in _image_keys(_all_images(split)))

    assert every_image(first) == every_image(other)  # the same images, dealt differently


def test_resize_keeps_the_aspect_ratio_and_crops_the_centre(tmp_path: Path) -> None:
    # A wide image in thirds: red | green | blue. Shorter side to 16 then a centre crop keeps green only.
    for cls in ("wide", "plain"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            image = Image.new("RGB", (90, 30), (0, 255, 0))
            if cls == "wide":
                image.paste((255, 0, 0), (0, 0, 30, 30))
                image.paste((0, 0, 255), (60, 0, 90, 30))
            image.save(tmp_path / cls / f"{i}.png")

    task = load_image_folder(tmp_path, size=16)
    wide = _all_images(task.train)[task.train.labels == task.class_names.index("wide")]
    centre = wide[:, :, :, 3:13].float()  # away from the antialiasing at the crop edges
    assert torch.all(centre[:, 1] > 250) and torch.all(centre[:, [0, 2]] < 5)


def test_grayscale_folders_stay_single_channel(tmp_path: Path) -> None:
    for cls, level in (("dark", 30), ("light", 220)):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.new("L", (20 + i, 24), level).save(tmp_path / cls / f"{i}.png")
    task = load_image_folder(tmp_path, size=12)
    assert _all_images(task.train).shape[1:] == (1, 12, 12)

    Image.new("RGB", (20, 20), (0, 0, 255)).save(tmp_path / "dark" / "colour.png")
    assert _all_images(load_image_folder(tmp_path, size=12).train).shape[1:] == (3, 12, 12)


def test_train_and_test_folders_are_used_as_the_splits(tmp_path: Path) -> None:
    write_folder(tmp_path / "train", per_class=5)
    write_folder(tmp_path / "test", per_class=2)

    task = load_image_folder(tmp_path, size=8, fractions=(0.6, 0.2, 0.2))
    assert list(task.class_names) == ["cat", "dog", "emu"]
    assert len(task.test) == 6
    assert len(task.train) + len(task.val) == 15
    assert np.bincount(task.val.labels).tolist() == [1, 1, 1]  # 0.2 / (0.6 + 0.2) of five, per class
    assert task.meta["layout"] == "train/test folders"

    write_folder(tmp_path / "val", per_class=3)
    with_val = load_image_folder(tmp_path, size=8)
    assert [len(s) for s in with_val.splits()] == [15, 9, 6]
    for split in with_val.splits():
        labels = [with_val.class_names[c] for c in split.labels]
        assert [_class_of_pixel_colour(img) for img in _all_images(split)] == labels


def test_test_folder_labels_follow_the_train_folder_classes(tmp_path: Path) -> None:
    write_folder(tmp_path / "train", per_class=5)
    write_folder(tmp_path / "test", per_class=2, classes=("dog", "emu"))  # no cat test images: allowed
    task = load_image_folder(tmp_path, size=8)
    assert sorted(set(task.test.labels.tolist())) == [1, 2]

    write_folder(tmp_path / "test", per_class=1, classes=("cat", "yak"))
    with pytest.raises(TaskError, match="yak"):
        load_image_folder(tmp_path, size=8)


def test_missing_image_folder_is_a_missing_dataset(tmp_path: Path) -> None:
    absent = tmp_path / "no-such-folder"
    with pytest.raises(MissingDatasetError, match=re.escape(str(absent))):
        load_image_folder(absent)


def _empty_class_folders(root: Path) -> None:
    (root / "a").mkdir()
    (root / "b").mkdir()


def _one_empty_class_among_others(root: Path) -> None:
    write_folder(root)
    (root / "yak").mkdir()


@pytest.mark.parametrize(
    ("arrange", "expected"),
    [
        (lambda root: None, "no class folders"),
        (_empty_class_folders, "no images"),
        (lambda root: write_folder(root, classes=("cat",)), "single class"),
        (_one_empty_class_among_others, "without images in .*yak"),
        (lambda root: write_folder(root, per_class=1), "too few images"),
    ],
    ids=["empty-root", "empty-classes", "one-class", "one-empty-class", "too-few"],
)
def test_folder_layout_errors_say_what_is_wrong(
    arrange: Callable[[Path], None], expected: str, tmp_path: Path
) -> None:
    arrange(tmp_path)
    with pytest.raises(TaskError, match=expected) as caught:
        load_image_folder(tmp_path)
    if expected in ("no class folders", "no images"):
        assert "root/<class>/<image>" in str(caught.value)


@pytest.mark.parametrize("content", [b"this is not a PNG", b""], ids=["garbage", "empty-file"])
def test_an_unreadable_image_is_named(content: bytes, tmp_path: Path) -> None:
    write_folder(tmp_path)
    broken = tmp_path / "dog" / "broken.png"
    broken.write_bytes(content)
    with pytest.raises(TaskError, match=r"broken\.png"):
        load_image_folder(tmp_path)


def test_a_truncated_jpeg_is_named(tmp_path: Path) -> None:
    write_folder(tmp_path)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        tmp_path / "cat" / "cut.jpg", quality=90
    )
    cut = tmp_path / "cat" / "cut.jpg"
    cut.write_bytes(cut.read_bytes()[:600])
    with pytest.raises(TaskError, match=r"cut\.jpg"):
        load_image_folder(tmp_path)


def test_bad_arguments_are_rejected(tmp_path: Path) -> None:
    write_folder(tmp_path)
    with pytest.raises(TaskError, match="fractions"):
        load_image_folder(tmp_path, fractions=(0.5, 0.5))
    with pytest.raises(TaskError, match="fractions"):
        load_image_folder(tmp_path, fractions=(0.8, 0.3, 0.1))
    with pytest.raises(TaskError, match="size"):
        load_image_folder(tmp_path, size=0)
    with pytest.raises(TaskError, match="not a folder"):
        load_image_folder(tmp_path / "cat" / "cat_0.png")
    with pytest.raises(TaskError, match="no image folder"):
        load_image_folder("")
