"""Damaged caches: atomic writes, zoo checkpoints verified and rebuilt, damaged metadata discarded,
one fallback for an unusable cache directory, repairs counted, and keys that follow the code."""

from __future__ import annotations

import errno
import json
import math
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from reusespec import ReuseConfig, ReuseSession, atomic
from reusespec.backbones.zoo import checkpoint_path, ensure_checkpoint, load_zoo_backbone
from reusespec.cache import CacheError, CacheFallbackWarning, FeatureCache, repair_counts, reset_repair_counts
from reusespec.errors import ReuseSpecError
from reusespec.features import feature_key
from reusespec.tasks.base import Split

CHEAP = "digits-cnn-random"  # zero pretraining epochs: rebuilt in milliseconds


@pytest.fixture(autouse=True)
def fresh_counts() -> None:
    reset_repair_counts()


@pytest.fixture
def private_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system temporary directory (where fallbacks go), moved into this test's tmp_path."""
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    return system_tmp


def dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    return int(child.stdout)


# --- the atomic-write helper ---------------------------------------------------------------------


def test_json_is_strict_and_non_finite_numbers_become_null(tmp_path: Path) -> None:
    target = tmp_path / "doc.json"
    atomic.write_json(target, {"a": math.nan, "b": [1.0, math.inf, (-math.inf, 2)], "c": "x"})
    text = target.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {
        "a": None,
        "b": [1.0, None, [None, 2]],
        "c": "x",
        "non_finite": {"a": "nan", "b[1]": "inf", "b[2][0]": "-inf"},  # what each null was
    }


def test_a_failed_write_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "doc.json"
    atomic.write_json(target, {"version": 1})

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    with pytest.raises(atomic.AtomicWriteError) as info:
        atomic.write_json(target, {"version": 2})
    assert isinstance(info.value, ReuseSpecError) and info.value.errno == errno.ENOSPC
    assert str(tmp_path) in str(info.value) and "full" in str(info.value)
    assert json.loads(target.read_text()) == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.json"]


def test_a_checksum_catches_a_flip_a_cut_and_a_missing_sidecar(tmp_path: Path) -> None:
    target = tmp_path / "blob"
    data = bytes(range(256)) * 8
    atomic.write_bytes(target, data, checksum=True)
    assert atomic.read_verified(target) == data
    flipped = bytearray(data)
    flipped[100] ^= 0x01
    target.write_bytes(bytes(flipped))
    with pytest.raises(atomic.DamagedFileError, match="checksum"):
        atomic.read_verified(target)
    target.write_bytes(data[:-1])
    with pytest.raises(atomic.DamagedFileError):
        atomic.read_verified(target)
    target.write_bytes(data)
    (tmp_path / "blob.checksum").unlink()
    with pytest.raises(atomic.DamagedFileError, match="missing"):
        atomic.read_verified(target)


def test_temp_files_of_dead_writers_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead = dead_pid()
    (tmp_path / f"model.safetensors.tmp{dead}").write_bytes(b"half")  # the zoo's old naming
    (tmp_path / f".model.safetensors.tmp{dead}-0a1b").write_bytes(b"half")
    live = tmp_path / f".model.safetensors.tmp{os.getpid()}-0a1b"
    live.write_bytes(b"being written")
    (tmp_path / "model.safetensors").write_bytes(b"kept")
    assert atomic.remove_stale_temps(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "model.safetensors"])


# --- zoo checkpoints -----------------------------------------------------------------------------


def zoo_weights(cache: Path) -> dict[str, torch.Tensor]:
    return load_zoo_backbone(CHEAP, cache).model.state_dict()


@pytest.mark.parametrize("damage", ["flip-64-bytes", "truncate", "empty"])
def test_a_damaged_zoo_checkpoint_is_rebuilt_not_trusted(tmp_path: Path, damage: str) -> None:
    original = zoo_weights(tmp_path)
    path = checkpoint_path(CHEAP, tmp_path)
    raw = bytearray(path.read_bytes())
    if damage == "flip-64-bytes":
        middle = len(raw) // 2
        raw[middle : middle + 64] = bytes(b ^ 0xFF for b in raw[middle : middle + 64])
    elif damage == "truncate":
        raw = raw[: len(raw) // 3]
    else:
        raw = bytearray()
    path.write_bytes(bytes(raw))
    messages: list[str] = []
    again = load_zoo_backbone(CHEAP, tmp_path, messages.append).model.state_dict()
    assert all(torch.equal(original[k], again[k]) for k in original)
    assert repair_counts() == {"zoo checkpoints": 1}
    assert any("damaged" in m for m in messages)
    assert atomic.read_verified(path)  # the rebuilt file is whole and verified


def test_a_killed_builders_temp_file_is_cleaned_on_the_next_build(tmp_path: Path) -> None:
    zoo = checkpoint_path(CHEAP, tmp_path).parent
    zoo.mkdir(parents=True)
    leftover = zoo / f"{checkpoint_path(CHEAP, tmp_path).stem}.tmp{dead_pid()}"
    leftover.write_bytes(b"half a checkpoint")
    ensure_checkpoint(CHEAP, tmp_path)
    assert not leftover.exists() and repair_counts().get("temp files") == 1


def test_a_full_disk_while_saving_the_zoo_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    with pytest.raises(ReuseSpecError) as info:
        ensure_checkpoint(CHEAP, tmp_path)
    assert "full" in str(info.value) and str(tmp_path / "zoo") in str(info.value)
    assert [p.name for p in (tmp_path / "zoo").iterdir() if ".tmp" in p.name] == []


@pytest.mark.parametrize("kind", ["regular-file", "read-only"])
def test_an_unusable_cache_directory_falls_back_for_zoo_features_and_heads_with_one_warning(
    tmp_path: Path, private_tmpdir: Path, kind: str
) -> None:
    if kind == "regular-file":
        cache = tmp_path / "cache-is-a-file"
        cache.write_text("not a directory")
    else:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            pytest.skip("root ignores permissions")
        cache = tmp_path / "read-only"
        cache.mkdir()
        cache.chmod(0o555)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reuse = ReuseSession(ReuseConfig(cache_dir=cache, device="cpu")).reuse()
            result = reuse.probe(f"zoo:{CHEAP}", "sklearn-digits?shots=5")
    finally:
        if kind == "read-only":
            cache.chmod(0o755)
    fallbacks = [w for w in caught if issubclass(w.category, CacheFallbackWarning)]
    assert len(fallbacks) == 1, [str(w.message) for w in fallbacks]
    message = str(fallbacks[0].message)
    assert str(cache) in message and "zoo checkpoints" in message and str(private_tmpdir) in message
    assert 0.0 <= float(result.accuracy) <= 1.0


# --- damaged feature and head metadata -----------------------------------------------------------

KEY = "k" * 32


@pytest.mark.parametrize("meta", ["[]", '"text"', "3", '{"format": "1", "bytes": []}', "{"])
def test_damaged_metadata_is_discarded_rebuilt_and_counted(tmp_path: Path, meta: str) -> None:
    cache = FeatureCache(tmp_path)
    cache.get_or_compute(KEY, lambda: np.ones(3, dtype=np.float32))
    (cache.entry_dir(KEY) / "meta.json").write_text(meta)
    again = FeatureCache(tmp_path)
    array, hit = again.get_or_compute(KEY, lambda: np.full(3, 2, dtype=np.float32))
    assert not hit and array.tolist() == [2, 2, 2]
    assert repair_counts() == {"features": 1}
    assert again.read(KEY) is not None


def test_a_directory_in_place_of_a_lock_file_is_removed_and_counted(tmp_path: Path) -> None:
    (tmp_path / "locks" / f"{KEY}.lock").mkdir(parents=True)
    array, hit = FeatureCache(tmp_path).get_or_compute(KEY, lambda: np.ones(2))
    assert not hit and array.tolist() == [1, 1] and repair_counts() == {"locks": 1}


def test_a_lock_path_that_cannot_be_cleared_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "locks" / f"{KEY}.lock" / "something").mkdir(parents=True)
    with pytest.raises(CacheError, match="lock file"):
        FeatureCache(tmp_path).get_or_compute(KEY, lambda: np.ones(2))


# --- the key follows what computes the features --------------------------------------------------


FACTORIES = """
import torch
from torch import nn
from reusespec import InputSpec

SPEC = InputSpec(channels=1, size=(8, 8), mean=(0.5,), std=(0.5,))


class MeanPool(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)  # the same weights in every factory
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


class MaxPool(MeanPool):
    def forward(self, x):
        return self.conv(x).amax(dim=(2, 3))


class Scaled(MeanPool):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3)) * self.scale


def mean():
    return MeanPool(), SPEC


def mean_again():  # the same code under another string
    return MeanPool(), SPEC


def max_pool():
    return MaxPool(), SPEC


def scaled_by_two():
    return Scaled(2.0), SPEC


def scaled_by_three():
    return Scaled(3.0), SPEC


def mean_with_a_hook():
    model = MeanPool()
    model.register_forward_hook(lambda module, inputs, output: output * 2)
    return model, SPEC
"""


def test_same_weights_other_forward_code_get_other_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reusespec.backbones.registry import BackboneContext, resolve_backbone

    module = f"rs_same_weights_{os.getpid()}_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{module}.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    context = BackboneContext(cache_dir=tmp_path / "cache")
    names = ["mean", "mean_again", "max_pool", "scaled_by_two", "scaled_by_three", "mean_with_a_hook"]
    backbones = [resolve_backbone(f"{module}:{name}", context) for name in names]
    assert len({b.model.conv.weight.sum().item() for b in backbones}) == 1  # identical weights
    split = Split.from_arrays(
        "test", torch.randint(0, 255, (6, 1, 8, 8), dtype=torch.uint8), np.arange(6) % 2, "random"
    )
    keys = [feature_key(b, split) for b in backbones]
    assert len(set(keys)) == len(keys)
    assert feature_key(resolve_backbone(f"{module}:mean", context), split) == keys[0]  # stable


def test_an_edited_forward_under_the_same_string_gets_other_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from reusespec.backbones.registry import BackboneContext, resolve_backbone

    module = f"rs_edited_{os.getpid()}_{abs(hash(tmp_path)) % 10**8}"
    path = tmp_path / f"{module}.py"
    path.write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    context = BackboneContext(cache_dir=tmp_path / "cache")
    split = Split.from_arrays("test", torch.zeros(4, 1, 8, 8, dtype=torch.uint8), np.arange(4) % 2, "zeros")
    before = feature_key(resolve_backbone(f"{module}:mean", context), split)
    path.write_text(
        FACTORIES.replace("mean(dim=(2, 3))\n\n\nclass MaxPool", "mean(dim=(2, 3)) * 10\n\n\nclass MaxPool")
    )
    importlib.reload(importlib.import_module(module))
    assert feature_key(resolve_backbone(f"{module}:mean", context), split) != before
