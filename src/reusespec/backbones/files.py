"""``file:PATH[?arch=SPEC]``: a local checkpoint, read without running code from it.

safetensors files are preferred. ``.pt``/``.pth`` files are read with
``torch.load(weights_only=True)``, which refuses any pickle that would execute code; a
user who trusts a file that needs more can opt in for that one file
(``--reuse-trust-pickle PATH``). The architecture comes from ``?arch=`` (any backbone
string that builds it: ``torchvision:resnet18``, ``zoo:digits-cnn``, ``pkg.mod:factory``)
or, for files reusespec wrote, from the safetensors metadata key ``reusespec.arch``.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import pickletools
import re
import stat
import struct
import zipfile
from collections.abc import Callable, Collection
from pathlib import Path
from urllib.parse import parse_qsl

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from reusespec.backbones.base import Backbone, InputSpec
from reusespec.backbones.convert import classifier_to_backbone, find_head
from reusespec.errors import CheckpointError, UnsafeCheckpointError

ArchitectureBuilder = Callable[[str], tuple[nn.Module, InputSpec]]

# Bigger than any published vision backbone's weights (docs/reference.md), small enough that a
# hostile file cannot exhaust memory.
MAX_CHECKPOINT_BYTES = 8 * 2**30
# safetensors' own limit on the JSON header.
MAX_SAFETENSORS_HEADER = 100 * 2**20
SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL_2_PLUS = b"\x80"


def checkpoint_file(raw_path: str) -> Path:
    """The path a ``file:`` string names, ``~`` expanded, with a clear error for an unknown user."""
    try:
        return Path(raw_path).expanduser()
    except RuntimeError:  # "Could not determine home directory" for ~nosuchuser
        user = raw_path[1:].split("/")[0]
        raise CheckpointError(
            f"checkpoint path {raw_path!r}: there is no user {user!r} whose home directory '~{user}' "
            "could stand for; write the path out in full"
        ) from None


def read_checkpoint(
    path: Path, trusted: Collection[Path] = (), max_bytes: int = MAX_CHECKPOINT_BYTES
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state dict and metadata of a checkpoint file (safetensors or a torch pickle).

    Nothing is allocated on the file's word: its size is checked against ``max_bytes``, a
    safetensors header against the bytes that follow it, and every tensor's declared shape
    against the bytes it really has, before the tensors are used.
    """
    if not path.exists():
        # An explicit path that is wrong is a mistake in the spec, not a resource this machine may
        # lack (torchvision weights): fail, so a typo cannot pass a CI gate as a skip.
        raise CheckpointError(
            f"checkpoint not found: looked for {path} (resolved from the working directory {Path.cwd()}). "
            "Give an absolute path or one relative to where pytest runs."
        )
    size = _regular_file_size(path, max_bytes)
    with open(path, "rb") as f:
        head = f.read(16)
    if path.suffix == ".safetensors" or _looks_like_safetensors(head, size):
        _check_safetensors_header(path, size)
        try:
            with safe_open(str(path), framework="pt") as f:
                state = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (not a dict)
                return state, dict(f.metadata() or {})
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(
                f"{path} is not a readable safetensors file ({exc}); it may be truncated"
            ) from None
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_PROTOCOL_2_PLUS)):
        raise CheckpointError(
            f"{path} is not a checkpoint: it is neither a safetensors file nor a torch file (a zip archive "
            f"or a pickle); it starts with {head[:8]!r}. Check the path names the weights file."
        )
    if head.startswith(_ZIP_MAGIC):
        _check_zip(path, max_bytes)
    else:
        _check_legacy_storages(path, size)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not _refused_for_safety(exc):
            raise CheckpointError(
                f"cannot read checkpoint {path}: {_refusal_reason(exc)}. "
                "The file may be truncated or corrupt."
            ) from None
        if path.resolve() not in {p.resolve() for p in trusted}:
            raise UnsafeCheckpointError(
                f"{path} is a pickle that needs to run code to load, so it was refused "
                f"({_refusal_reason(exc)}). "
                "Convert it to safetensors or a plain state dict; or, if you trust this file, opt in for it "
                f"alone with --reuse-trust-pickle {path}."
            ) from None
        obj = torch.load(path, map_location="cpu", weights_only=False)  # explicit opt-in for this file
    except Exception as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {exc}. The file may be truncated or corrupt."
        ) from None
    state = _state_dict_of(obj, path)
    _check_tensors_own_their_bytes(state, path)
    return state, {}


def _regular_file_size(path: Path, max_bytes: int) -> int:
    """The size of ``path``, which must be a regular file (after symlinks) within the budget."""
    try:
        info = path.stat()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a device, pipe or socket"
        raise CheckpointError(f"{path} is {kind}, not a checkpoint file; name the weights file itself")
    if info.st_size > max_bytes:
        raise CheckpointError(
            f"{path} is {info.st_size / 2**30:.1f} GiB, more than the {max_bytes / 2**30:.1f} GiB "
            "a checkpoint is allowed; check it is the file you meant"
        )
    return info.st_size


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 0 < length <= size - 8 and head[8:9] == b"{"


def _check_safetensors_header(path: Path, size: int) -> None:
    """The header must be a JSON object whose tensors fit, exactly, in the bytes after it."""

    def bad(problem: str) -> CheckpointError:
        return CheckpointError(
            f"{path} is not a valid safetensors file: {problem}; it may be truncated or forged"
        )

    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise bad(f"it is {size} bytes long, too short for the 8-byte header length")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(MAX_SAFETENSORS_HEADER, size - 8):
            raise bad(f"its header claims {length:,} bytes but the file has {size - 8:,} after the length")
        raw = f.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad(f"its header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise bad(f"its header is a JSON {type(header).__name__}, not an object")
    data_bytes = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise bad("its __metadata__ is not a mapping of strings")
            continue
        if not isinstance(entry, dict):
            raise bad(f"tensor {name!r} is described by a {type(entry).__name__}")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in SAFETENSORS_DTYPES:
            raise bad(f"tensor {name!r} has an unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise bad(f"tensor {name!r} has shape {shape!r}, not a list of sizes")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_bytes
        ):
            raise bad(f"tensor {name!r} has data offsets {offsets!r} outside the {data_bytes:,} data bytes")
        needed = math.prod(shape) * SAFETENSORS_DTYPES[dtype]
        if offsets[1] - offsets[0] != needed:
            raise bad(
                f"tensor {name!r} declares shape {tuple(shape)} ({needed:,} bytes) but spans "
                f"{offsets[1] - offsets[0]:,} bytes"
            )


def _check_zip(path: Path, max_bytes: int) -> None:
    """A torch zip archive whose entries, unpacked, stay within the budget (no zip bomb)."""
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {exc}. The file may be truncated or corrupt."
        ) from None
    if declared > max_bytes:
        raise CheckpointError(
            f"{path} declares {declared / 2**30:.1f} GiB of contents, more than the "
            f"{max_bytes / 2**30:.1f} GiB a checkpoint is allowed; it was not unpacked"
        )


_STORAGE_ITEM_BYTES = {"Double": 8, "Long": 8, "ComplexFloat": 8, "Float": 4, "Int": 4, "Half": 2}
_STORAGE_ITEM_BYTES.update({"BFloat16": 2, "Short": 2, "Byte": 1, "Char": 1, "Bool": 1})


def _check_legacy_storages(path: Path, size: int) -> None:
    """A pre-zip torch file allocates its storages at the sizes its pickle declares before reading
    them: read the declarations (pickletools only parses, it runs nothing) and refuse any total
    the file's own bytes cannot hold."""
    declared = 0
    with open(path, "rb") as f:
        data = io.BytesIO(f.read(min(size, 64 * 2**20)))  # the pickles come before the tensor data
    try:
        for _ in range(4):  # magic number, protocol, system info, then the objects
            memo = {"BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"}
            ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data) if op.name not in memo]
            for i, (_, arg) in enumerate(ops):
                if arg != "storage" or i + 4 >= len(ops):
                    continue
                kind, numel = ops[i + 1][1], ops[i + 4][1]
                if isinstance(kind, str) and isinstance(numel, int):
                    item = _STORAGE_ITEM_BYTES.get(kind.split()[-1].removesuffix("Storage"), 8)
                    declared += max(numel, 0) * item
    except (ValueError, EOFError, UnicodeDecodeError, pickle.UnpicklingError):
        return  # not parseable here: torch.load reports it
    if declared > size:
        raise UnsafeCheckpointError(
            f"{path} declares {declared:,} bytes of tensor storage but is only {size:,} bytes long; it was "
            "refused before anything was allocated (a truncated or forged file)"
        )


def _check_tensors_own_their_bytes(state: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse tensors that declare more elements than the bytes behind them (stride-0 giants):
    used as a shape (a head resized to them), they would allocate what the file never held."""
    for name, tensor in state.items():
        declared = tensor.numel() * tensor.element_size()
        present = tensor.untyped_storage().nbytes()
        if declared > present:
            raise UnsafeCheckpointError(
                f"{path}: tensor {name!r} declares shape {tuple(tensor.shape)} ({declared / 2**20:,.1f} MiB) "
                f"but the file holds {present:,} bytes for it (a view that repeats its data); a checkpoint "
                "of weights never does this, so it was refused"
            )


def _refused_for_safety(exc: Exception) -> bool:
    """torch's safe unpickler refused something (a global, a call), as opposed to corrupt data."""
    text = str(exc)
    return "Weights only load failed" in text and "nsupported" in text


def _refusal_reason(exc: Exception) -> str:
    """What torch's safe unpickler refused (``Unsupported global: GLOBAL pkg.Class ...``), without its
    advice to load with weights_only=False and its terminal colour codes."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    reason = next(
        (line for line in lines if line.startswith("WeightsUnpickler error:")), lines[0] if lines else ""
    )
    return reason.removeprefix("WeightsUnpickler error:").strip().split(". Please use")[0]


def _state_dict_of(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict):
                obj = inner
                break
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return {k.removeprefix("module."): v for k, v in tensors.items()}
    raise CheckpointError(f"{path} holds no state dict (found {type(obj).__name__} without tensors)")


def load_file_backbone(
    spec: str, rest: str, build_architecture: ArchitectureBuilder, trusted: Collection[Path] = ()
) -> Backbone:
    raw_path, _, query = rest.partition("?")
    options = dict(parse_qsl(query))
    path = checkpoint_file(raw_path)
    state, metadata = read_checkpoint(path, trusted)
    arch = options.get("arch") or metadata.get("reusespec.arch")
    if not arch:
        raise CheckpointError(
            f"{spec}: the checkpoint does not say which architecture it is for; add it to the string, "
            f"e.g. 'file:{raw_path}?arch=torchvision:resnet18'"
        )
    model, input_spec = build_architecture(arch)
    _check_shapes(model, state, path, arch)
    _fit_head_to(model, state)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches are raised even when strict=False
        first = str(exc).strip().splitlines()[-1].strip()
        raise CheckpointError(
            f"{path} does not match architecture {arch!r} ({first}); check ?arch= names the architecture "
            "the checkpoint was saved from"
        ) from None
    head = find_head(model)
    missing = [k for k in missing if not k.startswith(head + ".")]  # a headless checkpoint is fine
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match architecture {arch!r}: "
            f"missing keys {_preview(missing)}, unexpected keys {_preview(unexpected)}. "
            "Check ?arch= names the architecture the checkpoint was saved from."
        )
    headless = f"{head}.weight" not in state
    meta = {"source": "file", "path": str(path), "arch": arch, "headless": headless}
    backbone = classifier_to_backbone(spec, model, input_spec, head=head, meta=meta)
    if headless:
        backbone.source_head = None  # the architecture's fresh head is not the checkpoint's classifier
    return backbone


def _check_shapes(model: nn.Module, state: dict[str, torch.Tensor], path: Path, arch: str) -> None:
    """Every tensor the architecture has must have its shape in the file; only the head's class count
    may differ (a model finetuned on another label set), and its input width may not."""
    head = find_head(model)
    expected = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    wrong = []
    for name, tensor in state.items():
        own = expected.get(name)
        if own is None or tuple(own.shape) == tuple(tensor.shape):
            continue
        if name.startswith(head + ".") and tensor.ndim == own.ndim and tensor.shape[1:] == own.shape[1:]:
            continue  # another class count: the head is resized to it
        wrong.append(f"{name} is {tuple(tensor.shape)} in the file, {tuple(own.shape)} in {arch}")
    if wrong:
        raise CheckpointError(
            f"{path} does not match architecture {arch!r}: {len(wrong)} tensor(s) have other shapes, "
            f"e.g. {'; '.join(wrong[:3])}. The weights are of another architecture: name it with "
            f"?arch= (e.g. 'file:{path}?arch=torchvision:resnet18')."
        )


def _fit_head_to(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Resize the head to the checkpoint's class count (a model finetuned on another label set)."""
    head = find_head(model)
    weight = state.get(head + ".weight")
    parent_name, _, leaf = head.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    current = getattr(parent, leaf)
    if weight is not None and tuple(weight.shape) != tuple(current.weight.shape):
        setattr(parent, leaf, nn.Linear(weight.shape[1], weight.shape[0], bias=current.bias is not None))


def _preview(keys: list[str], limit: int = 5) -> str:
    if not keys:
        return "none"
    shown = ", ".join(keys[:limit])
    return f"[{shown}{', ...' if len(keys) > limit else ''}] ({len(keys)})"
