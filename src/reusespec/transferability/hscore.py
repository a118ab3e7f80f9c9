"""H-score (Bao et al. 2019) and its Ledoit-Wolf shrunk variant (Ibrahim et al. 2022)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.covariance import ledoit_wolf_shrinkage

from reusespec.transferability.inputs import (
    FloatArray,
    IntArray,
    as_class_indices,
    as_features,
    unit_rms,
)
from reusespec.transferability.spectrum import thin_svd


def _centred_spectrum(features: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Left singular vectors and squared singular values (nonzero only) of the centred features."""
    return thin_svd(features - features.mean(axis=0))


def _between_class_energy(u: FloatArray, y: IntArray) -> FloatArray:
    """For each column u_i, |P u_i|^2 with P the projection that replaces a row by its class mean.

    |P u|^2 = sum_c n_c mean_c(u)^2 = sum_c (sum over class c of u)^2 / n_c.
    """
    n_classes = int(y.max()) + 1
    sums = np.zeros((n_classes, u.shape[1]))
    np.add.at(sums, y, u)
    counts = np.bincount(y, minlength=n_classes)
    return np.asarray(np.sum(sums**2 / counts[:, None], axis=0), dtype=np.float64)


def h_score(features: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """H-score (Bao et al. 2019): ``tr(pinv(cov f) cov(E[f|y]))``, between 0 and C - 1.

    Computed without forming the D x D covariance: with the centred features X = U S V^T and P
    the class-mean projection, cov(E[f|y]) = X^T P X / N, so the trace is tr(P X pinv(X^T X) X^T P)
    = |P U|_F^2, the between-class energy of the left singular vectors. This is exactly the
    pseudo-inverse formula (same rank cut-off), stable for features wider than the sample count,
    and costs one thin SVD. Invariant to any invertible affine map of the features. When the width
    approaches the sample count the score saturates at C - 1 for any features (the pseudo-inverse
    whitens noise into separability); prefer ``regularized_h_score`` there.
    """
    f, _ = unit_rms(as_features(features))
    y = as_class_indices(labels, f.shape[0])
    u, _ = _centred_spectrum(f)
    return float(np.sum(_between_class_energy(u, y)))


def regularized_h_score(features: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Shrinkage H-score (Ibrahim et al. 2022): ``tr(inv(cov_a f) (1 - a) cov(E[f|y]))``.

    ``cov_a = (1 - a) cov f + a mu I`` is the Ledoit-Wolf estimate, with the shrinkage ``a`` from
    scikit-learn and ``mu`` the mean feature variance; scaling the between-class covariance by
    ``(1 - a)`` as well treats both covariances alike. Both covariances are the biased (1/N)
    estimates, so with ``a = 0`` this equals :func:`h_score`. ``cov_a`` shares the singular vectors
    of the centred features, so the trace reduces to a sum over the singular values (no D x D
    inverse): ``(1 - a) sum_i (s_i^2/N) / ((1 - a) s_i^2/N + a mu) |P u_i|^2``.
    """
    f, _ = unit_rms(as_features(features))
    y = as_class_indices(labels, f.shape[0])
    n, width = f.shape
    u, sigma = _centred_spectrum(f)
    if sigma.size == 0:
        return 0.0  # constant features carry no information (and Ledoit-Wolf would divide 0 by 0)
    shrinkage = float(ledoit_wolf_shrinkage(f - f.mean(axis=0), assume_centered=True))
    variances = sigma / n  # eigenvalues of the biased feature covariance on the span of the features
    mean_variance = float(variances.sum()) / width
    shrunk = (1.0 - shrinkage) * variances + shrinkage * mean_variance
    energy = _between_class_energy(u, y)
    return float((1.0 - shrinkage) * np.sum(variances / shrunk * energy))
