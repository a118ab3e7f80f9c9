"""What a task is to reusespec: labelled data with fixed train/val/test splits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from reusespec.hashing import array_digest, digest

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    """One split of a task.

    ``labels`` are class indices ``0..num_classes-1``. ``load(indices)`` returns the raw
    batch for those positions (uint8 images ``(n, C, H, W)`` for image tasks); a backbone's
    ``prepare`` adapts it. ``fingerprint`` changes whenever the examples or labels change.

    A split made by :meth:`subset` remembers its ``base`` split and the ``base_positions``
    it keeps, so features are extracted (and cached) once for the base and indexed for
    every class subset, relabelling or k-shot sample of it.
    """

    name: str
    labels: np.ndarray
    load: Callable[[np.ndarray], Any]
    fingerprint: str
    base: Split | None = None
    base_positions: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_arrays(cls, name: str, images: torch.Tensor, labels: np.ndarray, parent: str) -> Split:
        """A split held in memory (images as a uint8 tensor)."""
        labels = np.asarray(labels, dtype=np.int64)
        if len(images) != len(labels):
            raise ValueError(f"{parent} [{name}]: {len(images)} images but {len(labels)} labels")
        fp = digest("split", parent, name, array_digest(images), array_digest(labels))
        return cls(name=name, labels=labels, load=lambda idx: images[torch.as_tensor(idx)], fingerprint=fp)

    @classmethod
    def from_texts(cls, name: str, texts: Sequence[str], labels: np.ndarray, parent: str) -> Split:
        """A split of texts held in memory; ``load`` returns a list of strings."""
        labels = np.asarray(labels, dtype=np.int64)
        held = list(texts)
        if len(held) != len(labels):
            raise ValueError(f"{parent} [{name}]: {len(held)} texts but {len(labels)} labels")
        fp = digest("text-split", parent, name, digest(*held), array_digest(labels))
        return cls(
            name=name, labels=labels, load=lambda idx: [held[i] for i in np.asarray(idx)], fingerprint=fp
        )

    def subset(self, positions: np.ndarray, labels: np.ndarray | None = None, tag: str = "") -> Split:
        """A split of some of these examples (optionally relabelled)."""
        positions = np.asarray(positions, dtype=np.int64)
        new_labels = self.labels[positions] if labels is None else np.asarray(labels, dtype=np.int64)
        base = self.base or self
        in_base = positions if self.base_positions is None else self.base_positions[positions]
        fp = digest("subset", self.fingerprint, tag, array_digest(positions), array_digest(new_labels))
        base_load = base.load
        return Split(
            self.name, new_labels, lambda idx: base_load(in_base[np.asarray(idx)]), fp, base, in_base
        )

    def transformed(self, transform: Callable[[Any, np.ndarray], Any], tag: str) -> Split:
        """The same examples with ``transform(raw_batch, positions)`` applied on load (a corruption).

        The positions let a random transform draw per-example noise, so the result does not
        depend on how the split is batched. ``tag`` must identify the transform and its seed.
        """
        parent_load = self.load

        def load(idx: np.ndarray) -> Any:
            idx = np.asarray(idx)
            return transform(parent_load(idx), idx)

        return Split(self.name, self.labels, load, digest("transformed", self.fingerprint, tag))


@dataclass
class Task:
    """A classification task with deterministic splits.

    ``modality`` says what ``load`` yields: "image" (uint8 tensors) or "text" (lists of str).
    """

    name: str
    class_names: Sequence[str]
    train: Split
    val: Split
    test: Split
    modality: str = "image"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def fingerprint(self) -> str:
        return digest("task", self.name, list(self.class_names), [s.fingerprint for s in self.splits()])

    def splits(self) -> tuple[Split, Split, Split]:
        return (self.train, self.val, self.test)

    def __repr__(self) -> str:
        sizes = "/".join(str(len(s)) for s in self.splits())
        return f"Task({self.name!r}, classes={self.num_classes}, train/val/test={sizes})"
