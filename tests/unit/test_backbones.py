"""Loading backbones from every kind of backbone string, on files written in their real formats.

- ``torchvision:NAME``: a weights file placed where torchvision caches downloads
  (``$TORCH_HOME/hub/checkpoints/<file name of the weights URL>``);
- ``file:PATH``: safetensors and ``torch.save`` checkpoints, wrapped, renamed, finetuned to
  another label set, broken, headless, and a pickle that would run code when loaded;
- ``package.module:factory``: modules written to a temporary directory on ``sys.path``;
- head and block discovery on torchvision's families (built without weights).
"""

from __future__ import annotations

import copy
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn
from torchvision.models import EfficientNet_B1_Weights, MobileNet_V3_Small_Weights

from reusespec.backbones.base import Backbone, InputSpec
from reusespec.backbones.convert import classifier_to_backbone, find_blocks, find_head
from reusespec.backbones.registry import BackboneContext, resolve_backbone
from reusespec.backbones.torchvision_models import input_spec_for
from reusespec.backbones.zoo import MNIST_INPUT, DigitsCNN
from reusespec.errors import (
    CheckpointError,
    MissingWeightsError,
    ResourceUnavailable,
    ReuseSpecError,
    UnknownBackboneError,
    UnsafeCheckpointError,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def resolve(spec: str, tmp_path: Path, trusted: tuple[Path, ...] = ()) -> Backbone:
    return resolve_backbone(spec, BackboneContext(cache_dir=tmp_path / "cache", trusted_pickles=trusted))


def assert_same_state(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> None:
    assert sorted(expected) == sorted(actual)
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key


def full_state(backbone: Backbone) -> dict[str, torch.Tensor]:
    """The loaded classifier's state: the feature extractor's plus the removed head's."""
    head = find_head_name(backbone)
    state = {k: v for k, v in backbone.model.state_dict().items()}
    assert backbone.source_head is not None
    state.update({f"{head}.{k}": v for k, v in backbone.source_head.state_dict().items()})
    return state


def find_head_name(backbone: Backbone) -> str:
    names = [n for n, m in backbone.model.named_modules() if isinstance(m, nn.Identity)]
    assert len(names) == 1, names
    return names[0]


# --- torchvision:NAME --------------------------------------------------------------------------


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    assert Path(torch.hub.get_dir()) == home / "hub"  # nobody called torch.hub.set_dir in this process
    return home


def mobilenet_weights_file(torch_home: Path) -> Path:
    return torch_home / "hub" / "checkpoints" / os.path.basename(MobileNet_V3_Small_Weights.DEFAULT.url)


def test_torchvision_weights_are_read_from_torch_home(torch_home: Path, tmp_path: Path) -> None:
    torch.manual_seed(123)  # unlike the seed-0 random init the loader starts from
    source = torchvision.models.get_model("mobilenet_v3_small", weights=None).eval()
    path = mobilenet_weights_file(torch_home)
    path.parent.mkdir(parents=True)
    torch.save(source.state_dict(), path)

    backbone = resolve("torchvision:mobilenet_v3_small", tmp_path)

    assert_same_state(source.state_dict(), full_state(backbone))
    untrained = resolve("torchvision:mobilenet_v3_small:none", tmp_path)
    assert backbone.fingerprint != untrained.fingerprint
    transforms: Any = MobileNet_V3_Small_Weights.DEFAULT.transforms()
    spec = backbone.input_spec
    assert spec.size == (transforms.crop_size[0], transforms.crop_size[0])
    assert spec.resize == transforms.resize_size[0]
    assert spec.mean == pytest.approx(transforms.mean) and spec.std == pytest.approx(transforms.std)
    assert spec.interpolation == transforms.interpolation.value
    images = torch.randint(0, 256, (2, 3, 97, 131), dtype=torch.uint8)
    with torch.inference_mode():
        inputs = backbone.prepare(images)
        features = backbone.model(inputs)
        assert backbone.source_head is not None
        assert torch.allclose(backbone.source_head(features), source(inputs), atol=1e-5)
    assert inputs.shape == (2, 3, *spec.size)
    assert features.shape == (2, backbone.feature_dim)


def test_input_spec_is_the_weights_own() -> None:
    """EfficientNet-B1's two weights differ in resize and interpolation; each spec follows its weights."""
    for weights in (EfficientNet_B1_Weights.IMAGENET1K_V1, EfficientNet_B1_Weights.IMAGENET1K_V2):
        transforms: Any = weights.transforms()
        spec = input_spec_for(weights)
        assert (spec.size, spec.resize, spec.interpolation) == (
            (transforms.crop_size[0],) * 2,
            transforms.resize_size[0],
            transforms.interpolation.value,
        )
    assert input_spec_for(EfficientNet_B1_Weights.IMAGENET1K_V1) != input_spec_for(
        EfficientNet_B1_Weights.IMAGENET1K_V2
    )


def test_missing_torchvision_weights_name_the_path_and_the_remedies(torch_home: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError) as info:
        resolve("torchvision:mobilenet_v3_small", tmp_path)
    message = str(info.value)
    assert str(mobilenet_weights_file(torch_home)) in message
    assert "Put the file there" in message  # remedy 1: place the file
    assert "TORCH_HOME" in message  # remedy 2: point at the folder holding it
    assert "--reuse-allow-download" in message  # remedy 3: allow the download
    assert isinstance(info.value, ResourceUnavailable)  # the plugin skips, not fails


def test_truncated_torchvision_weights_are_a_checkpoint_error(torch_home: Path, tmp_path: Path) -> None:
    path = mobilenet_weights_file(torch_home)
    path.parent.mkdir(parents=True)
    torch.save(torchvision.models.get_model("mobilenet_v3_small", weights=None).state_dict(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated") as info:
        resolve("torchvision:mobilenet_v3_small", tmp_path)
    assert str(path) in str(info.value)


def test_unknown_torchvision_names_list_what_exists(tmp_path: Path) -> None:
    with pytest.raises(UnknownBackboneError, match="list_models"):
        resolve("torchvision:resnet19", tmp_path)
    with pytest.raises(UnknownBackboneError, match="IMAGENET1K_V1"):
        resolve("torchvision:mobilenet_v3_small:IMAGENET22K", tmp_path)


# --- file:PATH ---------------------------------------------------------------------------------


def digits_cnn(seed: int, num_classes: int = 5) -> DigitsCNN:
    torch.manual_seed(seed)
    model = DigitsCNN(16, num_classes=num_classes)
    with torch.no_grad():  # BatchNorm buffers that differ from a fresh model's, so loading them shows
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def save_safetensors(state: dict[str, torch.Tensor], path: Path, arch: str | None = None) -> Path:
    metadata = {"reusespec.arch": arch} if arch else None
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata=metadata)
    return path


def test_safetensors_with_the_architecture_in_its_metadata(tmp_path: Path) -> None:
    model = digits_cnn(1)
    path = save_safetensors(model.state_dict(), tmp_path / "cnn.safetensors", arch="zoo:digits-cnn")
    backbone = resolve(f"file:{path}", tmp_path)
    assert_same_state(model.state_dict(), full_state(backbone))
    assert backbone.input_spec == MNIST_INPUT
    assert backbone.meta["arch"] == "zoo:digits-cnn" and not backbone.meta["headless"]
    assert resolve(f"file:{path}", tmp_path).fingerprint == backbone.fingerprint


def test_safetensors_with_an_explicit_architecture(tmp_path: Path) -> None:
    model = digits_cnn(2)
    path = save_safetensors(model.state_dict(), tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match=r"\?arch="):
        resolve(f"file:{path}", tmp_path)
    backbone = resolve(f"file:{path}?arch=zoo:digits-cnn", tmp_path)
    assert_same_state(model.state_dict(), full_state(backbone))


def test_pt_state_dicts_plain_and_wrapped_with_module_prefixes(tmp_path: Path) -> None:
    model = digits_cnn(3)
    plain = tmp_path / "plain.pt"
    torch.save(model.state_dict(), plain)
    wrapped = tmp_path / "wrapped.pth"  # as DataParallel/DDP training scripts save them
    torch.save({"epoch": 7, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, wrapped)
    for path in (plain, wrapped):
        backbone = resolve(f"file:{path}?arch=zoo:digits-cnn", tmp_path)
        assert_same_state(model.state_dict(), full_state(backbone))
    # The same weights in another format are the same backbone to every cache.
    safetensors = save_safetensors(model.state_dict(), tmp_path / "same.safetensors", "zoo:digits-cnn")
    assert resolve(f"file:{plain}?arch=zoo:digits-cnn", tmp_path).fingerprint == (
        resolve(f"file:{safetensors}", tmp_path).fingerprint
    )


def test_a_model_finetuned_to_another_label_set_gets_its_head_resized(tmp_path: Path) -> None:
    model = digits_cnn(4, num_classes=10)
    path = save_safetensors(model.state_dict(), tmp_path / "ten.safetensors", arch="zoo:digits-cnn")
    backbone = resolve(f"file:{path}", tmp_path)
    assert backbone.source_head is not None and backbone.source_head.out_features == 10
    assert_same_state(model.state_dict(), full_state(backbone))
    images = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    with torch.inference_mode():
        inputs = backbone.prepare(images)
        assert torch.allclose(backbone.source_head(backbone.model(inputs)), model(inputs), atol=1e-5)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("drop", "features.0.0.weight"),
        ("add", "features.9.weight"),
        ("reshape", "features.1.0.weight"),
    ],
)
def test_checkpoints_that_do_not_fit_name_the_keys(tmp_path: Path, change: str, named: str) -> None:
    state = dict(digits_cnn(5).state_dict())
    if change == "drop":
        del state[named]
    elif change == "add":
        state[named] = torch.zeros(3)
    else:
        state[named] = torch.zeros(8, 8, 3, 3)
    path = save_safetensors(state, tmp_path / f"{change}.safetensors", arch="zoo:digits-cnn")
    with pytest.raises(CheckpointError) as info:
        resolve(f"file:{path}", tmp_path)
    assert named in str(info.value) and str(path) in str(info.value)


def test_a_headless_checkpoint_loads_without_a_source_head(tmp_path: Path) -> None:
    model = digits_cnn(6)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("classifier.")}
    path = save_safetensors(state, tmp_path / "headless.safetensors", arch="zoo:digits-cnn")
    backbone = resolve(f"file:{path}", tmp_path)
    assert backbone.source_head is None and backbone.meta["headless"]
    assert_same_state(state, backbone.model.state_dict())
    images = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    with torch.inference_mode():
        inputs = backbone.prepare(images)
        assert torch.allclose(backbone.model(inputs), model.features(inputs), atol=1e-6)
    # Its identity must not depend on the random init of the head it lacks.
    assert resolve(f"file:{path}", tmp_path).fingerprint == backbone.fingerprint


class RunsCodeWhenLoaded:
    """Unpickling this calls ``os.mkdir(marker)``: a stand-in for any code a pickle can run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def test_a_pickle_that_runs_code_is_refused_unless_trusted(tmp_path: Path) -> None:
    model = digits_cnn(7)
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": model.state_dict(), "extra": RunsCodeWhenLoaded(marker)}, path)

    with pytest.raises(UnsafeCheckpointError) as info:
        resolve(f"file:{path}?arch=zoo:digits-cnn", tmp_path)
    assert not marker.exists()
    assert str(path) in str(info.value) and "--reuse-trust-pickle" in str(info.value)

    backbone = resolve(f"file:{path}?arch=zoo:digits-cnn", tmp_path, trusted=(path,))
    assert marker.exists()  # the opt-in really unpickles the file, with whatever it runs
    assert_same_state(model.state_dict(), full_state(backbone))


def test_missing_and_truncated_checkpoint_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        resolve(f"file:{tmp_path / 'nowhere.safetensors'}", tmp_path)
    state = digits_cnn(8).state_dict()
    for path in (tmp_path / "cut.safetensors", tmp_path / "cut.pt"):
        if path.suffix == ".pt":
            torch.save(state, path)
        else:
            save_safetensors(state, path, arch="zoo:digits-cnn")
        path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
        with pytest.raises(CheckpointError) as info:
            resolve(f"file:{path}?arch=zoo:digits-cnn", tmp_path)
        assert str(path) in str(info.value)
        assert not isinstance(info.value, UnsafeCheckpointError)


# --- package.module:factory --------------------------------------------------------------------

FACTORIES = """
import torch
from torch import nn

from reusespec import Backbone, InputSpec

SPEC = InputSpec(channels=1, size=(8, 8), mean=(0.5,), std=(0.25,))


class Classifier(nn.Module):
    input_spec = SPEC

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.ReLU())
        self.fc = nn.Linear(12, 3)

    def forward(self, x):
        return self.fc(self.body(x))


def classifier():
    return Classifier()


def pair():
    return nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()), SPEC


def headless():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 9))
    model.input_spec = SPEC
    return model


def ready():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    return Backbone(name="mine", model=model, feature_dim=5, input_spec=SPEC, fingerprint="fixed")


def no_spec():
    return nn.Linear(64, 3)


def not_a_model():
    return 42
"""


@pytest.fixture
def factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of factories, importable under a name no other test uses."""
    name = f"rs_factories_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_factory_returning_a_classifier_with_an_input_spec(factory_module: str, tmp_path: Path) -> None:
    backbone = resolve(f"{factory_module}:classifier", tmp_path)
    assert backbone.feature_dim == 12
    assert backbone.source_head is not None and backbone.source_head.out_features == 3
    assert backbone.input_spec.size == (8, 8)
    assert backbone.model(torch.zeros(4, 1, 8, 8)).shape == (4, 12)
    # Factories that initialise randomly give the same weights, hence the same identity, every time.
    assert resolve(f"{factory_module}:classifier", tmp_path).fingerprint == backbone.fingerprint


def test_factory_returning_a_module_and_spec_pair(factory_module: str, tmp_path: Path) -> None:
    backbone = resolve(f"{factory_module}:pair", tmp_path)
    assert backbone.feature_dim == 6  # found by a dry run: the module has no head
    assert backbone.source_head is None
    assert backbone.model(backbone.prepare(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))).shape == (2, 6)


def test_factory_returning_a_headless_module(factory_module: str, tmp_path: Path) -> None:
    backbone = resolve(f"{factory_module}:headless", tmp_path)
    assert backbone.feature_dim == 9 and backbone.source_head is None


def test_factory_returning_a_backbone(factory_module: str, tmp_path: Path) -> None:
    backbone = resolve(f"{factory_module}:ready", tmp_path)
    assert backbone.name == f"{factory_module}:ready"
    assert (backbone.feature_dim, backbone.fingerprint) == (5, "fixed")


def test_factory_results_reusespec_cannot_use_are_explained(factory_module: str, tmp_path: Path) -> None:
    with pytest.raises(ReuseSpecError, match="input_spec"):
        resolve(f"{factory_module}:no_spec", tmp_path)
    with pytest.raises(ReuseSpecError, match="returned int"):
        resolve(f"{factory_module}:not_a_model", tmp_path)
    with pytest.raises(UnknownBackboneError, match="no callable 'nothing_here'"):
        resolve(f"{factory_module}:nothing_here", tmp_path)


def test_unknown_backbone_lists_the_schemes(tmp_path: Path) -> None:
    for spec in ("rs_no_such_module_anywhere:factory", "just-a-name", "no_such_pkg.sub:factory"):
        with pytest.raises(UnknownBackboneError) as info:
            resolve(spec, tmp_path)
        message = str(info.value)
        assert spec in message
        assert all(
            scheme in message for scheme in ("torchvision:", "file:", "zoo:", "package.module:factory")
        )


def test_a_factory_module_that_fails_to_import_shows_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The missing dependency's name is a prefix of the module's own: still the module's error.
    name = f"rs_broken_{uuid.uuid4().hex[:8]}"
    dependency = name[: len("rs_broken_") + 4]
    (tmp_path / f"{name}.py").write_text(f"import {dependency}\n\ndef factory():\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        resolve(f"{name}:factory", tmp_path)
    assert info.value.name == dependency


# --- head and blocks of torchvision's families -------------------------------------------------


def small_vit() -> nn.Module:
    return torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=3, num_heads=2, hidden_dim=32, mlp_dim=64
    )


def small_convnext() -> nn.Module:
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    return ConvNeXt([CNBlockConfig(16, 32, 2), CNBlockConfig(32, None, 2)])


FAMILIES = {
    "resnet18": (lambda: torchvision.models.get_model("resnet18", weights=None), 64),
    "mobilenet_v3_small": (lambda: torchvision.models.get_model("mobilenet_v3_small", weights=None), 64),
    "efficientnet_b0": (lambda: torchvision.models.get_model("efficientnet_b0", weights=None), 64),
    "regnet_y_400mf": (lambda: torchvision.models.get_model("regnet_y_400mf", weights=None), 64),
    "convnext": (small_convnext, 64),
    "vit": (small_vit, 32),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_head_removal_and_blocks_of_torchvision_families(family: str) -> None:
    build, side = FAMILIES[family]
    torch.manual_seed(0)
    model = build().eval()
    original = copy.deepcopy(model)
    head = find_head(model)
    blocks = find_blocks(model, head)
    x = torch.randn(2, 3, side, side)

    backbone = classifier_to_backbone(family, model, MNIST_INPUT)
    with torch.inference_mode():
        features = backbone.model(x)
        assert features.shape == (2, backbone.feature_dim)
        assert backbone.source_head is not None
        # Removing the head keeps everything before it: features then head give the original logits.
        assert torch.allclose(backbone.source_head(features), original(x), atol=1e-4)
    assert list(backbone.blocks) == blocks

    # Blocks: distinct modules outside the head, with parameters, run once each in the listed order,
    # together holding nearly all of the feature extractor's parameters.
    assert len(blocks) >= 3
    modules = [backbone.model.get_submodule(name) for name in blocks]
    assert not any(b == head or b.startswith(head + ".") for b in blocks)
    assert not any(a.startswith(b + ".") for a in blocks for b in blocks)
    calls: list[str] = []
    hooks = [
        m.register_forward_hook(lambda *_, name=name: calls.append(name))
        for name, m in zip(blocks, modules, strict=True)
    ]
    with torch.inference_mode():
        backbone.model(x)
    for hook in hooks:
        hook.remove()
    assert calls == blocks
    in_blocks = sum(p.numel() for m in modules for p in m.parameters())
    assert in_blocks >= 0.95 * sum(p.numel() for p in backbone.model.parameters())


def test_a_model_without_a_recognisable_head_says_what_to_do() -> None:
    with pytest.raises(ReuseSpecError, match=r"reusespec\.Backbone"):
        find_head(torchvision.models.get_model("squeezenet1_1", weights=None))


def test_input_spec_prepares_any_image_batch() -> None:
    spec = InputSpec(channels=3, size=(16, 16), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resize=20)
    grey = torch.full((2, 1, 30, 40), 255, dtype=torch.uint8)
    prepared = spec.prepare(grey)
    assert prepared.shape == (2, 3, 16, 16)
    assert torch.allclose(prepared, torch.ones_like(prepared))  # white (1.0) normalised: (1 - .5) / .5
