"""``file:PATH[?arch=SPEC]``: a local checkpoint, read without running code from it.

safetensors files are preferred. ``.pt``/``.pth`` files are read with
``torch.load(weights_only=True)``, which refuses any pickle that would execute code; a
user who trusts a file that needs more can opt in for that one file
(``--reuse-trust-pickle PATH``). The architecture comes from ``?arch=`` (any backbone
string that builds it: ``torchvision:resnet18``, ``zoo:digits-cnn``, ``pkg.mod:factory``)
or, for files reusespec wrote, from the safetensors metadata key ``reusespec.arch``.
"""

from __future__ import annotations

import pickle
import re
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


def read_checkpoint(
    path: Path, trusted: Collection[Path] = ()
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state dict and metadata of a checkpoint file (safetensors or a torch pickle)."""
    if not path.exists():
        # An explicit path that is wrong is a mistake in the spec, not a resource this machine may
        # lack (torchvision weights): fail, so a typo cannot pass a CI gate as a skip.
        raise CheckpointError(
            f"checkpoint not found: looked for {path} (resolved from the working directory {Path.cwd()}). "
            "Give an absolute path or one relative to where pytest runs."
        )
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                state = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (not a dict)
                return state, dict(f.metadata() or {})
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(
                f"{path} is not a readable safetensors file ({exc}); it may be truncated"
            ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
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
    return _state_dict_of(obj, path), {}


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
    path = Path(raw_path).expanduser()
    state, metadata = read_checkpoint(path, trusted)
    arch = options.get("arch") or metadata.get("reusespec.arch")
    if not arch:
        raise CheckpointError(
            f"{spec}: the checkpoint does not say which architecture it is for; add it to the string, "
            f"e.g. 'file:{raw_path}?arch=torchvision:resnet18'"
        )
    model, input_spec = build_architecture(arch)
    _fit_head_to(model, state)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches are raised even when strict=False
        raise CheckpointError(f"{path} does not match architecture {arch!r}: {exc}") from None
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
