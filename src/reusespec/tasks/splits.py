"""Deterministic, stratified splits and k-shot subsampling."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from reusespec.errors import TaskError

if TYPE_CHECKING:
    from reusespec.tasks.base import Task


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


def check_splits(task: Task, spec: str) -> None:
    """Every split must hold examples of at least two classes: an empty validation split cannot
    choose the L2 strength, and a single-class test split scores any classifier 1.0 or 0.0."""
    for split in task.splits():
        classes = np.unique(split.labels)
        if len(split) == 0:
            raise TaskError(
                f"task {spec!r}: the {split.name} split is empty ({_sizes(task)}); "
                "give the split a larger share (e.g. '?val=0.2') or add examples"
            )
        if len(classes) < 2:
            only = task.class_names[int(classes[0])]
            raise TaskError(
                f"task {spec!r}: the {split.name} split holds a single class ({only!r}, "
                f"{len(split)} example(s); {_sizes(task)}); scores on it mean nothing. Add examples of the "
                "other classes or choose other classes"
            )


def _sizes(task: Task) -> str:
    return "train/val/test = " + "/".join(str(len(s)) for s in task.splits())
