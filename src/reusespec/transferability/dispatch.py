"""Transferability scores by name: what a score may read and the function computing it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from reusespec.transferability.hscore import h_score, regularized_h_score
from reusespec.transferability.knn import knn_split_accuracy
from reusespec.transferability.logme import logme
from reusespec.transferability.source_scores import leep, nce


@dataclass(frozen=True)
class ScoreRequest:
    """What a score may read: target features and labels, and the source head's softmax if any."""

    features: npt.ArrayLike
    labels: npt.ArrayLike
    source_probs: npt.ArrayLike | None = None
    knn_k: int = 20
    seed: int = 0


def _require_source_probs(request: ScoreRequest, method: str) -> npt.ArrayLike:
    if request.source_probs is None:
        raise ValueError(
            f"{method!r} needs source_probs (the softmax of the backbone's source classifier head), but none "
            "were given: this backbone has no source classifier head. Use a feature-based score instead: "
            "'logme', 'hscore', 'hscore-shrink' or 'knn'."
        )
    return request.source_probs


def _nce_from_probs(request: ScoreRequest) -> float:
    probs = np.asarray(_require_source_probs(request, "nce"))
    if probs.ndim != 2:
        raise ValueError(f"source_probs must be 2-D (samples, source classes), got shape {probs.shape}.")
    return nce(np.argmax(probs, axis=1), request.labels)


SCORES: dict[str, Callable[[ScoreRequest], float]] = {
    "logme": lambda r: logme(r.features, r.labels),
    "hscore": lambda r: h_score(r.features, r.labels),
    "hscore-shrink": lambda r: regularized_h_score(r.features, r.labels),
    "nce": _nce_from_probs,
    "leep": lambda r: leep(_require_source_probs(r, "leep"), r.labels),
    "knn": lambda r: knn_split_accuracy(r.features, r.labels, k=r.knn_k, seed=r.seed),
}
"""Score name -> function of a :class:`ScoreRequest`; higher is better for every one."""

SOURCE_HEAD_METHODS = frozenset({"nce", "leep"})
"""Scores that read the source classifier's softmax instead of the features."""


def transferability_score(
    method: str,
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    source_probs: npt.ArrayLike | None = None,
    knn_k: int = 20,
    seed: int = 0,
) -> float:
    """The named score (a key of :data:`SCORES`) of a backbone on a target task's training data.

    ``features``: (N, D) frozen features; ``labels``: (N,) integer class ids; ``source_probs``:
    (N, Z) softmax of the source head, needed by "nce" and "leep" only. "knn" holds out a fixed
    20% of the given samples (stratified, ``seed``) and returns the accuracy of a ``knn_k``-NN
    cosine probe fitted on the rest; for an explicit split call :func:`knn_accuracy`.
    """
    try:
        score_fn = SCORES[method]
    except KeyError:
        raise ValueError(
            f"unknown transferability method {method!r}; valid methods: {', '.join(sorted(SCORES))}."
        ) from None
    return score_fn(
        ScoreRequest(features=features, labels=labels, source_probs=source_probs, knn_k=knn_k, seed=seed)
    )
