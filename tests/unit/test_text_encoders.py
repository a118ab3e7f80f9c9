"""hf: encoders (text and vision), text feature extraction, its cache key, and modality errors.

Every model here is a tiny random-weight one built offline and written with save_pretrained.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reusespec import ReuseConfig, ReuseSession
from reusespec.backbones.registry import BackboneContext, resolve_backbone
from reusespec.errors import ModalityMismatchError, UnknownBackboneError
from reusespec.features import extract_features, feature_key
from reusespec.tasks.base import Split
from reusespec.text_features import length_sorted_batches

transformers = pytest.importorskip("transformers", reason="pip install 'reusespec[text]'")

from tiny_text_models import WORDS, write_tiny_bert  # noqa: E402


def text_split(texts: list[str], name: str = "test") -> Split:
    return Split.from_texts(name, texts, np.arange(len(texts)) % 2, parent="tiny-texts")


TEXTS = [
    "the cat sat on the mat",
    "a dog ran",
    "big red dog ran in the park very very good",
    "film",
    "the small blue cat",
    "bad news sport",
    "good film good film good film the end",
]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("hf") / "tiny-bert")


def load(spec: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return resolve_backbone(spec, BackboneContext(cache_dir=tmp_path))


def reference_mean_pooling(folder: Path, texts: list[str]) -> np.ndarray:
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.AutoModel.from_pretrained(str(folder)).eval()
    encoded = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1).float()
    return ((hidden * mask).sum(1) / mask.sum(1)).numpy()


def test_hf_text_mean_pooling_equals_direct_automodel(tiny_bert: Path, tmp_path: Path) -> None:
    backbone = load(f"hf:{tiny_bert}", tmp_path)
    assert backbone.input_spec.modality == "text"
    ours = extract_features(backbone, text_split(TEXTS), batch_size=3)
    np.testing.assert_allclose(ours, reference_mean_pooling(tiny_bert, TEXTS), rtol=1e-4, atol=1e-5)


def test_hf_text_cls_pooling_is_the_first_token(tiny_bert: Path, tmp_path: Path) -> None:
    backbone = load(f"hf:{tiny_bert}?pool=cls", tmp_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tiny_bert))
    model = transformers.AutoModel.from_pretrained(str(tiny_bert)).eval()
    with torch.no_grad():
        expected = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).last_hidden_state[:, 0]
    ours = extract_features(backbone, text_split(TEXTS), batch_size=2)
    np.testing.assert_allclose(ours, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_length_sorted_batches_restore_the_split_order(tiny_bert: Path, tmp_path: Path) -> None:
    backbone = load(f"hf:{tiny_bert}", tmp_path)
    one_by_one = np.concatenate([extract_features(backbone, text_split([t]), batch_size=1) for t in TEXTS])
    batched = extract_features(backbone, text_split(TEXTS), batch_size=4)
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-4, atol=1e-5)
    batches = length_sorted_batches(TEXTS, 3)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(TEXTS)))
    lengths = [len(TEXTS[i]) for i in np.concatenate(batches)]
    assert lengths == sorted(lengths, reverse=True)


def test_truncation_to_max_length(tiny_bert: Path, tmp_path: Path) -> None:
    backbone = load(f"hf:{tiny_bert}?max_length=5", tmp_path)
    long_text = " ".join(["dog"] * 200)  # far past the model's 64 positions
    packed = backbone.prepare([long_text, "cat"])
    assert packed.shape == (2, 2, 5)
    assert extract_features(backbone, text_split([long_text, "cat"])).shape == (2, 16)


def test_tokenizer_change_invalidates_the_feature_cache(tiny_bert: Path, tmp_path: Path) -> None:
    other = write_tiny_bert(tmp_path / "other-tokenizer", WORDS[::-1])  # same words, other ids
    # Same weights, another tokenizer: copy the first model's weights next to the other tokenizer.
    for name in ("model.safetensors", "config.json"):
        (other / name).write_bytes((tiny_bert / name).read_bytes())
    session = ReuseSession(ReuseConfig(cache_dir=tmp_path / "cache"))
    first, second = session.backbone(f"hf:{tiny_bert}"), session.backbone(f"hf:{other}")
    assert first.fingerprint == second.fingerprint  # identical weights
    split = text_split(TEXTS)
    assert feature_key(first, split) != feature_key(second, split)
    a, hit_a = session.features(first, split)
    b, hit_b = session.features(second, split)
    again, hit_again = session.features(first, split)
    assert (hit_a, hit_b, hit_again) == (False, False, True)
    assert session.extractions == 2
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, again)
    longer = session.backbone(f"hf:{tiny_bert}?max_length=8")
    assert feature_key(longer, split) != feature_key(first, split)


def test_unknown_hf_option_and_missing_model_are_clear(tmp_path: Path) -> None:
    with pytest.raises(UnknownBackboneError, match="pool"):
        load("hf:/nowhere?pooling=mean", tmp_path)
    from reusespec.errors import MissingWeightsError

    with pytest.raises(MissingWeightsError, match="offline"):
        load("hf:no-such-org/no-such-model-for-reusespec", tmp_path)


def test_text_task_on_image_backbone_and_reverse_are_clear_errors(
    tiny_bert: Path, warm_cache: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "texts"
    for label in ("pos", "neg"):
        (folder / label).mkdir(parents=True)
        for i in range(6):
            (folder / label / f"{i}.txt").write_text(f"{label} text number {i} " + WORDS[i])
    reuse = ReuseSession(ReuseConfig(cache_dir=warm_cache)).reuse()
    with pytest.raises(ModalityMismatchError, match=r"textfolder.*texts.*zoo:digits-cnn.*images"):
        reuse.probe("zoo:digits-cnn", f"textfolder:{folder}")
    with pytest.raises(ModalityMismatchError, match=r"mnist5k.*images.*hf:.*texts"):
        reuse.probe(f"hf:{tiny_bert}", "mnist5k:0-1?shots=2")
    from reusespec.finetune import finetune

    with pytest.raises(ModalityMismatchError, match="yields texts"):
        finetune(reuse.backbone("zoo:digits-cnn"), reuse.task(f"textfolder:{folder}"), strategy="full")


def write_tiny_vit(folder: Path) -> Path:
    config = transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=24,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    transformers.ViTImageProcessor(
        size={"height": 32, "width": 32}, image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.25, 0.3]
    ).save_pretrained(folder)
    return folder


def test_hf_vision_mean_pooling_equals_direct_automodel(tmp_path: Path) -> None:
    folder = write_tiny_vit(tmp_path / "tiny-vit")
    backbone = load(f"hf:{folder}?pool=mean", tmp_path)
    spec = backbone.input_spec
    assert spec.modality == "image"
    assert (spec.channels, spec.size, spec.mean, spec.std) == (3, (32, 32), (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    images = torch.randint(
        0, 256, (5, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    split = Split.from_arrays("test", images, np.zeros(5), parent="tiny-images")
    ours = extract_features(backbone, split)
    processor = transformers.AutoImageProcessor.from_pretrained(str(folder))
    pixels = processor(list(images.permute(0, 2, 3, 1).numpy()), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = transformers.AutoModel.from_pretrained(str(folder))(pixel_values=pixels).last_hidden_state
    np.testing.assert_allclose(ours, expected.mean(1).numpy(), rtol=1e-3, atol=1e-4)
    cls = load(f"hf:{folder}", tmp_path)  # transformers default to the first token
    np.testing.assert_allclose(extract_features(cls, split), expected[:, 0].numpy(), rtol=1e-3, atol=1e-4)


def test_partial_finetune_trains_the_last_transformer_layers(tiny_bert: Path, tmp_path: Path) -> None:
    folder = tmp_path / "texts"
    for label, word in (("animals", "cat dog"), ("colours", "red blue")):
        (folder / label).mkdir(parents=True)
        for i in range(8):
            (folder / label / f"{i}.txt").write_text(f"{word} {WORDS[i]} {WORDS[-i]}")
    reuse = ReuseSession(ReuseConfig(cache_dir=tmp_path / "cache")).reuse()
    backbone = reuse.backbone(f"hf:{tiny_bert}")
    assert backbone.blocks == ["encoder.encoder.layer.0", "encoder.encoder.layer.1"]
    outcome = reuse.finetune(
        f"hf:{tiny_bert}", f"textfolder:{folder}", strategy="partial", unfreeze=1, epochs=2
    )
    layer = sum(
        p.numel()
        for p in transformers.AutoModel.from_pretrained(str(tiny_bert)).encoder.layer[1].parameters()
    )
    head = backbone.feature_dim * 2 + 2
    assert outcome.run.trainable_params == layer + head
    for strategy in ("head-only", "full", "lp-ft"):
        result = reuse.finetune(f"hf:{tiny_bert}", f"textfolder:{folder}", strategy=strategy, epochs=2)
        assert 0.0 <= result.run.accuracy <= 1.0


def test_hf_clip_folder_gives_its_vision_tower(tmp_path: Path) -> None:
    folder = tmp_path / "tiny-clip"
    text = {"vocab_size": 40, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 1}
    vision = {"image_size": 32, "patch_size": 8, "hidden_size": 16, "intermediate_size": 24}
    config = transformers.CLIPConfig(
        text_config={**text, "num_attention_heads": 2},
        vision_config={**vision, "num_hidden_layers": 2, "num_attention_heads": 2},
        projection_dim=8,
    )
    torch.manual_seed(0)
    transformers.CLIPModel(config).save_pretrained(folder)
    transformers.CLIPImageProcessor(
        size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(folder)
    backbone = load(f"hf:{folder}", tmp_path)
    assert backbone.input_spec.modality == "image"
    assert (backbone.input_spec.resize, backbone.input_spec.size) == (36, (32, 32))
    assert backbone.input_spec.interpolation == "bicubic"  # CLIP's processor resamples bicubically
    prepared = backbone.prepare(torch.randint(0, 256, (2, 3, 40, 48), dtype=torch.uint8))
    with torch.no_grad():
        tower = transformers.CLIPVisionModel.from_pretrained(str(folder)).eval()
        expected = tower(pixel_values=prepared).pooler_output
        ours = backbone.model(prepared)
    torch.testing.assert_close(ours, expected)
