"""The real zoo: published ImageNet checkpoints, loaded strictly and checked against the published model.

Skips (naming the install command) where the asset packages are not installed.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from reusespec.backbones import real_zoo
from reusespec.backbones.registry import BackboneContext, resolve_backbone
from reusespec.errors import CheckpointError, MissingWeightsError

INSTALL = "python -m reusespec.assets install real-zoo"


def require(family: str) -> Path:
    try:
        return real_zoo.checkpoint_file(family)
    except MissingWeightsError as exc:
        pytest.skip(str(exc))


@functools.cache
def foolbox_photos() -> list[tuple[torch.Tensor, int]]:
    """foolbox's 20 ImageNet sample photos as uint8 (1, 3, H, W) with their labels (in the file names)."""
    from PIL import Image

    folder = real_zoo.locate_package_file("foolbox", "data/imagenet_00_243.jpg")
    if folder is None:
        pytest.skip(f"foolbox's sample photos are not installed: {INSTALL}")
    photos = []
    for path in sorted(folder.parent.glob("imagenet_*.jpg")):
        label = int(re.match(r"imagenet_\d+_(\d+)\.jpg", path.name).group(1))  # type: ignore[union-attr]
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB")).copy()
        photos.append((torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0), label))
    assert len(photos) == 20
    return photos


def top1(name: str, photos: list[tuple[torch.Tensor, int]]) -> list[int]:
    backbone = resolve_backbone(name, BackboneContext(cache_dir=Path(".")))
    assert backbone.source_head is not None
    with torch.inference_mode():
        batch = torch.cat([backbone.prepare(x) for x, _ in photos])  # photos differ in size; inputs do not
        return backbone.source_head(backbone.model(batch)).argmax(1).tolist()


@pytest.mark.parametrize("family", list(real_zoo.PRETRAINED))
def test_published_weights_load_strictly_with_weights_only(family: str) -> None:
    path = require(family)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = real_zoo.build_classifier(family)
    assert set(state) == set(model.state_dict())
    model.load_state_dict(state, strict=True)
    params = sum(p.numel() for p in model.parameters())
    published = {"mobilenet-v2": 3_504_872, "efficientnet-lite0": 4.65e6, "efficientnet-lite1": 5.42e6}
    published["efficientnet-lite2"] = 6.09e6
    assert params == pytest.approx(published[family], rel=0.005)


def test_mobilenet_v2_classifies_the_sample_photos_as_torchvisions_published_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision

    path = require("mobilenet-v2")
    photos = foolbox_photos()
    ours = top1("zoo:mobilenet-v2-imagenet", photos)
    # The published model through torchvision's own loader and transforms, from the same file.
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    shutil.copy(path, tmp_path / "hub" / "checkpoints" / path.name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1
    published = torchvision.models.mobilenet_v2(weights=weights).eval()
    transform = weights.transforms()
    with torch.inference_mode():
        theirs = published(torch.cat([transform(x) for x, _ in photos])).argmax(1).tolist()
    assert ours == theirs
    correct = sum(p == label for p, (_, label) in zip(ours, photos, strict=True))
    assert correct >= 17  # measured 19/20; a broken load or preprocessing lands near 0


@pytest.mark.parametrize("family", ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"])
def test_efficientnet_lite_weights_classify_the_sample_photos(family: str) -> None:
    require(family)
    photos = foolbox_photos()
    predictions = top1(f"zoo:{family}-imagenet", photos)
    correct = sum(p == label for p, (_, label) in zip(predictions, photos, strict=True))
    assert correct >= 16, (family, correct)  # measured 17, 18, 18 of 20


def test_random_twin_is_the_same_architecture_without_the_weights() -> None:
    require("efficientnet-lite0")
    context = BackboneContext(cache_dir=Path("."))
    pretrained = resolve_backbone("zoo:efficientnet-lite0-imagenet", context)
    random = resolve_backbone("zoo:efficientnet-lite0-random", context)
    again = resolve_backbone("zoo:efficientnet-lite0-random", context)
    assert random.feature_dim == pretrained.feature_dim == 1280
    assert random.fingerprint != pretrained.fingerprint
    assert random.fingerprint == again.fingerprint  # seeded
    assert random.input_spec == pretrained.input_spec
    # Batch-norm statistics as initialised (the documented choice).
    bn = next(m for m in random.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert torch.all(bn.running_mean == 0) and torch.all(bn.running_var == 1)


def test_resolution_option_changes_the_input_only() -> None:
    require("mobilenet-v2")
    context = BackboneContext(cache_dir=Path("."))
    native = resolve_backbone("zoo:mobilenet-v2-imagenet", context)
    small = resolve_backbone("zoo:mobilenet-v2-imagenet?res=128", context)
    assert native.input_spec.size == (224, 224) and native.input_spec.resize == 256
    assert small.input_spec.size == (128, 128) and small.input_spec.resize == 146
    assert small.fingerprint == native.fingerprint


def test_a_corrupt_checkpoint_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = require("mobilenet-v2")
    corrupt = tmp_path / "weights" / path.name
    corrupt.parent.mkdir()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    monkeypatch.setattr(real_zoo, "locate_package_file", lambda package, relative: corrupt)
    with pytest.raises(CheckpointError, match="SHA-256"):
        real_zoo.checkpoint_file("mobilenet-v2")


def test_missing_packages_name_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(real_zoo, "locate_package_file", lambda package, relative: None)
    with pytest.raises(MissingWeightsError, match=re.escape(INSTALL)):
        resolve_backbone("zoo:mobilenet-v2-imagenet", BackboneContext(cache_dir=Path(os.devnull)))
