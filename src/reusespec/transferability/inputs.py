"""Input validation shared by the transferability scores: features, labels and source probabilities."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from reusespec.feature_checks import DegenerateFeaturesError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


# --------------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------------


def as_features(features: npt.ArrayLike, name: str = "features") -> FloatArray:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array (samples x feature width), got shape {array.shape}; "
            "flatten or pool backbone outputs to one vector per sample first."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); extract features for at least 2 samples.")
    if not np.all(np.isfinite(array)):
        raise DegenerateFeaturesError(
            f"{name} contains NaN or infinite values; check the backbone's forward pass."
        )
    return array


def unit_rms(features: FloatArray) -> tuple[FloatArray, float]:
    """The features divided by their root-mean-square entry, and that divisor (1 for all zeros).

    Every score here is invariant to a uniform rescaling of the features in exact arithmetic, but
    not in floating point: LogME adds a fixed 1e-5 to its alpha update and starts from alpha = 1,
    which only suit features of magnitude about 1. Scoring the rescaled features makes every score
    independent of the features' scale (a random deep network's can be of magnitude 1e-9).
    """
    rms = float(np.sqrt(np.mean(np.square(features))))
    if not rms > 0 or not math.isfinite(rms):
        return features, 1.0
    return features / rms, rms


def class_ids_and_indices(
    labels: npt.ArrayLike, n_samples: int, name: str = "labels"
) -> tuple[npt.NDArray[np.generic], IntArray]:
    """The distinct class ids, and each label as a 0..C-1 index into them.

    Any integer ids are accepted. Classes are numbered by first appearance, not by id, so that
    renaming classes gives the very same indices (and, for the k-NN split, the same split).
    """
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class ids, got shape {array.shape}.")
    if array.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {array.shape[0]} entries but there are {n_samples} samples; "
            "pass one label per row of features."
        )
    if array.dtype.kind not in "iub":
        raise ValueError(
            f"{name} must hold integer class ids, got dtype {array.dtype}; convert them (e.g. np.unique with "
            "return_inverse=True) first."
        )
    classes, first_seen, indices = np.unique(array, return_index=True, return_inverse=True)
    if classes.size < 2:
        raise ValueError(
            f"{name} contain {classes.size} distinct class(es); a transferability score needs at least 2."
        )
    appearance_order = np.argsort(first_seen)
    index_of_class = np.empty(classes.size, dtype=np.intp)
    index_of_class[appearance_order] = np.arange(classes.size)
    return classes[appearance_order], index_of_class[indices.reshape(-1)]


def as_class_indices(labels: npt.ArrayLike, n_samples: int, name: str = "labels") -> IntArray:
    return class_ids_and_indices(labels, n_samples, name)[1]


def as_probabilities(source_probs: npt.ArrayLike, n_samples: int) -> FloatArray:
    probs = np.asarray(source_probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != n_samples:
        raise ValueError(
            f"source_probs must have shape (samples, source classes) = ({n_samples}, Z), got {probs.shape}."
        )
    if not np.all(np.isfinite(probs)):
        raise ValueError("source_probs contains NaN or infinite values; check the source head's outputs.")
    if np.any(probs < 0) or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError(
            "source_probs must be non-negative with rows summing to 1; pass the softmax of the source head's "
            "logits, not the logits."
        )
    return probs
