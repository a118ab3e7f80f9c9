"""Text corruptions, the counterpart of CIFAR-10-C for text tasks (definitions in docs/reference.md).

A text is cut into words (runs of non-space characters; the spaces between them are kept as
they are). Every word draws, once, a uniform number ``u`` and the parameters of its edit from a
generator seeded by ``(seed, corruption, position)``; it is edited when ``u < rate(severity)``.
The draws do not depend on the severity and the rates grow with it, so the words a severity
changes are a subset of those the next one changes; the result depends only on the text, the
seed and its position, never on how a split was batched.

``typos``         one of: swap two adjacent letters, delete a letter, insert a random letter,
                  replace a letter (words of two or more characters)
``char_swap``     swap two adjacent characters (words of two or more characters)
``word_dropout``  drop the word (at least one word is kept)
``casing``        upper-case, lower-case or swap the case of the word
"""

from __future__ import annotations

import re
import string
import zlib
from collections.abc import Sequence

import numpy as np

SEVERITIES = (1, 2, 3, 4, 5)
RATES: dict[str, tuple[float, ...]] = {
    "typos": (0.05, 0.10, 0.20, 0.30, 0.45),
    "char_swap": (0.05, 0.10, 0.20, 0.30, 0.45),
    "word_dropout": (0.05, 0.10, 0.15, 0.25, 0.35),
    "casing": (0.10, 0.25, 0.50, 0.75, 1.00),
}
TEXT_CORRUPTIONS: tuple[str, ...] = tuple(RATES)
_SPLIT = re.compile(r"(\s+)")
_LETTERS = string.ascii_lowercase


def corrupt_texts(
    texts: Sequence[str],
    name: str,
    severity: int,
    seed: int = 0,
    *,
    indices: Sequence[int] | np.ndarray | None = None,
) -> list[str]:
    """Corrupt each text with ``name`` at ``severity`` 1..5; ``indices`` are their positions in the split."""
    if name not in RATES:
        raise ValueError(f"unknown text corruption {name!r}; valid names: {', '.join(TEXT_CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, int | np.integer) or severity not in SEVERITIES:
        raise ValueError(f"severity must be an int from 1 to 5, got {severity!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    positions = np.arange(len(texts)) if indices is None else np.asarray(indices, dtype=np.int64)
    if len(positions) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(positions)} indices")
    rate = RATES[name][int(severity) - 1]
    salt = zlib.crc32(name.encode())
    return [
        _corrupt_one(text, name, rate, np.random.default_rng([int(seed), salt, int(position)]))
        for text, position in zip(texts, positions, strict=True)
    ]


def _corrupt_one(text: str, name: str, rate: float, rng: np.random.Generator) -> str:
    pieces = _SPLIT.split(text)
    word_slots = [i for i, piece in enumerate(pieces) if piece and not piece.isspace()]
    n = len(word_slots)
    if n == 0:
        return text
    # Every draw is made whatever the rate, so severities nest (see the module docstring).
    chosen = rng.random(n) < rate
    ops = rng.integers(0, 4, n)
    where = rng.random(n)
    letters = rng.integers(0, len(_LETTERS), n)
    cases = rng.integers(0, 3, n)
    if name == "word_dropout":
        if chosen.all():
            chosen[int(np.argmax(where))] = False
        for slot, drop in zip(word_slots, chosen, strict=True):
            if drop:
                pieces[slot] = ""
        return _rejoin(pieces)
    for k, slot in enumerate(word_slots):
        if chosen[k]:
            pieces[slot] = _edit(
                pieces[slot], name, int(ops[k]), float(where[k]), _LETTERS[letters[k]], int(cases[k])
            )
    return "".join(pieces)


def _edit(word: str, name: str, op: int, where: float, letter: str, case: int) -> str:
    if name == "casing":
        return (word.upper(), word.lower(), word.swapcase())[case]
    if len(word) < 2:
        return word
    if name == "char_swap":
        op = 0
    i = min(int(where * (len(word) - 1)), len(word) - 2)  # a position with a right neighbour
    if op == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op == 1:
        return word[:i] + word[i + 1 :]
    if op == 2:
        return word[: i + 1] + letter + word[i + 1 :]
    return word[:i] + letter + word[i + 1 :]


def _rejoin(pieces: list[str]) -> str:
    """Join what is left after dropping words, with one separator where a word went missing."""
    words = [p for p in pieces if p and not p.isspace()]
    return " ".join(words)


def changed_words(original: str, corrupted: str) -> int:
    """How many word positions differ (a dropped word counts once): the amount a corruption changed."""
    before, after = original.split(), corrupted.split()
    if len(after) != len(before):
        return len(before) - len(after)
    return sum(a != b for a, b in zip(before, after, strict=True))
