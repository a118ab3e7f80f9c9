"""Transferability scores: rank backbones for a task without training them.

Every score here reads frozen features (or a source classifier's outputs) on the target task's
training data and returns one number per backbone; higher means "expected to transfer better".
Absolute values are not comparable across scores or tasks: what matters is whether the ordering
over backbones agrees with the accuracies they really reach, which :func:`rank_agreement`
measures (weighted Kendall tau, as in the LogME papers and TLlib).

Scores and their sources (formulas in ``docs/reference.md``, section "Transferability scores"):

- ``logme``: You et al., ICML 2021 / JMLR 2022, the maximum evidence of Bayesian linear regression
  from features to each one-hot label column, per sample, averaged over classes.
- ``hscore``: Bao et al. 2019, ``tr(pinv(cov f) cov(E[f|y]))``.
- ``hscore-shrink``: Ibrahim et al. 2022, the same with a Ledoit-Wolf shrunk feature covariance.
- ``nce``: Tran et al. 2019, ``-H(Y|Z)`` with ``Z`` the source head's argmax label.
- ``leep``: Nguyen et al. 2020, log expected empirical prediction from the source head's softmax.
- ``knn``: accuracy of a cosine k-nearest-neighbour probe on a fixed held-out split.

All arithmetic is float64 numpy/scipy; nothing here needs torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import linalg, special, stats
from scipy.stats.contingency import crosstab
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

__all__ = [
    "SCORES",
    "SOURCE_HEAD_METHODS",
    "LogMEFit",
    "RankAgreement",
    "ScoreRequest",
    "h_score",
    "knn_accuracy",
    "knn_split_accuracy",
    "leep",
    "logme",
    "logme_fit",
    "nce",
    "rank_agreement",
    "regularized_h_score",
    "transferability_score",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

# The LogME reference implementation (thuml/LogME) adds this to the denominators of the alpha and
# beta updates so that a perfectly fitted class (zero residual) or a zero weight vector cannot
# divide by zero. Kept so that scores stay comparable with published LogME values.
_LOGME_EPSILON = 1e-5


# --------------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------------


def _as_features(features: npt.ArrayLike, name: str = "features") -> FloatArray:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array (samples x feature width), got shape {array.shape}; "
            "flatten or pool backbone outputs to one vector per sample first."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); extract features for at least 2 samples.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values; check the backbone's forward pass.")
    return array


def _class_ids_and_indices(
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


def _as_class_indices(labels: npt.ArrayLike, n_samples: int, name: str = "labels") -> IntArray:
    return _class_ids_and_indices(labels, n_samples, name)[1]


def _as_probabilities(source_probs: npt.ArrayLike, n_samples: int) -> FloatArray:
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


# --------------------------------------------------------------------------------------------------
# LogME
# --------------------------------------------------------------------------------------------------


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


# For a tall matrix (N > 2 D) the eigendecomposition of the D x D Gram matrix F^T F is faster than
# the thin SVD of F: measured on one thread, 2.2 s against 5.6 s at 5,000 x 2,048 and 0.31 s
# against 0.92 s at 20,000 x 512, with the same U^T y to 1e-12. But F^T F squares the condition
# number: it resolves eigenvalues down to about eps * D * lambda_max only. It is used when every
# eigenvalue clears that bar by this margin (full column rank, condition number of F below about
# 1e5 at width 2,048); otherwise the SVD decides the rank, which LogME's evidence depends on.
_GRAM_MARGIN = 1e4


def _thin_svd(features: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Left singular vectors and squared singular values for the nonzero singular values only.

    The thin SVD of the N x D feature matrix itself keeps the computation stable when features are
    wider than the sample count or rank-deficient; a tall, well-conditioned matrix takes the
    faster Gram route above. gesdd is fast but can fail to converge on pathological input; gesvd
    then takes over.
    """
    n, d = features.shape
    if n > 2 * d > 0:
        gram = _gram_spectrum(features)
        if gram is not None:
            return gram
    try:
        u, s, _ = linalg.svd(features, full_matrices=False, lapack_driver="gesdd")
    except linalg.LinAlgError:
        u, s, _ = linalg.svd(features, full_matrices=False, lapack_driver="gesvd")
    # The numerical-rank threshold numpy.linalg.matrix_rank uses.
    threshold = (s.max() if s.size else 0.0) * max(features.shape) * np.finfo(np.float64).eps
    keep = s > threshold
    return u[:, keep], s[keep] ** 2


def _gram_spectrum(features: FloatArray) -> tuple[FloatArray, FloatArray] | None:
    """U and the squared singular values from F^T F = V S^2 V^T (U = F V / S), or None if unreliable."""
    eigenvalues, v = linalg.eigh(features.T @ features)
    reliable = eigenvalues.max() * features.shape[1] * np.finfo(np.float64).eps * _GRAM_MARGIN
    if eigenvalues.min() <= reliable:
        return None  # rank-deficient or ill-conditioned: the SVD decides
    return features @ (v / np.sqrt(eigenvalues)), eigenvalues


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
    f = _as_features(features)
    class_ids, y = _class_ids_and_indices(labels, f.shape[0])
    if tol <= 0 or max_iter < 1:
        raise ValueError(f"need tol > 0 and max_iter >= 1, got tol={tol}, max_iter={max_iter}.")
    u, sigma = _thin_svd(f)
    evidences, alphas, betas = [], [], []
    for cls in range(int(y.max()) + 1):
        evidence, alpha, beta = _logme_one_target(u, sigma, (y == cls).astype(np.float64), tol, max_iter)
        evidences.append(evidence)
        alphas.append(alpha)
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
    ``max_iter`` steps (the reference's 1e-3 and 11). Features are not centred or scaled, as in the
    reference. The maximised evidence is exactly invariant to a uniform rescaling of the features
    (alpha absorbs the scale); this value is so up to ``tol`` and the reference's 1e-5 in the
    alpha update, which does not scale and biases alpha once |m|^2 nears 1e-5, i.e. for features
    with large norms (or a class best fitted by no weights at all, where alpha would go to infinity).

    Agrees with the thuml/LogME reference (``_fit_fixed_point``) up to O(``tol``) (the evidence is
    evaluated at the final alpha, beta), except where the features have fewer nonzero singular
    values than columns (wider than the sample count, or rank-deficient): there the reference
    adds a spurious (D - rank)/(2N) log(alpha); this function returns the true evidence.
    """
    return logme_fit(features, labels, tol=tol, max_iter=max_iter).score


# --------------------------------------------------------------------------------------------------
# H-score
# --------------------------------------------------------------------------------------------------


def _centred_spectrum(features: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Left singular vectors and squared singular values (nonzero only) of the centred features."""
    return _thin_svd(features - features.mean(axis=0))


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
    f = _as_features(features)
    y = _as_class_indices(labels, f.shape[0])
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
    f = _as_features(features)
    y = _as_class_indices(labels, f.shape[0])
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


# --------------------------------------------------------------------------------------------------
# Scores from a source classifier head
# --------------------------------------------------------------------------------------------------


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
    y = _as_class_indices(target_labels, z.shape[0], "target_labels")
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
    y = _as_class_indices(target_labels, n, "target_labels")
    probs = _as_probabilities(probs_raw, n)
    n_classes = int(y.max()) + 1
    joint = np.zeros((n_classes, probs.shape[1]))
    np.add.at(joint, y, probs / n)
    p_z = joint.sum(axis=0, keepdims=True)
    # A source class no sample puts mass on contributes nothing; avoid its 0/0.
    p_y_given_z = np.divide(joint, p_z, out=np.zeros_like(joint), where=p_z > 0)
    expected = np.einsum("nz,nz->n", probs, p_y_given_z[y])
    return float(np.mean(np.log(expected)))


# --------------------------------------------------------------------------------------------------
# k-NN probe
# --------------------------------------------------------------------------------------------------


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
    fit_x = _as_features(train_x, "train_x")
    eval_x = _as_features(test_x, "test_x")
    if fit_x.shape[1] != eval_x.shape[1]:
        raise ValueError(f"train_x has width {fit_x.shape[1]} but test_x has width {eval_x.shape[1]}.")
    _as_class_indices(train_y, fit_x.shape[0], "train_y")  # validation only:
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
    f = _as_features(features)
    y = _as_class_indices(labels, f.shape[0])
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


# --------------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Rank agreement
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankAgreement:
    """How well scores order backbones like their measured accuracies (1 = same order, -1 = reversed).

    ``weighted_kendall_tau`` (scipy.stats.weightedtau, hyperbolic weights) counts disagreements
    among the top-ranked backbones most, which is what model selection cares about. Values are
    NaN when either side is constant.
    """

    weighted_kendall_tau: float
    spearman: float
    kendall_tau: float
    n: int
    models: tuple[str, ...]


def rank_agreement(scores: Mapping[str, float], accuracies: Mapping[str, float]) -> RankAgreement:
    """Rank correlation between transferability scores and accuracies over the backbones in both maps."""
    models = tuple(sorted(set(scores) & set(accuracies)))
    if len(models) < 2:
        raise ValueError(
            "rank agreement needs at least 2 backbones with both a score and an accuracy, found "
            f"{len(models)} (scores for {sorted(scores)}, accuracies for {sorted(accuracies)})."
        )
    x = np.array([float(scores[m]) for m in models])
    y = np.array([float(accuracies[m]) for m in models])
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("scores and accuracies must be finite to be ranked.")
    constant = np.ptp(x) == 0 or np.ptp(y) == 0
    if constant:
        # Correlation is undefined; scipy would warn and return NaN anyway.
        nan = float("nan")
        return RankAgreement(nan, nan, nan, len(models), models)
    return RankAgreement(
        weighted_kendall_tau=float(stats.weightedtau(x, y).statistic),
        spearman=float(stats.spearmanr(x, y).statistic),
        kendall_tau=float(stats.kendalltau(x, y).statistic),
        n=len(models),
        models=models,
    )
