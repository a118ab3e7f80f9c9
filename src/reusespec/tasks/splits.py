"""Deterministic, stratified splits and k-shot subsampling."""

from __future__ import annotations

import numpy as np

from reusespec.errors import TaskError


def stratified_split(labels: np.ndarray, fractions: tuple[float, ...], seed: int) -> tuple[np.ndarray, ...]:
    """Split positions ``0..len(labels)-1`` into parts of the given fractions, per class.

    Every class is shuffled with ``seed`` and cut in the same proportions, so each part keeps
    the class balance; the result depends only on the labels, the fractions and the seed.
    Positions within each part are sorted.
    """
    if not np.isclose(sum(fractions), 1.0) or min(fractions) < 0:
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        members = members[rng.permutation(len(members))]
        cuts = np.round(np.cumsum(fractions)[:-1] * len(members)).astype(int)
        for part, chunk in zip(parts, np.split(members, cuts), strict=True):
            part.append(chunk)
    return tuple(np.sort(np.concatenate(p)) if p else np.empty(0, dtype=np.int64) for p in parts)


def k_shot(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """Positions of ``shots`` examples per class (sorted), drawn with ``seed``."""
    if shots < 1:
        raise TaskError(f"shots must be at least 1, got {shots}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) < shots:
            raise TaskError(
                f"class {cls} has only {len(members)} training examples, fewer than shots={shots}; "
                "lower the shot count"
            )
        chosen.append(rng.choice(members, size=shots, replace=False))
    return np.sort(np.concatenate(chosen))
