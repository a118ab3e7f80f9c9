"""Turn a classifier into a feature extractor: find its head, remove it, find its blocks."""

from __future__ import annotations

import copy

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

    A model with a ``features`` Sequential (VGG, MobileNet, EfficientNet, the demo zoo) is
    split into its entries; otherwise the top-level children are the blocks (ResNet's
    conv1, bn1, layer1..layer4).
    """
    head_root = head.split(".")[0]
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        return [f"features.{name}" for name, child in features.named_children() if _has_params(child)]
    return [name for name, child in model.named_children() if name != head_root and _has_params(child)]


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def classifier_to_backbone(
    name: str, model: nn.Module, input_spec: InputSpec, *, head: str | None = None, meta: dict | None = None
) -> Backbone:
    """Wrap a classifier as a :class:`Backbone`, keeping the removed head as ``source_head``."""
    model = model.eval()
    head = head or find_head(model)
    fingerprint = digest("backbone", type(model).__name__, state_dict_digest(model.state_dict()))
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
        out = model(probe)
    if out.ndim != 2:
        raise ReuseSpecError(
            f"{name}: a feature extractor must return (batch, features); it returned shape {tuple(out.shape)}"
        )
    fingerprint = digest("backbone", type(model).__name__, state_dict_digest(model.state_dict()))
    blocks = find_blocks(model, head="")
    return Backbone(name, model, int(out.shape[1]), input_spec, fingerprint, None, blocks, dict(meta or {}))
