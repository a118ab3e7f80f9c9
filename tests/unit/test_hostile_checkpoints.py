"""Untrusted checkpoints: every hostile file the tests write ends in a clear CheckpointError naming
the file, runs no code, and allocates nothing on the file's word."""

from __future__ import annotations

import io
import json
import os
import pickle
import resource
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision

from reusespec.backbones.registry import BackboneContext, resolve_backbone
from reusespec.backbones.zoo import DigitsCNN
from reusespec.errors import CheckpointError, UnsafeCheckpointError


def resolve(spec: str, tmp_path: Path) -> Any:
    return resolve_backbone(spec, BackboneContext(cache_dir=tmp_path / "cache"))


def digits_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return DigitsCNN(16).state_dict()


class RunsCode:
    """Unpickling this creates ``marker``: a stand-in for any code a pickle can run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.marker),)


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin", ".ckpt", ".pkl", ".safetensors", ""])
@pytest.mark.parametrize("container", ["torch-zip", "plain-pickle", "legacy-torch"])
def test_a_pickle_with_code_is_refused_whatever_its_suffix(
    tmp_path: Path, suffix: str, container: str
) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / f"evil{suffix}"
    payload = {"state_dict": digits_state(), "extra": RunsCode(marker)}
    if container == "torch-zip":
        torch.save(payload, path)
    elif container == "legacy-torch":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(CheckpointError) as info:
        resolve(f"file:{path}?arch=zoo:digits-cnn", tmp_path)
    assert not marker.exists()
    assert str(path) in str(info.value)


def test_a_zip_with_code_next_to_a_real_state_dict_is_refused(tmp_path: Path) -> None:
    """A real checkpoint archive whose pickle also holds an object that runs code, plus a stray script."""
    marker = tmp_path / "code-ran"
    good = tmp_path / "good.pt"
    torch.save(digits_state(), good)
    evil = tmp_path / "evil.pt"
    buffer = io.BytesIO()
    torch.save({"model": digits_state(), "hook": RunsCode(marker)}, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src, zipfile.ZipFile(evil, "w") as out:
        for info in src.infolist():
            out.writestr(info, src.read(info.filename))
        out.writestr("archive/run_me.py", f"import os; os.mkdir({str(marker)!r})")
    with pytest.raises(UnsafeCheckpointError) as info:
        resolve(f"file:{evil}?arch=zoo:digits-cnn", tmp_path)
    assert not marker.exists() and str(evil) in str(info.value)
    assert resolve(f"file:{good}?arch=zoo:digits-cnn", tmp_path).feature_dim == 64


def run_capped(code: str, headroom: int = 2 * 2**30) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child whose address space, once torch is imported, may grow by ``headroom``
    only: an 8 GiB allocation cannot succeed there."""
    prelude = (
        "import resource, re, torch, reusespec.backbones.registry\n"
        "size = int(re.search(r'VmSize:\\s+(\\d+)', open('/proc/self/status').read())[1]) * 1024\n"
        f"resource.setrlimit(resource.RLIMIT_AS, (size + {headroom}, size + {headroom}))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=120, env=env
    )


def test_a_stride_zero_giant_is_refused_before_anything_is_allocated(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = torchvision.models.resnet18().state_dict()
    state["fc.weight"] = torch.zeros(1).expand(2**22, 512)  # 8 GiB declared, 4 bytes stored
    state["fc.bias"] = torch.zeros(1).expand(2**22)
    path = tmp_path / "evil.pt"
    torch.save(state, path)
    assert path.stat().st_size < 50 * 2**20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UnsafeCheckpointError) as info:
        resolve(f"file:{path}?arch=torchvision:resnet18", tmp_path)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 1024 * 1024, f"peak memory grew by {grown_kib / 1024:.0f} MiB"
    message = str(info.value)
    assert str(path) in message and "fc.weight" in message and "(4194304, 512)" in message


def test_a_stride_zero_giant_under_a_memory_cap_is_still_a_clear_error(tmp_path: Path) -> None:
    state = digits_state()
    state["classifier.weight"] = torch.zeros(1).expand(2**22, 64)
    state["classifier.bias"] = torch.zeros(1).expand(2**22)
    path = tmp_path / "evil.pt"
    torch.save(state, path)
    done = run_capped(
        "from pathlib import Path\n"
        "from reusespec.backbones.registry import BackboneContext, resolve_backbone\n"
        "from reusespec.errors import UnsafeCheckpointError\n"
        "try:\n"
        f"    resolve_backbone('file:{path}?arch=zoo:digits-cnn', BackboneContext(cache_dir=Path('.')))\n"
        "except UnsafeCheckpointError as exc:\n"
        "    print('REFUSED', exc)\n"
    )
    assert "REFUSED" in done.stdout, done.stderr[-2000:]


def write_safetensors(path: Path, header: bytes, data: bytes = b"", length: int | None = None) -> Path:
    path.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header + data)
    return path


@pytest.mark.parametrize(
    ("case", "phrase"),
    [
        ("absurd-header-length", "header claims"),
        ("header-not-json", "not JSON"),
        ("header-a-list", "not an object"),
        ("unknown-dtype", "unknown dtype"),
        ("negative-shape", "not a list of sizes"),
        ("offsets-past-the-end", "outside"),
        ("shape-bigger-than-its-bytes", "declares shape"),
        ("too-short", "too short"),
    ],
)
def test_malformed_safetensors_are_refused_before_reading(tmp_path: Path, case: str, phrase: str) -> None:
    path = tmp_path / f"{case}.safetensors"
    entry: dict[str, Any] = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}
    if case == "absurd-header-length":
        write_safetensors(path, b'{"a": 1}', length=2**62)
    elif case == "header-not-json":
        write_safetensors(path, b"{not json at all", b"\0" * 16)
    elif case == "header-a-list":
        write_safetensors(path, b"[1, 2, 3]", b"\0" * 16)
    elif case == "too-short":
        path.write_bytes(b"\x01\x02")
    else:
        if case == "unknown-dtype":
            entry["dtype"] = "F1024"
        elif case == "negative-shape":
            entry["shape"] = [-1, 2]
        elif case == "offsets-past-the-end":
            entry["data_offsets"] = [0, 2**40]
        else:
            entry["shape"] = [2**22, 512]
        write_safetensors(path, json.dumps({"classifier.weight": entry}).encode(), b"\0" * 16)
    with pytest.raises(CheckpointError) as info:
        resolve(f"file:{path}?arch=zoo:digits-cnn", tmp_path)
    assert str(path) in str(info.value) and phrase in str(info.value), str(info.value)


def test_a_legacy_file_declaring_more_storage_than_it_holds_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(1)}, path, _use_new_zipfile_serialization=False)
    raw = path.read_bytes()
    needle = b"X\x03\x00\x00\x00cpuq\x06K\x01"
    assert needle in raw
    path.write_bytes(raw.replace(needle, b"X\x03\x00\x00\x00cpuq\x06J" + struct.pack("<i", 2**30)))
    with pytest.raises(CheckpointError, match="declares"):
        resolve(f"file:{path}?arch=zoo:digits-cnn", tmp_path)


@pytest.mark.parametrize("target", ["/etc/passwd", "/dev/zero", "/proc/self/environ", "/"])
def test_a_symlink_to_a_system_file_is_a_clear_error(tmp_path: Path, target: str) -> None:
    if not Path(target).exists():
        pytest.skip(f"{target} does not exist here")
    link = tmp_path / "weights.pt"
    link.symlink_to(target)
    with pytest.raises(CheckpointError) as info:
        resolve(f"file:{link}?arch=zoo:digits-cnn", tmp_path)
    assert str(link) in str(info.value)
    assert "needs to run code" not in str(info.value)


def test_a_plain_text_file_named_pt_is_not_called_a_pickle(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("these are not weights\n")
    with pytest.raises(CheckpointError) as info:
        resolve(f"file:{path}?arch=zoo:digits-cnn", tmp_path)
    message = str(info.value)
    assert not isinstance(info.value, UnsafeCheckpointError)
    assert "not a checkpoint" in message and "run code" not in message and str(path) in message


def test_a_checkpoint_over_the_size_budget_is_refused_unread(tmp_path: Path) -> None:
    from reusespec.backbones.files import read_checkpoint

    path = tmp_path / "big.pt"
    torch.save(digits_state(), path)
    with pytest.raises(CheckpointError, match="more than"):
        read_checkpoint(path, max_bytes=1000)


def test_resnet18_weights_with_arch_resnet50_say_so_briefly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        resolve(f"file:{path}?arch=torchvision:resnet50", tmp_path)
    message = str(info.value)
    assert "?arch=" in message and str(path) in message and "resnet50" in message
    assert len(message.splitlines()) == 1 and len(message) < 800


def test_an_unknown_users_home_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no user 'nosuchuser_rs'"):
        resolve("file:~nosuchuser_rs/x.pt?arch=zoo:digits-cnn", tmp_path)
