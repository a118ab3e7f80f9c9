"""Text corruptions: seeded, independent of batching, and changing more text at higher severity."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reusespec.text_corruptions import TEXT_CORRUPTIONS, changed_words, corrupt_texts

SENTENCE = "The quick brown Fox jumps over the lazy dog while seven wizards quietly hex the jovial judge"
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC", min_size=1, max_size=9)
texts = st.lists(words, min_size=1, max_size=40).map(" ".join)


@settings(max_examples=25, deadline=None)
@given(text=texts, seed=st.integers(0, 2**31), name=st.sampled_from(TEXT_CORRUPTIONS))
def test_changes_grow_with_severity_and_repeat_per_seed(text: str, seed: int, name: str) -> None:
    outputs = [corrupt_texts([text], name, severity, seed)[0] for severity in (1, 2, 3, 4, 5)]
    assert outputs == [corrupt_texts([text], name, severity, seed)[0] for severity in (1, 2, 3, 4, 5)]
    amounts = [changed_words(text, out) for out in outputs]
    assert amounts == sorted(amounts)


@pytest.mark.parametrize("name", TEXT_CORRUPTIONS)
def test_severity_five_changes_more_than_one_on_a_corpus(name: str) -> None:
    corpus = [f"{SENTENCE} number {i}" for i in range(50)]
    mild = sum(changed_words(t, c) for t, c in zip(corpus, corrupt_texts(corpus, name, 1, 0), strict=True))
    strong = sum(changed_words(t, c) for t, c in zip(corpus, corrupt_texts(corpus, name, 5, 0), strict=True))
    assert 0 < mild < strong


@pytest.mark.parametrize("name", TEXT_CORRUPTIONS)
def test_output_depends_on_position_not_batching(name: str) -> None:
    corpus = [SENTENCE] * 6
    whole = corrupt_texts(corpus, name, 4, seed=3)
    pieces = corrupt_texts(corpus[:2], name, 4, seed=3) + corrupt_texts(
        corpus[2:], name, 4, 3, indices=[2, 3, 4, 5]
    )
    assert whole == pieces
    assert len(set(whole)) > 1  # same text, different positions: different draws
    assert corrupt_texts(corpus, name, 4, seed=4) != whole


def test_word_dropout_keeps_a_word_and_casing_only_changes_case() -> None:
    assert corrupt_texts(["alone"], "word_dropout", 5, 0) == ["alone"]
    cased = corrupt_texts([SENTENCE], "casing", 5, 0)[0]
    assert cased.lower() == SENTENCE.lower() and cased != SENTENCE


def test_bad_arguments_name_the_valid_values() -> None:
    with pytest.raises(ValueError, match="typos"):
        corrupt_texts(["x"], "gaussian_noise", 1)
    with pytest.raises(ValueError, match="1 to 5"):
        corrupt_texts(["x"], "typos", 6)
    with pytest.raises(ValueError, match="non-negative"):
        corrupt_texts(["x"], "typos", 1, seed=-1)
