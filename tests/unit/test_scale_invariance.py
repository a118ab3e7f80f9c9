"""Nothing may depend on the features' scale: the probe (both solvers), every score, k-NN.

A randomly initialised deep network in eval mode gives features of magnitude about 1e-9 that still
carry the information; a probe that called them constant reported chance without a word. Here
features are multiplied by 10^k, k in -12..6: accuracy, scores and rankings must not move.
Degenerate features (NaN/Inf, constant) are reported naming the backbone.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reusespec import ReuseSession
from reusespec.backbones.base import Backbone, InputSpec
from reusespec.backbones.convert import module_to_backbone
from reusespec.backbones.registry import BackboneContext, register_scheme
from reusespec.config import ReuseConfig
from reusespec.errors import ReuseSpecError
from reusespec.feature_checks import (
    DegenerateFeaturesError,
    DegenerateFeaturesWarning,
    check_features,
    constant_columns,
)
from reusespec.probe import DEFAULT_GRID, _fit_probe
from reusespec.transferability import knn_accuracy, transferability_score

N_CLASSES, WIDTH = 4, 12


def relu_like_features(separation: float, seed: int, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative, offset features (as after a ReLU and pooling), with one constant column."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % N_CLASSES
    x = rng.normal(size=(n, WIDTH))
    x[np.arange(n), labels] += separation
    x = np.maximum(x + 1.0, 0.0) + 3.0
    x[:, -1] = 2.5  # a dead unit: constant at every scale
    return x.astype(np.float32), labels


def probe_accuracy(x: np.ndarray, y: np.ndarray, use_torch: bool) -> float:
    train, val, test = slice(0, 360), slice(360, 480), slice(480, None)
    fit = _fit_probe(
        x[train],
        y[train],
        x[val],
        y[val],
        num_classes=N_CLASSES,
        l2_grid=DEFAULT_GRID,
        refine=True,
        refit_on_train_val=True,
        max_iter=200,
        device="cpu",
        dtype=torch_float32(),
        use_torch=use_torch,
    )
    return float(np.mean(fit.head.logits(x[test]).argmax(1) == y[test]))


def torch_float32():  # type: ignore[no-untyped-def]
    import torch

    return torch.float32


@pytest.mark.parametrize("use_torch", [False, True], ids=["cpu-solver", "torch-solver"])
@settings(max_examples=6, deadline=None)
@given(exponent=st.integers(-12, 6), seed=st.integers(0, 2**16))
def test_probe_accuracy_does_not_depend_on_the_feature_scale(
    use_torch: bool, exponent: int, seed: int
) -> None:
    x, y = relu_like_features(2.0, seed)
    reference = probe_accuracy(x, y, use_torch)
    scaled = probe_accuracy((x * np.float32(10.0**exponent)).astype(np.float32), y, use_torch)
    assert reference > 1.5 / N_CLASSES  # informative features: well above chance
    # Rescaling rounds each feature by up to one float32 ulp; a single borderline test sample may flip.
    assert abs(scaled - reference) <= 1 / 120 + 1e-9


def test_features_of_magnitude_1e_minus_9_are_not_called_constant() -> None:
    """The reported case: per-dimension std about 1e-10 must still be probed, not zeroed."""
    x, y = relu_like_features(3.0, 0)
    tiny = (x * np.float32(1e-9)).astype(np.float32)
    assert probe_accuracy(tiny, y, use_torch=False) > 0.8
    assert probe_accuracy(tiny, y, use_torch=True) > 0.8
    assert constant_columns(tiny).tolist() == [False] * (WIDTH - 1) + [True]


FEATURE_SCORES = ("logme", "hscore", "hscore-shrink", "knn")


@settings(max_examples=8, deadline=None)
@given(exponent=st.integers(-12, 6), seed=st.integers(0, 2**16))
def test_scores_and_rankings_do_not_depend_on_the_feature_scale(exponent: int, seed: int) -> None:
    backbones = {f"sep{s}": relu_like_features(s, seed + i) for i, s in enumerate((0.0, 1.0, 2.5))}
    factor = 10.0**exponent
    for method in FEATURE_SCORES:
        plain = {name: transferability_score(method, x, y) for name, (x, y) in backbones.items()}
        scaled = {
            name: transferability_score(method, x.astype(np.float64) * factor, y)
            for name, (x, y) in backbones.items()
        }
        for name in backbones:
            assert scaled[name] == pytest.approx(plain[name], rel=1e-6, abs=1e-9), (method, name)
        assert sorted(plain, key=plain.__getitem__) == sorted(scaled, key=scaled.__getitem__), method


@settings(max_examples=6, deadline=None)
@given(exponent=st.integers(-12, 6), seed=st.integers(0, 2**16))
def test_knn_accuracy_does_not_depend_on_the_feature_scale(exponent: int, seed: int) -> None:
    x, y = relu_like_features(1.0, seed)
    plain = knn_accuracy(x[:400], y[:400], x[400:], y[400:])
    factor = np.float32(10.0**exponent)
    assert knn_accuracy(x[:400] * factor, y[:400], x[400:] * factor, y[400:]) == plain


def test_nan_features_raise_a_reusespec_error_naming_the_backbone() -> None:
    x, _ = relu_like_features(1.0, 0)
    x[3, 2] = np.nan
    with pytest.raises(DegenerateFeaturesError, match="zoo:broken") as info:
        check_features(x, "zoo:broken")
    assert isinstance(info.value, ReuseSpecError)
    x[3, 2] = np.inf
    with pytest.raises(DegenerateFeaturesError, match="1 of 600 samples"):
        check_features(x, "zoo:broken")


@pytest.mark.parametrize("value", [0.0, 1e-12, 7.0])
def test_constant_features_warn_naming_the_backbone(value: float) -> None:
    x = np.full((50, 8), value, dtype=np.float32)
    x += (
        np.float32(value)
        * np.float32(1e-8)
        * np.random.default_rng(0).normal(size=x.shape).astype(np.float32)
    )
    with pytest.warns(DegenerateFeaturesWarning, match="torchvision:dead"):
        check_features(x, "torchvision:dead")


@pytest.mark.parametrize("exponent", [-12, -9, 0, 6])
def test_informative_features_do_not_warn_at_any_scale(exponent: int) -> None:
    x, _ = relu_like_features(1.0, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_features(x * np.float32(10.0**exponent), "zoo:fine")


class _Scaled(torch.nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        # A buffer, so the factor is part of the state dict and hence of the backbone's fingerprint.
        self.register_buffer("factor", torch.tensor(factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def _scaled_backbone(spec: str, rest: str, context: BackboneContext) -> Backbone:
    """scaled:K: a seeded random MLP on pixels, its features times 10^K; 'dead' and 'nan' degenerate."""
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = [torch.nn.Flatten(), torch.nn.Linear(28 * 28, 32), torch.nn.ReLU()]
    if rest == "dead":
        layers.append(_Scaled(0.0))
    elif rest == "nan":
        layers.append(_Scaled(float("nan")))
    else:
        layers.append(_Scaled(10.0 ** int(rest)))
    spec_in = InputSpec(channels=1, size=(28, 28), mean=(0.1307,), std=(0.3081,))
    return module_to_backbone(spec, torch.nn.Sequential(*layers), spec_in)


def test_the_session_probes_tiny_features_and_names_degenerate_backbones(tmp_path: Path) -> None:
    register_scheme("scaled", _scaled_backbone)
    reuse = ReuseSession(ReuseConfig(cache_dir=tmp_path)).reuse()
    plain = reuse.probe("scaled:0", "sklearn-digits").accuracy
    tiny = reuse.probe("scaled:-9", "sklearn-digits").accuracy
    assert plain > 0.8
    assert abs(tiny - plain) <= 1 / 360 + 1e-9  # one test image at most
    ranking = reuse.rank(["scaled:0", "scaled:-9", "scaled:-12"], "sklearn-digits", method="logme")
    scores = list(ranking.scores_by_backbone.values())
    assert max(scores) - min(scores) < 1e-6 * abs(max(scores))
    with pytest.warns(DegenerateFeaturesWarning, match="scaled:dead"):
        reuse.probe("scaled:dead", "sklearn-digits")
    with pytest.raises(DegenerateFeaturesError, match="scaled:nan"):
        reuse.probe("scaled:nan", "sklearn-digits")
