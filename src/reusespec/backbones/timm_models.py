"""``timm:NAME[?file=PATH|?weights=none]``: timm's ``create_model`` with its own preprocessing.

``NAME`` is any ``timm.list_models()`` name, with or without a pretrained tag
(``resnet50.a1_in1k``). Weights come, in this order, from

- ``?file=PATH``: a local safetensors or state-dict file (read with ``weights_only=True``);
- timm's usual cache, the Hugging Face hub cache (``HF_HOME``), when it already holds the file;
- a download, only with ``--reuse-allow-download`` (``allow_download=True``).

``?weights=none`` builds the architecture at a seeded random init (enough for costs and tests).
The checkpoint's ``pretrained_cfg`` becomes the :class:`InputSpec`: input size, mean and std,
interpolation, and the resize before the centre crop (``size / crop_pct``, timm's eval transform).
The model is built with its classifier, loaded strictly, then the classifier is kept as
``source_head`` and removed (``reset_classifier(0)``): the features are timm's pre-logits.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import torch
from torch import nn

from reusespec.backbones.base import Backbone, InputSpec
from reusespec.backbones.convert import find_blocks
from reusespec.errors import CheckpointError, MissingWeightsError, ResourceUnavailable, UnknownBackboneError
from reusespec.hashing import digest, state_dict_digest

INSTALL_TIMM = 'pip install "reusespec[timm]"'
QUERY_KEYS = {"file", "weights"}


class MissingExtraError(ResourceUnavailable):
    """An optional dependency (an extra) that is not installed: specs needing it skip."""


def import_timm() -> Any:
    try:
        import timm
    except ImportError:
        raise MissingExtraError(
            f"timm: backbones need the timm package, which is not installed: {INSTALL_TIMM}"
        ) from None
    return timm


def parse_timm_spec(spec: str, rest: str) -> tuple[str, dict[str, str]]:
    name, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    unknown = set(options) - QUERY_KEYS
    if unknown or not name:
        raise UnknownBackboneError(
            f"{spec}: write timm:NAME, timm:NAME?file=PATH or timm:NAME?weights=none"
            + (f" (unknown option(s) {sorted(unknown)})" if unknown else "")
        )
    if "weights" in options and options["weights"].lower() != "none":
        raise UnknownBackboneError(f"{spec}: weights= accepts only 'none' (a seeded random init)")
    return name, options


def input_spec_from_cfg(cfg: dict[str, Any]) -> InputSpec:
    """timm's eval preprocessing from a ``pretrained_cfg``: resize to size/crop_pct, centre crop."""
    channels, height, width = (
        int(v) for v in cfg.get("test_input_size") or cfg.get("input_size", (3, 224, 224))
    )
    crop_pct = float(cfg.get("test_crop_pct") or cfg.get("crop_pct") or 0.875)
    crop_mode = cfg.get("crop_mode", "center")
    if crop_mode != "center" and crop_mode is not None:
        # "squash" and "border" are not the shorter-side resize + centre crop InputSpec expresses.
        resize = None
    else:
        resize = math.floor(min(height, width) / crop_pct)
    mean = tuple(float(m) for m in cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(float(s) for s in cfg.get("std", (0.229, 0.224, 0.225)))
    interpolation = str(cfg.get("interpolation") or "bilinear")
    if interpolation not in ("bilinear", "bicubic", "nearest"):
        interpolation = "bilinear"
    return InputSpec(
        channels=channels,
        size=(height, width),
        mean=mean if len(mean) == channels else mean[:1] * channels,
        std=std if len(std) == channels else std[:1] * channels,
        resize=resize,
        interpolation=interpolation,
    )


def build_timm_classifier(name: str, seed: int = 0) -> nn.Module:
    """The architecture with its classifier, at a seeded random init (no weights are read)."""
    timm = import_timm()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return timm.create_model(name, pretrained=False)
    except RuntimeError as exc:  # timm's "Unknown model"
        raise UnknownBackboneError(f"timm:{name}: {exc}; see timm.list_models()") from None


def cached_hub_file(name: str) -> Path | None:
    """The pretrained file for ``name`` if the Hugging Face cache already holds it (no network)."""
    timm = import_timm()
    cfg = timm.models.get_pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        found = try_to_load_from_cache(hub_id, filename)
        if isinstance(found, str):
            return Path(found)
    return None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors, or from a torch file with ``weights_only=True``."""
    if not path.is_file():
        raise MissingWeightsError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read {path}: {exc}. The file may be truncated or corrupt.") from None
    for key in ("state_dict", "model", "model_state_dict"):  # common training-script wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dict (found {type(state).__name__})")
    return state


def load_timm_backbone(spec: str, rest: str, allow_download: bool) -> Backbone:
    name, options = parse_timm_spec(spec, rest)
    timm = import_timm()
    model = build_timm_classifier(name)
    source = "random init (seed 0)"
    if options.get("weights", "").lower() != "none":
        path = Path(options["file"]).expanduser() if "file" in options else cached_hub_file(name)
        if path is not None:
            _load_strict(model, read_state_dict(path), spec, path)
            source = str(path)
        elif allow_download:
            model = timm.create_model(name, pretrained=True)
            source = "downloaded by timm"
        else:
            raise MissingWeightsError(
                f"{spec}: the pretrained weights are not on this machine (looked in the Hugging Face cache, "
                "HF_HOME). Pass a local file with timm:NAME?file=PATH, put the hub download in the cache, "
                "or pass --reuse-allow-download (allow_download=True) to let timm download them."
            )
    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    return timm_model_to_backbone(
        spec, model, input_spec_from_cfg(cfg), {"source": "timm", "weights": source}
    )


def _load_strict(model: nn.Module, state: dict[str, torch.Tensor], spec: str, path: Path) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit {spec}: {exc}") from None


def timm_model_to_backbone(
    spec: str, model: nn.Module, input_spec: InputSpec, meta: dict[str, Any]
) -> Backbone:
    """Keep timm's classifier as ``source_head``, remove it, and wrap the pre-logits extractor."""
    model = model.eval()
    fingerprint = digest("backbone", "timm", type(model).__name__, state_dict_digest(model.state_dict()))
    classifier = model.get_classifier()  # type: ignore[operator]
    source_head = copy.deepcopy(classifier) if isinstance(classifier, nn.Linear) else None
    head_name = str(getattr(model, "pretrained_cfg", {}).get("classifier", "") or "")
    model.reset_classifier(0)  # type: ignore[operator]
    feature_dim = int(getattr(model, "num_features", 0))
    with torch.inference_mode():
        probe = model(torch.zeros(1, input_spec.channels, *input_spec.size))
    if probe.ndim != 2:
        raise CheckpointError(f"{spec}: timm's pre-logits have shape {tuple(probe.shape)}, expected (1, D)")
    feature_dim = int(probe.shape[1])
    try:
        blocks = find_blocks(model, head_name)
    except (AttributeError, ValueError):
        blocks = []
    return Backbone(spec, model, feature_dim, input_spec, fingerprint, source_head, blocks, meta)
