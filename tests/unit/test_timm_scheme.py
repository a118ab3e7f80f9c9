"""``timm:NAME``: the resolved backbone computes what timm's own model computes, offline.

Models are timm's tiny test architectures at a random init, saved to a local file (no network);
the scheme must load that file strictly, give timm's pre-logits as features and timm's logits
through its source head, and turn the pretrained config into timm's own eval transform.
Entry points: a package on sys.path that declares a ``reusespec.schemes`` / ``reusespec.tasks``
entry point is picked up without any registration call.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from reusespec.backbones.registry import BackboneContext, build_architecture, resolve_backbone
from reusespec.errors import CheckpointError, MissingWeightsError, ResourceUnavailable, UnknownBackboneError

timm = pytest.importorskip("timm", reason='timm is an optional extra: pip install "reusespec[timm]"')

NAMES = ["test_resnet.r160_in1k", "test_vit.r160_in1k", "test_efficientnet.r160_in1k"]


def saved_reference(name: str, tmp_path: Path, seed: int = 7) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(seed)
    reference = timm.create_model(name, pretrained=False).eval()
    path = tmp_path / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    return reference, path


@pytest.mark.parametrize("name", NAMES)
def test_scheme_output_equals_timms_own_model(name: str, tmp_path: Path) -> None:
    reference, path = saved_reference(name, tmp_path)
    backbone = resolve_backbone(f"timm:{name}?file={path}", BackboneContext(cache_dir=tmp_path))
    x = torch.randn(2, 3, *backbone.input_spec.size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected_features = reference.forward_head(reference.forward_features(x), pre_logits=True)
        features = backbone.model(x)
        assert features.shape == (2, backbone.feature_dim)
        torch.testing.assert_close(features, expected_features)
        assert backbone.source_head is not None
        torch.testing.assert_close(backbone.source_head(features), reference(x))


@pytest.mark.parametrize("name", NAMES)
def test_input_spec_is_timms_eval_transform(name: str, tmp_path: Path) -> None:
    from torchvision import transforms

    reference, path = saved_reference(name, tmp_path)
    config = timm.data.resolve_data_config({}, model=reference)
    transform = timm.data.create_transform(**config, is_training=False)
    resize = next(t for t in transform.transforms if isinstance(t, transforms.Resize))
    crop = next(t for t in transform.transforms if isinstance(t, transforms.CenterCrop))
    normalize = next(t for t in transform.transforms if isinstance(t, transforms.Normalize))
    spec = resolve_backbone(f"timm:{name}?file={path}", BackboneContext(cache_dir=tmp_path)).input_spec
    assert spec.resize == (resize.size if isinstance(resize.size, int) else resize.size[0])
    assert list(spec.size) == list(crop.size)
    assert spec.mean == pytest.approx(tuple(float(m) for m in normalize.mean))
    assert spec.std == pytest.approx(tuple(float(m) for m in normalize.std))
    assert spec.interpolation == resize.interpolation.value


def test_weights_come_from_the_hugging_face_cache_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    name = NAMES[0]
    reference, path = saved_reference(name, tmp_path)
    hub_id = timm.models.get_pretrained_cfg(name).hf_hub_id
    repo = tmp_path / "hub" / f"models--{hub_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(path.read_bytes())
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    backbone = resolve_backbone(f"timm:{name}", BackboneContext(cache_dir=tmp_path))
    x = torch.randn(1, 3, *backbone.input_spec.size)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.source_head(backbone.model(x)), reference(x))  # type: ignore[misc]


def test_missing_weights_skip_instead_of_downloading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(MissingWeightsError, match="allow-download"):
        resolve_backbone(f"timm:{NAMES[0]}", BackboneContext(cache_dir=tmp_path))


def test_random_init_and_bad_files_and_names(tmp_path: Path) -> None:
    context = BackboneContext(cache_dir=tmp_path)
    first = resolve_backbone(f"timm:{NAMES[1]}?weights=none", context)
    second = resolve_backbone(f"timm:{NAMES[1]}?weights=none", context)
    assert first.fingerprint == second.fingerprint  # seeded: caches stay valid across runs
    _, resnet_file = saved_reference(NAMES[0], tmp_path)
    with pytest.raises(CheckpointError, match="does not fit"):
        resolve_backbone(f"timm:{NAMES[1]}?file={resnet_file}", context)
    with pytest.raises(UnknownBackboneError, match="list_models"):
        resolve_backbone("timm:no_such_model_anywhere?weights=none", context)
    with pytest.raises(UnknownBackboneError, match="unknown option"):
        resolve_backbone(f"timm:{NAMES[0]}?pretrained=1", context)
    model, spec = build_architecture(f"timm:{NAMES[1]}")
    assert spec.size == first.input_spec.size and isinstance(model, torch.nn.Module)


def test_missing_timm_is_a_skip_naming_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    with pytest.raises(ResourceUnavailable, match=r"reusespec\[timm\]"):
        resolve_backbone(f"timm:{NAMES[0]}", BackboneContext(cache_dir=tmp_path))


def test_a_package_adds_a_scheme_and_a_task_through_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fakeplugin.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            import torch
            from reusespec.backbones.base import InputSpec
            from reusespec.backbones.convert import module_to_backbone
            from reusespec.tasks.base import Split, Task

            def load(spec, rest, context):
                model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, int(rest)))
                return module_to_backbone(spec, model, InputSpec(1, (4, 4), (0.0,), (1.0,)))

            def squares(selector, *, seed, val_fraction):
                images = torch.zeros(6, 1, 4, 4, dtype=torch.uint8)
                images[::2, :, :2, :2] = 255
                labels = np.arange(6) % 2
                split = lambda name: Split.from_arrays(name, images, labels, "squares")
                return Task("squares", ["a", "b"], split("train"), split("val"), split("test"))
            """
        )
    )
    dist = tmp_path / "fakeplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[reusespec.schemes]\nfakescheme = fakeplugin:load\n\n"
        "[reusespec.tasks]\nsquares = fakeplugin:squares\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    backbone = resolve_backbone("fakescheme:5", BackboneContext(cache_dir=tmp_path))
    assert backbone.feature_dim == 5

    from reusespec.tasks.registry import known_task_names, load_task

    task = load_task("squares")
    assert task.num_classes == 2 and len(task.train) == 6
    assert "squares" in known_task_names()
