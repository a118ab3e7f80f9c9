"""``torchvision:NAME[:WEIGHTS]``: torchvision's builders and weights enums, offline by default.

Weights are looked for where torchvision itself caches them, ``torch.hub.get_dir()/checkpoints``
(``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``), under the
file name of the weights' URL. Nothing is downloaded unless the caller allows it.
``WEIGHTS`` is a member of the model's weights enum (``IMAGENET1K_V2``), ``DEFAULT`` (the
default), or ``none`` for a random init (enough for counting parameters and FLOPs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torchvision.models import WeightsEnum

from reusespec.backbones.base import Backbone, InputSpec
from reusespec.backbones.convert import classifier_to_backbone
from reusespec.errors import CheckpointError, MissingWeightsError, UnknownBackboneError

IMAGENET_INPUT = InputSpec(
    channels=3, size=(224, 224), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), resize=256
)


def resolve_weights(model_name: str, weights_name: str | None) -> WeightsEnum | None:
    """The weights enum member a ``torchvision:`` string names (None for random init)."""
    if model_name not in torchvision.models.list_models(module=torchvision.models):
        raise UnknownBackboneError(
            f"torchvision has no classification model {model_name!r}; see torchvision.models.list_models()"
        )
    if weights_name is not None and weights_name.lower() == "none":
        return None
    enum = torchvision.models.get_model_weights(model_name)
    member = weights_name or "DEFAULT"
    try:
        return enum[member]
    except KeyError:
        valid = ", ".join(["DEFAULT", *(w.name for w in enum), "none"])
        raise UnknownBackboneError(f"{enum.__name__} has no member {member!r}; valid: {valid}") from None


def weights_path(weights: WeightsEnum) -> Path:
    """Where torchvision caches this weights file (honours TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def input_spec_for(weights: WeightsEnum | None) -> InputSpec:
    """The weights' own preprocessing (resize, crop, normalisation), read from ``weights.transforms()``."""
    if weights is None:
        return IMAGENET_INPUT
    t: Any = weights.transforms()
    crop = int(t.crop_size[0])
    return InputSpec(
        channels=3,
        size=(crop, crop),
        mean=tuple(float(m) for m in t.mean),
        std=tuple(float(s) for s in t.std),
        resize=int(t.resize_size[0]),
        interpolation=t.interpolation.value,
    )


def build_torchvision_classifier(
    model_name: str, weights: WeightsEnum | None, allow_download: bool
) -> nn.Module:
    state = None
    if weights is not None:
        # Before building the model: a missing file then fails (or skips a spec) at once, instead
        # of after initialising tens of millions of parameters.
        path = weights_path(weights)
        if not path.exists() and not allow_download:
            raise MissingWeightsError(
                f"weights {type(weights).__name__}.{weights.name} for torchvision:{model_name} are not on "
                f"this machine: looked for {path}. Put the file there (it is torchvision's download of "
                f"{weights.url}), or set TORCH_HOME to the folder whose hub/checkpoints holds it, or pass "
                "--reuse-allow-download (allow_download=True) to let torchvision download it."
            )
        state = (
            load_torchvision_file(path)
            if path.exists()
            else weights.get_state_dict(progress=True, check_hash=True)
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # a random init that is the same on every run, so caches stay valid
        model = torchvision.models.get_model(model_name, weights=None)
    if weights is None or state is None:
        return model
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit torchvision:{model_name}: {exc}") from None
    return model


def load_torchvision_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read the torchvision weights file {path}: {exc}. The file may be truncated or corrupt: "
            "delete it and download it again."
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dict (found {type(state).__name__})")
    return state


def load_torchvision_backbone(spec: str, rest: str, allow_download: bool) -> Backbone:
    model_name, _, weights_name = rest.partition(":")
    weights = resolve_weights(model_name, weights_name or None)
    model = build_torchvision_classifier(model_name, weights, allow_download)
    meta: dict[str, Any] = {"source": "torchvision", "weights": None if weights is None else str(weights)}
    if weights is not None:
        meta.update({k: v for k, v in weights.meta.items() if k in ("num_params", "_ops", "_file_size")})
    return classifier_to_backbone(spec, model, input_spec_for(weights), meta=meta)
