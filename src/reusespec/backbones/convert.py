"""Turn a classifier into a feature extractor: find its head, remove it, find its blocks."""

from __future__ import annotations

import copy
import functools
import inspect
import types
from typing import Any

import torch
from torch import nn

from reusespec.backbones.base import Backbone, InputSpec
from reusespec.errors import ReuseSpecError
from reusespec.hashing import digest, state_dict_digest

HEAD_NAMES = ("fc", "classifier", "head", "heads")


def find_head(model: nn.Module) -> str:
    """Dotted name of the final ``nn.Linear`` inside the model's classifier head.

    torchvision puts the head at ``fc`` (ResNet, RegNet, GoogLeNet), at the end of
    ``classifier`` (VGG, MobileNet, EfficientNet, ConvNeXt), or in ``head``/``heads`` (Swin,
    ViT); the last Linear in the last of those is the layer to drop.
    """
    for head_name in HEAD_NAMES:
        head = getattr(model, head_name, None)
        if head is None:
            continue
        if isinstance(head, nn.Linear):
            return head_name
        linears = [name for name, m in head.named_modules() if isinstance(m, nn.Linear)]
        if linears:
            return f"{head_name}.{linears[-1]}"
    raise ReuseSpecError(
        f"cannot find the classification head of {type(model).__name__}: expected an nn.Linear at one of "
        f"{', '.join(HEAD_NAMES)}. Return a reusespec.Backbone from your factory to say what the feature "
        "extractor is."
    )


def find_blocks(model: nn.Module, head: str) -> list[str]:
    """Names of the parameterised blocks in forward order, the head excluded.

    The top-level children are the blocks (ResNet's conv1, bn1, layer1..layer4), except that
    a ``features`` Sequential (VGG, MobileNet, EfficientNet, ConvNeXt, Swin, the demo zoo)
    contributes its entries, and the layers of the head's container that come before the
    head are the last blocks (MobileNetV3's and VGG's hidden Linear layers, ConvNeXt's
    LayerNorm): they make the features. When that gives fewer than three blocks, the main
    stack is opened up: ViT's ``encoder`` becomes its encoder layers, RegNet's
    ``trunk_output`` its stages. Children are taken in registration order, which is forward
    order for these families.
    """
    head_root = head.split(".")[0]
    blocks: list[str] = []
    for name, child in model.named_children():
        if name == head_root or not _has_params(child):
            continue
        if name == "features" and isinstance(child, nn.Sequential):
            blocks += _param_children(child, prefix="features.")
        else:
            blocks.append(name)
    stack = _main_stack(model, blocks) if len(blocks) < 3 else None
    if stack is not None:
        i = next(i for i, b in enumerate(blocks) if stack == b or stack.startswith(b + "."))
        blocks[i : i + 1] = _expand_towards(model, blocks[i], stack)
    return blocks + _before_head(model, head)


def _before_head(model: nn.Module, head: str) -> list[str]:
    """Parameterised siblings registered before the head inside its container."""
    parent_name, _, leaf = head.rpartition(".")
    if not parent_name:
        return []
    out = []
    for name, child in model.get_submodule(parent_name).named_children():
        if name == leaf:
            break
        if _has_params(child):
            out.append(f"{parent_name}.{name}")
    return out


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _param_children(module: nn.Module, prefix: str = "") -> list[str]:
    return [f"{prefix}{name}" for name, child in module.named_children() if _has_params(child)]


def _main_stack(model: nn.Module, blocks: list[str], max_depth: int = 4) -> str | None:
    """The first Sequential/ModuleList of >= 2 blocks on the way down the largest modules."""
    if not blocks:
        return None
    name = max(blocks, key=lambda b: _num_params(model.get_submodule(b)))
    for _ in range(max_depth):
        module = model.get_submodule(name)
        children = _param_children(module)
        if isinstance(module, (nn.Sequential, nn.ModuleList)) and len(children) >= 2:
            return name
        if not children:
            return None
        name = f"{name}.{max(children, key=lambda c: _num_params(module.get_submodule(c)))}"
    return None


def _num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _expand_towards(model: nn.Module, name: str, target: str) -> list[str]:
    """The block ``name`` split into its children, recursively along the way to ``target``."""
    if name == target:
        return _param_children(model.get_submodule(name), prefix=f"{name}.")
    out = []
    for child in _param_children(model.get_submodule(name), prefix=f"{name}."):
        if target == child or target.startswith(child + "."):
            out += _expand_towards(model, child, target)
        else:
            out.append(child)
    return out


def backbone_fingerprint(model: nn.Module) -> str:
    """Identity of what computes the features: the weights and the code that uses them.

    The code is every submodule's class, the source of its ``forward`` (its bytecode where the source
    is not available; source is the same on every Python version), and its plain settings (numbers,
    strings, tuples: a chosen layer, a scale), so two factories with the same weights but other
    forward code, or a factory whose code was edited, never share cached features.
    """
    return digest(
        "backbone", type(model).__name__, architecture_identity(model), state_dict_digest(model.state_dict())
    )


def architecture_identity(model: nn.Module) -> str:
    parts = []
    for name, module in model.named_modules():
        cls: Any = type(module)
        code = _forward_identity(cls)
        settings = {
            key: value
            for key, value in vars(module).items()
            if not key.startswith("_") and key != "training" and _plain(value)
        }
        # A forward replaced on the instance, and forward hooks, change the output as much as the class.
        replaced = [
            _callable_identity(value)
            for key, value in vars(module).items()
            if key == "forward" or (key.startswith("_forward") and key.endswith("hooks"))
        ]
        parts.append([name, f"{cls.__module__}.{cls.__qualname__}", code, settings, replaced])
    return digest("architecture", parts)


def _plain(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


@functools.lru_cache(maxsize=1024)
def _forward_identity(cls: Any) -> str:
    forward = getattr(cls, "forward", None)
    if not isinstance(forward, types.FunctionType):
        return ""
    try:
        return digest("source", inspect.getsource(forward))
    except (OSError, TypeError):  # defined in a REPL or generated: no source file
        return _code_identity(forward.__code__)


def _callable_identity(value: Any) -> str:
    if isinstance(value, dict):  # a hook dict: id -> hook
        return digest([_callable_identity(hook) for hook in value.values()])
    code = getattr(getattr(value, "__func__", value), "__code__", None)
    return _code_identity(code) if isinstance(code, types.CodeType) else type(value).__qualname__


def _code_identity(code: types.CodeType) -> str:
    consts = [_code_identity(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    return digest("code", code.co_code.hex(), consts, list(code.co_names))


def classifier_to_backbone(
    name: str, model: nn.Module, input_spec: InputSpec, *, head: str | None = None, meta: dict | None = None
) -> Backbone:
    """Wrap a classifier as a :class:`Backbone`, keeping the removed head as ``source_head``."""
    model = model.eval()
    head = head or find_head(model)
    fingerprint = backbone_fingerprint(model)
    parent_name, _, leaf = head.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    source_head = getattr(parent, leaf)
    if not isinstance(source_head, nn.Linear):
        raise ReuseSpecError(f"the head {head!r} of {name} is a {type(source_head).__name__}, not nn.Linear")
    blocks = find_blocks(model, head)
    setattr(parent, leaf, nn.Identity())
    return Backbone(
        name=name,
        model=model,
        feature_dim=source_head.in_features,
        input_spec=input_spec,
        fingerprint=fingerprint,
        source_head=copy.deepcopy(source_head),
        blocks=blocks,
        meta=dict(meta or {}),
    )


def module_to_backbone(
    name: str, model: nn.Module, input_spec: InputSpec, meta: dict | None = None
) -> Backbone:
    """Wrap a module that already outputs features (no head); its width is found by a dry run."""
    model = model.eval()
    with torch.inference_mode():
        probe = torch.zeros(1, input_spec.channels, *input_spec.size)
        try:
            out = model(probe)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ReuseSpecError(
                f"{name}: the model cannot run on the input its InputSpec describes (channels="
                f"{input_spec.channels}, size={input_spec.size[0]}x{input_spec.size[1]}): {first}. Make the "
                "InputSpec your factory returns match the model's first layer and the size it was built for"
            ) from exc
    if not isinstance(out, torch.Tensor):
        raise ReuseSpecError(
            f"{name}: a feature extractor must return one tensor (batch, features); its forward returned a "
            f"{type(out).__name__}. Return the features alone (e.g. wrap the model and pick out[0] or "
            "out['features']), or return a reusespec.Backbone"
        )
    if out.ndim != 2:
        raise ReuseSpecError(
            f"{name}: a feature extractor must return (batch, features); it returned shape {tuple(out.shape)}"
        )
    fingerprint = backbone_fingerprint(model)
    blocks = find_blocks(model, head="")
    return Backbone(name, model, int(out.shape[1]), input_spec, fingerprint, None, blocks, dict(meta or {}))
