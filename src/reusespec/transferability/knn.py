"""A cosine k-nearest-neighbour probe's accuracy as a transferability score."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from reusespec.transferability.inputs import (
    as_class_indices,
    as_features,
    unit_rms,
)


def knn_accuracy(
    train_x: npt.ArrayLike,
    train_y: npt.ArrayLike,
    test_x: npt.ArrayLike,
    test_y: npt.ArrayLike,
    k: int = 20,
) -> float:
    """Accuracy of a k-nearest-neighbour classifier with cosine similarity.

    Neighbours vote with weight 1/(cosine distance), so that ties between classes are
    practically impossible and the result does not depend on how classes are numbered. ``k`` is
    capped at the number of training samples.
    """
    # Each set rescaled on its own: cosine similarity ignores the scale of every row anyway.
    fit_x, _ = unit_rms(as_features(train_x, "train_x"))
    eval_x, _ = unit_rms(as_features(test_x, "test_x"))
    if fit_x.shape[1] != eval_x.shape[1]:
        raise ValueError(f"train_x has width {fit_x.shape[1]} but test_x has width {eval_x.shape[1]}.")
    as_class_indices(train_y, fit_x.shape[0], "train_y")  # validation only:
    fit_ids = np.asarray(train_y)  # predictions come back in the caller's ids, comparable with test_y
    eval_y = np.asarray(test_y)
    if eval_y.ndim != 1 or eval_y.shape[0] != eval_x.shape[0]:
        raise ValueError(f"test_y must be 1-D with {eval_x.shape[0]} entries, got shape {eval_y.shape}.")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}.")
    classifier = KNeighborsClassifier(
        n_neighbors=min(k, fit_x.shape[0]), metric="cosine", weights="distance", algorithm="brute"
    )
    classifier.fit(fit_x, fit_ids)
    return float(np.mean(classifier.predict(eval_x) == eval_y))


def knn_split_accuracy(
    features: npt.ArrayLike, labels: npt.ArrayLike, *, k: int = 20, test_fraction: float = 0.2, seed: int = 0
) -> float:
    """:func:`knn_accuracy` on a fixed held-out split of one labelled set.

    The split is stratified by class when every class has at least two samples (otherwise
    plain random), with ``seed`` fixing it so that every backbone is scored on the same samples.
    """
    f = as_features(features)
    y = as_class_indices(labels, f.shape[0])
    stratify = y if np.bincount(y).min() >= 2 else None
    try:
        train_x, test_x, train_y, test_y = train_test_split(
            f, y, test_size=test_fraction, random_state=seed, stratify=stratify
        )
    except ValueError:
        # Too few samples for a stratified split (fewer test slots than classes): split plainly.
        train_x, test_x, train_y, test_y = train_test_split(f, y, test_size=test_fraction, random_state=seed)
    if np.unique(train_y).size < 2:
        raise ValueError(
            f"the k-NN training split of {len(train_y)} samples holds a single class; "
            "use more samples or call knn_accuracy with an explicit split."
        )
    return knn_accuracy(train_x, train_y, test_x, test_y, k=k)
