"""Tiny random-weight Hugging Face text models, written offline for the unit and plugin tests."""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "ran",
    "on",
    "mat",
    "park",
    "big",
    "small",
    "red",
    "blue",
    "news",
    "sport",
    "film",
    "good",
    "bad",
    "very",
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_tiny_bert(folder: Path, words: list[str] = WORDS, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(SPECIALS + words) + "\n")
    if "vocab" in inspect.signature(_transformers().BertTokenizer.__init__).parameters:  # transformers 5
        tokenizer = _transformers().BertTokenizer(vocab=str(vocab))
    else:
        tokenizer = _transformers().BertTokenizerFast(vocab_file=str(vocab))
    config = _transformers().BertConfig(
        vocab_size=len(SPECIALS) + len(words),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=24,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    _transformers().BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _transformers():  # type: ignore[no-untyped-def]
    import transformers

    return transformers
