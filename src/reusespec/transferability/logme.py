"""LogME (You et al., ICML 2021 / JMLR 2022): the maximum evidence of Bayesian linear regression."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from reusespec.transferability.inputs import (
    FloatArray,
    as_features,
    class_ids_and_indices,
    unit_rms,
)
from reusespec.transferability.spectrum import thin_svd

# The LogME reference implementation (thuml/LogME) adds this to the denominators of the alpha and
# beta updates so that a perfectly fitted class (zero residual) or a zero weight vector cannot
# divide by zero. Kept so that scores stay comparable with published LogME values.
_LOGME_EPSILON = 1e-5


@dataclass(frozen=True)
class LogMEFit:
    """LogME per class: the maximised evidence per sample and the hyperparameters that reach it.

    Entry ``i`` of ``evidences``, ``alphas`` and ``betas`` belongs to class id ``classes[i]``
    (classes in order of first appearance in the labels). ``alphas`` is the prior precision of the
    weights, ``betas`` the noise precision; ``score`` is the mean of ``evidences`` (the LogME
    value). ``rank`` is the numerical rank of the features.
    """

    score: float
    classes: tuple[int, ...]
    evidences: tuple[float, ...]
    alphas: tuple[float, ...]
    betas: tuple[float, ...]
    rank: int


def _logme_one_target(
    u: FloatArray, sigma: FloatArray, y: FloatArray, tol: float, max_iter: int
) -> tuple[float, float, float]:
    """Maximum evidence per sample of y ~ N(0, I/beta + F F^T/alpha), with the alpha and beta reaching it.

    Works in the basis of the left singular vectors: x = U^T y, sigma = squared singular values.
    For a given t = alpha/beta the posterior mean weights m have
    |m|^2 = sum(sigma x^2 / (t + sigma)^2) and the residual |y - F m|^2 =
    sum(x^2 / (1 + sigma/t)^2) + (energy of y outside the span of the features).
    """
    n = y.shape[0]
    rank = sigma.shape[0]
    x2 = (u.T @ y) ** 2
    y2 = float(y @ y)
    outside = max(y2 - float(x2.sum()), 0.0)  # clip rounding below zero
    log_2pi = math.log(2.0 * math.pi)

    if rank == 0:
        # All-zero features explain nothing: y ~ N(0, I/beta), and alpha plays no part.
        beta = n / (y2 + _LOGME_EPSILON)
        evidence = 0.5 * n * math.log(beta) - 0.5 * beta * y2 - 0.5 * n * log_2pi
        return evidence / n, math.inf, beta

    def posterior_moments(t: float) -> tuple[float, float, float, float]:
        gamma = float(np.sum(sigma / (sigma + t)))  # effective number of well-determined weights
        # N - gamma summed term by term: subtracting gamma from N would cancel catastrophically when
        # the features nearly interpolate y (t -> 0, gamma -> N).
        n_minus_gamma = (n - rank) + float(np.sum(t / (sigma + t)))
        m2 = float(np.sum(sigma * x2 / (t + sigma) ** 2))
        res2 = float(np.sum(x2 * (t / (sigma + t)) ** 2)) + outside
        return gamma, n_minus_gamma, m2, res2

    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        t = alpha / beta
        gamma, n_minus_gamma, m2, res2 = posterior_moments(t)
        alpha = gamma / (m2 + _LOGME_EPSILON)
        beta = n_minus_gamma / (res2 + _LOGME_EPSILON)
        if abs(alpha / beta - t) / t <= tol:
            break

    # Evaluate the evidence at the final (alpha, beta) themselves, so that it is exactly the log
    # marginal likelihood of those hyperparameters (the reference mixes the last update's alpha,
    # beta with the moments of the previous t, an O(tol) difference).
    _, _, m2, res2 = posterior_moments(alpha / beta)
    # log|A| for A = alpha I_D + beta F^T F has D - rank eigenvalues equal to alpha; together with
    # the D/2 log(alpha) prior term only rank/2 log(alpha) remains. Writing D/2 log(alpha) with the
    # log-sum over nonzero singular values only (as the reference does) is the same when the
    # features have full column rank, but otherwise adds (D - rank)/2 log(alpha), which is not part
    # of the evidence and makes the score depend on the feature scale.
    log_evidence = (
        0.5 * rank * math.log(alpha)
        + 0.5 * n * math.log(beta)
        - 0.5 * float(np.sum(np.log(alpha + beta * sigma)))
        - 0.5 * beta * res2
        - 0.5 * alpha * m2
        - 0.5 * n * log_2pi
    )
    return log_evidence / n, alpha, beta


def logme_fit(
    features: npt.ArrayLike, labels: npt.ArrayLike, *, tol: float = 1e-3, max_iter: int = 11
) -> LogMEFit:
    """LogME with its per-class evidences and hyperparameters (see :func:`logme`)."""
    f, rms = unit_rms(as_features(features))
    class_ids, y = class_ids_and_indices(labels, f.shape[0])
    if tol <= 0 or max_iter < 1:
        raise ValueError(f"need tol > 0 and max_iter >= 1, got tol={tol}, max_iter={max_iter}.")
    u, sigma = thin_svd(f)
    evidences, alphas, betas = [], [], []
    for cls in range(int(y.max()) + 1):
        evidence, alpha, beta = _logme_one_target(u, sigma, (y == cls).astype(np.float64), tol, max_iter)
        evidences.append(evidence)
        # alpha was fitted on F / rms; F F^T / alpha is unchanged with alpha * rms^2 on F itself.
        alphas.append(alpha * rms**2)
        betas.append(beta)
    return LogMEFit(
        score=float(np.mean(evidences)),
        classes=tuple(int(c) for c in class_ids),
        evidences=tuple(evidences),
        alphas=tuple(alphas),
        betas=tuple(betas),
        rank=int(sigma.shape[0]),
    )


def logme(features: npt.ArrayLike, labels: npt.ArrayLike, *, tol: float = 1e-3, max_iter: int = 11) -> float:
    """LogME (You et al. 2021): mean over classes of the maximum evidence per sample.

    For each class, Bayesian linear regression from the features to the one-hot column, with the
    prior precision alpha and noise precision beta set by the MacKay fixed-point iteration from
    alpha = beta = 1, stopping when alpha/beta changes by at most ``tol`` (relative) or after
    ``max_iter`` steps (the reference's 1e-3 and 11). Features are not centred, as in the
    reference, but divided by their root-mean-square entry: the maximised evidence is exactly
    invariant to a uniform rescaling of the features (alpha absorbs the scale), and this makes the
    computed value so too, where the reference's start at alpha = 1 and its 1e-5 in the alpha
    update (which does not scale) would make it depend on the features' magnitude. The returned
    alphas refer to the features as given.

    Agrees with the thuml/LogME reference (``_fit_fixed_point``) up to O(``tol``) (the evidence is
    evaluated at the final alpha, beta), except where the features have fewer nonzero singular
    values than columns (wider than the sample count, or rank-deficient): there the reference
    adds a spurious (D - rank)/(2N) log(alpha); this function returns the true evidence.
    """
    return logme_fit(features, labels, tol=tol, max_iter=max_iter).score
