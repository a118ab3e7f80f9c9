"""Factory and loader failures are wrapped with the backbone string and their cause."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from reusespec.backbones.registry import BackboneContext, resolve_backbone
from reusespec.errors import ReuseSpecError, UnknownBackboneError
from reusespec.features import extract_features
from reusespec.tasks.base import Split

FACTORIES = """
import torch
from torch import nn
from reusespec import InputSpec

GRAY = InputSpec(channels=1, size=(8, 8), mean=(0.5,), std=(0.5,))
RGB = InputSpec(channels=3, size=(8, 8), mean=(0.5,) * 3, std=(0.5,) * 3)


class Pair(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x):
        y = self.conv(x).mean(dim=(2, 3))
        return y, y


class Named(Pair):
    def forward(self, x):
        return {"features": self.conv(x).mean(dim=(2, 3))}


class PairClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 6))
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(self.body(x)), "aux"


def returns_tuple():
    return Pair(), GRAY


def returns_dict():
    return Named(), GRAY


def classifier_returning_a_tuple():
    return PairClassifier(), GRAY


def channel_mismatch():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()), RGB


def raises():
    raise KeyError("weights_path not configured")
"""


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"rs_failing_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def resolve(spec: str, tmp_path: Path) -> Any:
    return resolve_backbone(spec, BackboneContext(cache_dir=tmp_path / "cache"))


@pytest.mark.parametrize(("factory", "returned"), [("returns_tuple", "tuple"), ("returns_dict", "dict")])
def test_a_forward_returning_a_tuple_or_dict_is_explained(
    factories: str, tmp_path: Path, factory: str, returned: str
) -> None:
    spec = f"{factories}:{factory}"
    with pytest.raises(ReuseSpecError) as info:
        resolve(spec, tmp_path)
    assert spec in str(info.value) and f"returned a {returned}" in str(info.value)


def test_a_classifier_whose_forward_returns_a_tuple_is_explained_at_extraction(
    factories: str, tmp_path: Path
) -> None:
    spec = f"{factories}:classifier_returning_a_tuple"
    backbone = resolve(spec, tmp_path)
    backbone.model.forward = lambda x: (backbone.model.body(x), "aux")  # type: ignore[method-assign]
    images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    split = Split.from_arrays("test", images, np.arange(4) % 2, "zeros")
    with pytest.raises(ReuseSpecError, match="returned a tuple") as info:
        extract_features(backbone, split)
    assert spec in str(info.value)


def test_a_channel_mismatch_between_input_spec_and_model_is_explained(factories: str, tmp_path: Path) -> None:
    spec = f"{factories}:channel_mismatch"
    with pytest.raises(ReuseSpecError) as info:
        resolve(spec, tmp_path)
    message = str(info.value)
    assert spec in message and "channels=3" in message and "InputSpec" in message
    assert isinstance(info.value.__cause__, RuntimeError)


def test_a_factory_that_raises_is_wrapped_with_the_string_and_the_cause(
    factories: str, tmp_path: Path
) -> None:
    spec = f"{factories}:raises"
    with pytest.raises(ReuseSpecError) as info:
        resolve(spec, tmp_path)
    message = str(info.value)
    assert spec in message and "KeyError" in message and "weights_path not configured" in message
    assert isinstance(info.value.__cause__, KeyError)


def test_a_typo_in_a_module_name_says_the_import_failed(tmp_path: Path) -> None:
    with pytest.raises(UnknownBackboneError) as info:
        resolve("reusespec.backbones.zooo:factory", tmp_path)
    message = str(info.value)
    assert "Importing 'reusespec.backbones.zooo' failed" in message and "misspelt" in message


@pytest.mark.parametrize("spec", [":S", ".:odd", "..:x", "a..b:c", "1abc:f", "x y:f", "\x00:f", ":", "::"])
def test_odd_strings_are_unknown_backbones(tmp_path: Path, spec: str) -> None:
    with pytest.raises(UnknownBackboneError):
        resolve(spec, tmp_path)
