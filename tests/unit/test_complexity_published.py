"""Counted costs equal published figures, attention included however it executes.

Architectures are built at random init (no download). Published figures: torchvision's weight
metadata (``num_params``, ``_ops`` in GMACs) for its builders, the EfficientNet-Lite README for
Lite0-2. The transformers run attention through ``nn.MultiheadAttention``'s fast path (ViT) and
fused scaled-dot-product kernels (Swin, MaxViT, timm's ViT): counted as the matrix products they are.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from reusespec.complexity import measure_complexity
from reusespec.config import ReuseConfig

TORCHVISION = [
    ("vit_b_16", "IMAGENET1K_V1"),
    ("swin_t", "IMAGENET1K_V1"),
    ("maxvit_t", "IMAGENET1K_V1"),
    ("resnet50", "IMAGENET1K_V1"),
    ("mobilenet_v2", "IMAGENET1K_V1"),
    ("efficientnet_b0", "IMAGENET1K_V1"),
]


def counted(model: nn.Module, size: tuple[int, ...]) -> tuple[int, float]:
    result = measure_complexity(model, size, measure_latency=False, measure_memory=False)
    return result.params, result.gmacs


@pytest.mark.parametrize(("name", "weights"), TORCHVISION)
def test_torchvision_costs_match_their_weight_metadata(name: str, weights: str) -> None:
    meta = torchvision.models.get_model_weights(name)[weights].meta
    size = meta.get("min_size", (224, 224))
    crop = torchvision.models.get_model_weights(name)[weights].transforms().crop_size[0]
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None)
    params, gmacs = counted(model, (3, crop, crop))
    assert params == meta["num_params"]
    assert gmacs == pytest.approx(meta["_ops"], rel=0.02), (name, gmacs, meta["_ops"], size)


def test_multihead_attention_counts_the_same_on_and_off_the_fast_path() -> None:
    layer = nn.TransformerEncoderLayer(64, 4, 128, batch_first=True).eval()
    with torch.no_grad():  # eval + no_grad: the fused fast path would run
        _, fused = counted(layer, (50, 64))
    # Written out: q/k/v/out projections 4 * 50 * 64^2, QK^T and AV 2 * 50^2 * 64, the MLP 2 * 50 * 64 * 128.
    expected = 4 * 50 * 64 * 64 + 2 * 50 * 50 * 64 + 2 * 50 * 64 * 128
    assert fused * 1e9 == pytest.approx(expected, rel=1e-6)


def test_timm_vit_attention_is_counted() -> None:
    timm = pytest.importorskip("timm", reason='timm is an optional extra: pip install "reusespec[timm]"')
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    params, gmacs = counted(model, (3, 224, 224))
    tokens, width, depth = 197, 192, 12
    per_block = tokens * width * (3 * width + width + 2 * 4 * width) + 2 * tokens * tokens * width
    patch = 196 * width * 3 * 16 * 16
    assert gmacs * 1e9 == pytest.approx(depth * per_block + patch + width * 1000, rel=1e-3)
    assert params == 5_717_416  # timm's model card: 5.7M


@pytest.mark.parametrize(
    ("family", "mparams"),
    # Parameters with the 1000-class head (the TF release): 4.65M / 5.42M / 6.09M.
    [("efficientnet-lite0", 4.65), ("efficientnet-lite1", 5.42), ("efficientnet-lite2", 6.09)],
)
def test_efficientnet_lite_parameters_match_the_published_figures(family: str, mparams: float) -> None:
    pytest.importorskip("efficientnet_lite_pytorch", reason="python -m reusespec.assets install real-zoo")
    from reusespec.backbones.real_zoo import build_classifier

    params = sum(p.numel() for p in build_classifier(family).parameters())
    assert params / 1e6 == pytest.approx(mparams, rel=0.005)


def test_config_accepts_string_paths() -> None:
    config = ReuseConfig(cache_dir="some/str", data_dir="data/here")  # type: ignore[arg-type]
    assert (config.cache_dir / "features").as_posix() == "some/str/features"
    assert config.data_dir is not None and config.data_dir.name == "here"
