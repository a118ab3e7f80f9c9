"""Scores from a source classifier head: NCE (Tran et al. 2019) and LEEP (Nguyen et al. 2020)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy.stats.contingency import crosstab

from reusespec.transferability.inputs import (
    as_class_indices,
    as_probabilities,
)


def nce(source_labels: npt.ArrayLike, target_labels: npt.ArrayLike) -> float:
    """Negative conditional entropy (Tran et al. 2019): ``-H(Y|Z)`` in nats, at most 0.

    ``source_labels`` are the source head's predicted classes (argmax of its softmax) on the
    target samples; both label arrays may use any integer ids.
    """
    z = np.asarray(source_labels)
    if z.ndim != 1 or z.dtype.kind not in "iub":
        raise ValueError(
            f"source_labels must be a 1-D array of integer class ids, got shape {z.shape} and dtype "
            f"{z.dtype}; pass the argmax of the source head's outputs."
        )
    y = as_class_indices(target_labels, z.shape[0], "target_labels")
    joint = crosstab(z, y).count / y.shape[0]  # P(z, y)
    p_z = joint.sum(axis=1, keepdims=True)  # every z in the table occurs, so p_z > 0
    # H(Y|Z) = -sum P(z, y) log P(y|z); xlogy makes 0 log 0 = 0.
    return float(np.sum(special.xlogy(joint, joint / p_z)))


def leep(source_probs: npt.ArrayLike, target_labels: npt.ArrayLike) -> float:
    """Log expected empirical prediction (Nguyen et al. 2020), at most 0.

    ``source_probs`` is the source head's softmax on the target samples, shape (N, Z). The
    empirical joint ``P(y, z) = mean_i theta_z(x_i) [y_i = y]`` gives ``P(y|z)``, and the score is
    ``mean_i log sum_z P(y_i|z) theta_z(x_i)``.
    """
    probs_raw = np.asarray(source_probs)
    n = probs_raw.shape[0] if probs_raw.ndim >= 1 else 0
    y = as_class_indices(target_labels, n, "target_labels")
    probs = as_probabilities(probs_raw, n)
    n_classes = int(y.max()) + 1
    joint = np.zeros((n_classes, probs.shape[1]))
    np.add.at(joint, y, probs / n)
    p_z = joint.sum(axis=0, keepdims=True)
    # A source class no sample puts mass on contributes nothing; avoid its 0/0.
    p_y_given_z = np.divide(joint, p_z, out=np.zeros_like(joint), where=p_z > 0)
    expected = np.einsum("nz,nz->n", probs, p_y_given_z[y])
    return float(np.mean(np.log(expected)))
