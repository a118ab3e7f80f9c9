"""``hf:ID_OR_PATH[?pool=mean|cls|pooler&max_length=N&attn=IMPL]``: Hugging Face encoders, offline.

``ID_OR_PATH`` is a local directory written by ``save_pretrained`` or a model id already in the
Hugging Face cache (``HF_HOME``); nothing is downloaded unless the run allows it
(``--reuse-allow-download``). A model whose config has no image channels is a text encoder (``AutoModel`` +
``AutoTokenizer``; features are the last hidden states pooled over the attention mask, ``mean``
by default, or the first token with ``cls``). One with image channels (or a CLIP
``vision_config``) is a vision encoder (ViT, DINOv2, ConvNeXt, the vision tower of CLIP): the processor's
mean, std and sizes become its :class:`InputSpec`; features are the first token (``cls``, the
default for transformers), the mean over tokens or positions (``mean``), or the model's own
``pooler_output`` (``pooler``, the default for convolutional models). ``attn`` picks the
attention implementation transformers runs (``eager``, ``sdpa``; its default otherwise): eager
attention runs as plain matrix products, which every FLOP counter sees.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import torch
from torch import nn

from reusespec.backbones.base import Backbone, InputSpec, TextInputSpec
from reusespec.errors import MissingWeightsError, ResourceUnavailable, UnknownBackboneError
from reusespec.hashing import digest, state_dict_digest

TEXT_EXTRA = "pip install 'reusespec[text]'"
DEFAULT_MAX_LENGTH = 256
TEXT_POOLINGS = ("mean", "cls")
VISION_POOLINGS = ("cls", "mean", "pooler")
_INTERPOLATIONS = {0: "nearest", 2: "bilinear", 3: "bicubic"}  # PIL resample codes


def require_transformers() -> Any:
    """The ``transformers`` module, or ResourceUnavailable with the install command."""
    try:
        import transformers
    except ImportError:
        raise ResourceUnavailable(
            f"Hugging Face encoders need the optional 'transformers' package: {TEXT_EXTRA}"
        ) from None
    return transformers


class TextEncoder(nn.Module):
    """A Hugging Face encoder mapping packed ``(N, 2, L)`` ids+mask to pooled ``(N, hidden)`` features."""

    def __init__(self, encoder: nn.Module, pooling: str = "mean") -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        ids, mask = packed[:, 0].long(), packed[:, 1].long()
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        if self.pooling == "cls":
            first: torch.Tensor = hidden[:, 0]
            return first
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled: torch.Tensor = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return pooled

    def example_input(self, batch_size: int, input_size: tuple[int, ...]) -> torch.Tensor:
        """``batch_size`` texts of ``input_size[0]`` tokens (seeded ids, full mask), for cost counts."""
        length = int(input_size[-1])
        vocab = int(getattr(getattr(self.encoder, "config", None), "vocab_size", 2) or 2)
        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(0, vocab, (batch_size, length), generator=generator)
        return torch.stack([ids, torch.ones_like(ids)], dim=1)


class VisionEncoder(nn.Module):
    """A Hugging Face vision encoder mapping prepared images to pooled features."""

    def __init__(self, encoder: nn.Module, pooling: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.encoder(pixel_values=images)
        if self.pooling == "pooler":
            pooled: torch.Tensor = out.pooler_output
            return pooled.flatten(1)
        hidden = out.last_hidden_state
        if hidden.ndim == 4:  # convolutional feature maps (N, C, H, W)
            return hidden.mean(dim=(2, 3))
        first: torch.Tensor = hidden[:, 0] if self.pooling == "cls" else hidden.mean(dim=1)
        return first


def tokenizer_digest(tokenizer: Any) -> str:
    """A content hash of a tokenizer: its vocabulary, rules and special tokens, not where it lives."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    content = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    specials = {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())}
    return digest("tokenizer", type(tokenizer).__name__, content, specials)


def parse_hf_spec(spec: str, rest: str) -> tuple[str, dict[str, str]]:
    source, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    unknown = set(options) - {"pool", "max_length", "attn"}
    if unknown or not source:
        raise UnknownBackboneError(
            f"{spec!r}: write hf:ID_OR_PATH with optional ?pool=mean|cls|pooler, &max_length=N, "
            "&attn=eager|sdpa" + (f" (unknown option(s) {sorted(unknown)})" if unknown else "")
        )
    return source, options


def load_hf_backbone(spec: str, rest: str, allow_download: bool = False) -> Backbone:
    """Resolve ``hf:ID_OR_PATH`` (see the module docstring)."""
    source, options = parse_hf_spec(spec, rest)
    transformers = require_transformers()
    local = Path(source).expanduser()
    where = str(local) if local.is_dir() else source
    offline = not allow_download or local.is_dir()

    def load(loader: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return loader(where, local_files_only=offline, **kwargs)
        except (OSError, ValueError) as exc:
            raise MissingWeightsError(
                f"{spec}: cannot load {source!r} offline ({type(exc).__name__}: {exc}). Give a directory "
                "written by save_pretrained, put the model in the Hugging Face cache (HF_HOME), or allow "
                "downloads (--reuse-allow-download)"
            ) from None

    config = load(transformers.AutoConfig.from_pretrained)
    if _is_text_config(config):
        return _text_backbone(spec, options, load, transformers)
    return _vision_backbone(spec, options, config, load, transformers)


def _attention(options: dict[str, str]) -> dict[str, str]:
    return {"attn_implementation": options["attn"]} if "attn" in options else {}


def _is_text_config(config: Any) -> bool:
    # Vision configs (ViT, DINOv2, ConvNeXt, CLIP's vision tower) carry num_channels; CLIP's joint config
    # a vision_config. A CLIP folder also holds a tokenizer, so the files alone do not tell.
    return not hasattr(config, "num_channels") and not hasattr(config, "vision_config")


def _pooling(spec: str, options: dict[str, str], valid: tuple[str, ...], default: str) -> str:
    pooling = options.get("pool", default)
    if pooling not in valid:
        raise UnknownBackboneError(f"{spec}: pool={pooling!r}; this encoder pools with one of {valid}")
    return pooling


def text_backbone_from(
    name: str, model: nn.Module, tokenizer: Any, *, pooling: str = "mean", max_length: int = 256, meta: dict
) -> Backbone:
    """Wrap a Hugging Face text encoder and its tokenizer as a :class:`Backbone`."""
    encoder = TextEncoder(model.eval(), pooling).eval()
    input_spec = TextInputSpec(tokenizer, tokenizer_digest(tokenizer), max_length, pooling)
    with torch.inference_mode():
        feature_dim = int(encoder(input_spec.prepare(["a"])).shape[1])
    fingerprint = digest("hf-text", type(model).__name__, pooling, state_dict_digest(model.state_dict()))
    return Backbone(
        name=name,
        model=encoder,
        feature_dim=feature_dim,
        input_spec=input_spec,
        fingerprint=fingerprint,
        blocks=_layer_blocks(encoder),
        meta=dict(meta),
    )


def _text_backbone(
    spec: str, options: dict[str, str], load: Callable[..., Any], transformers: Any
) -> Backbone:
    pooling = _pooling(spec, options, TEXT_POOLINGS, "mean")
    try:
        max_length = int(options.get("max_length", DEFAULT_MAX_LENGTH))
    except ValueError:
        max_length = 0
    if max_length < 1:
        raise UnknownBackboneError(f"{spec}: max_length must be a positive whole number of tokens")
    tokenizer = load(transformers.AutoTokenizer.from_pretrained)
    model = load(transformers.AutoModel.from_pretrained, **_attention(options))
    limit = getattr(model.config, "max_position_embeddings", None)
    max_length = min(max_length, int(limit)) if isinstance(limit, int) else max_length
    meta = {"source": "hf", "model_type": model.config.model_type}
    return text_backbone_from(spec, model, tokenizer, pooling=pooling, max_length=max_length, meta=meta)


def _vision_backbone(
    spec: str, options: dict[str, str], config: Any, load: Callable[..., Any], transformers: Any
) -> Backbone:
    processor = load(transformers.AutoImageProcessor.from_pretrained)
    if getattr(config, "model_type", "") == "clip":
        model = load(transformers.CLIPVisionModel.from_pretrained, **_attention(options))
    else:
        model = load(transformers.AutoModel.from_pretrained, **_attention(options))
    input_spec = input_spec_from_processor(processor, int(getattr(model.config, "num_channels", 3)))
    convolutional = "convnext" in getattr(config, "model_type", "") or "resnet" in config.model_type
    default = "pooler" if convolutional or config.model_type == "clip" else "cls"
    encoder = VisionEncoder(model.eval(), _pooling(spec, options, VISION_POOLINGS, default)).eval()
    with torch.inference_mode():
        feature_dim = int(encoder(torch.zeros(1, *input_spec.example_shape())).shape[1])
    fingerprint = digest(
        "hf-vision", type(model).__name__, encoder.pooling, state_dict_digest(model.state_dict())
    )
    meta = {"source": "hf", "model_type": config.model_type}
    return Backbone(spec, encoder, feature_dim, input_spec, fingerprint, None, _layer_blocks(encoder), meta)


def input_spec_from_processor(processor: Any, channels: int = 3) -> InputSpec:
    """The resize, crop and normalisation of a Hugging Face image processor as an :class:`InputSpec`."""
    size = dict(getattr(processor, "size", None) or {})
    crop = (
        dict(getattr(processor, "crop_size", None) or {}) if getattr(processor, "do_center_crop", 0) else {}
    )
    interpolation = _INTERPOLATIONS.get(int(getattr(processor, "resample", 2) or 2), "bilinear")
    resize: int | None = None
    if "height" in size and "width" in size:
        out = (int(size["height"]), int(size["width"]))
    else:
        edge = int(size.get("shortest_edge", 224))
        crop_pct = getattr(processor, "crop_pct", None)
        if crop:
            resize, out = edge, (int(crop["height"]), int(crop["width"]))
        elif crop_pct and edge < 384:  # ConvNeXt: resize to edge / crop_pct, then crop the edge
            resize, out = int(edge / crop_pct), (edge, edge)
        else:
            out = (edge, edge)
    mean = tuple(float(m) for m in processor.image_mean)
    std = tuple(float(s) for s in processor.image_std)
    return InputSpec(channels, out, mean, std, resize=resize, interpolation=interpolation)


def _layer_blocks(model: nn.Module) -> list[str]:
    """The transformer layers (or stages) in forward order: the largest ``nn.ModuleList``."""
    lists = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if not lists:
        return []
    name, layers = max(lists, key=lambda item: sum(p.numel() for p in item[1].parameters()))
    return [f"{name}.{i}" for i in range(len(layers))]
