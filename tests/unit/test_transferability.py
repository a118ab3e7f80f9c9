"""Transferability scores: orderings, invariances, LogME against a direct evidence computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import linalg, optimize
from scipy.stats import multivariate_normal
from sklearn.covariance import LedoitWolf

from reusespec.transferability import (
    SCORES,
    SOURCE_HEAD_METHODS,
    h_score,
    knn_accuracy,
    leep,
    logme,
    logme_fit,
    nce,
    rank_agreement,
    regularized_h_score,
    transferability_score,
)

N_SAMPLES, WIDTH, N_CLASSES, N_SOURCE_CLASSES = 300, 16, 3, 5
LABELS = np.arange(N_SAMPLES) % N_CLASSES

# Three synthetic "backbones" of decreasing quality: class means far apart, overlapping, absent.
# Separation is the shift of each class along its own axis, in units of the unit-variance noise;
# source agreement is how often a synthetic source head's argmax follows the target class.
QUALITIES = {"separated": (6.0, 1.0), "overlapping": (2.5, 0.6), "noise": (0.0, 0.0)}


def class_features(separation: float, seed: int, labels: np.ndarray = LABELS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(labels.size, WIDTH))
    features[np.arange(labels.size), labels] += separation
    return features


def source_softmax(agreement: float, seed: int, labels: np.ndarray = LABELS) -> np.ndarray:
    """Softmax of a source head whose top class is the target class with probability ``agreement``."""
    rng = np.random.default_rng(seed)
    random_class = rng.integers(0, N_SOURCE_CLASSES, labels.size)
    top = np.where(rng.random(labels.size) < agreement, labels, random_class)
    logits = 3.0 * np.eye(N_SOURCE_CLASSES)[top] + 0.3 * rng.normal(size=(labels.size, N_SOURCE_CLASSES))
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def direct_log_evidence(features: np.ndarray, target: np.ndarray, alpha: float, beta: float) -> float:
    """log p(y | alpha, beta) of Bayesian linear regression, written out with the N x N covariance."""
    n = target.size
    covariance = np.eye(n) / beta + features @ features.T / alpha
    return float(multivariate_normal.logpdf(target, mean=np.zeros(n), cov=covariance))


# --------------------------------------------------------------------------------------------------
# Ordering on synthetic backbones of known quality
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(SCORES))
@pytest.mark.parametrize("seed", [0, 1])
def test_scores_order_separated_above_overlapping_above_noise(method: str, seed: int) -> None:
    values = [
        transferability_score(
            method,
            class_features(separation, seed),
            LABELS,
            source_probs=source_softmax(agreement, seed),
        )
        for separation, agreement in QUALITIES.values()
    ]
    assert values[0] > values[1] > values[2], dict(zip(QUALITIES, values, strict=True))


def test_known_bounds_hold() -> None:
    """H-score <= C - 1 (between-class covariance is part of the total); NCE in [-log C, 0]; LEEP <= 0."""
    for separation, agreement in QUALITIES.values():
        features = class_features(separation, seed=3)
        probs = source_softmax(agreement, seed=3)
        assert 0.0 <= h_score(features, LABELS) <= N_CLASSES - 1 + 1e-9
        assert 0.0 <= regularized_h_score(features, LABELS) <= N_CLASSES - 1 + 1e-9
        assert -math.log(N_CLASSES) - 1e-12 <= nce(probs.argmax(axis=1), LABELS) <= 0.0
        assert leep(probs, LABELS) <= 0.0
    # A source head that names the target class exactly leaves no conditional entropy.
    assert nce(LABELS * 7 + 1, LABELS) == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------------------------------
# Invariances
# --------------------------------------------------------------------------------------------------

SMALL = 90
SMALL_LABELS = np.arange(SMALL) % N_CLASSES


@settings(max_examples=15, deadline=None)
@given(
    permutation=st.permutations(range(N_CLASSES)),
    offset=st.integers(-1000, 1000),
    stride=st.integers(1, 50),
    seed=st.integers(0, 2**16),
)
def test_renaming_classes_leaves_every_score_unchanged(
    permutation: list[int], offset: int, stride: int, seed: int
) -> None:
    features = class_features(1.5, seed, SMALL_LABELS)
    probs = source_softmax(0.5, seed, SMALL_LABELS)
    renamed = np.asarray(permutation)[SMALL_LABELS] * stride + offset  # arbitrary, non-contiguous ids
    for method in SCORES:
        original = transferability_score(method, features, SMALL_LABELS, source_probs=probs, knn_k=5)
        relabelled = transferability_score(method, features, renamed, source_probs=probs, knn_k=5)
        assert relabelled == pytest.approx(original, rel=1e-10, abs=1e-12), method


@settings(max_examples=20, deadline=None)
@given(scale=st.floats(0.05, 3.0), seed=st.integers(0, 2**16))
def test_logme_is_invariant_to_uniform_feature_scaling(scale: float, seed: int) -> None:
    """Why this holds: y = (cF) w + noise with w ~ N(0, I/alpha) is the same model as y = F w' + noise
    with w' = c w ~ N(0, c^2 I/alpha). So p(y | alpha, beta, cF) = p(y | alpha/c^2, beta, F) and the
    evidence *maximised* over alpha is exactly scale-invariant (alpha absorbs c^2). LogME computes
    that maximum only up to the stopping tolerance and the reference's 1e-5 added to |m|^2 in the alpha
    update; that constant does not scale with the features, so the invariance is exact only in the
    limit and fails for large feature norms (|m|^2 comparable to 1e-5). Hence a tight tolerance and
    moderate scales here. It is not 'invariant up to an additive constant': no shift is expected.
    """
    features = class_features(2.0, seed, SMALL_LABELS)[:, :6]
    reference = logme(features, SMALL_LABELS, tol=1e-10, max_iter=500)
    scaled = logme(scale * features, SMALL_LABELS, tol=1e-10, max_iter=500)
    assert scaled == pytest.approx(reference, abs=2e-4)


def test_logme_scaling_adds_no_width_dependent_shift_for_wide_features() -> None:
    """With more feature columns than samples, writing D/2 log(alpha) with the log-sum over the N nonzero
    singular values only (as the reference code does) would shift the score by (D - N)/N * log(1/c) under
    scaling by c: here (120 - 40)/40 * log(10), about 4.6 per sample. The true evidence has no such term."""
    labels = np.arange(40) % 2
    features = class_features(4.0, 7, labels)
    features = np.hstack([features, 0.3 * np.random.default_rng(8).normal(size=(40, 104))])  # width 120
    reference = logme(features, labels, tol=1e-10, max_iter=1000)
    scaled = logme(0.1 * features, labels, tol=1e-10, max_iter=1000)
    assert scaled == pytest.approx(reference, abs=0.02)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), shift=st.floats(-5, 5))
def test_h_score_is_invariant_to_invertible_affine_maps(seed: int, shift: float) -> None:
    """tr((A^T C A)^-1 A^T G A) = tr(C^-1 G) for invertible A, and centring removes any shift."""
    rng = np.random.default_rng(seed)
    features = class_features(1.5, seed, SMALL_LABELS)[:, :8]
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    transform = q @ np.diag(rng.uniform(0.2, 5.0, size=8)) @ q.T + 0.3 * rng.normal(size=(8, 8))
    if np.linalg.cond(transform) > 1e4:
        transform += np.eye(8) * 3.0
    mapped = features @ transform + shift
    assert h_score(mapped, SMALL_LABELS) == pytest.approx(h_score(features, SMALL_LABELS), rel=1e-7)


# --------------------------------------------------------------------------------------------------
# H-scores against their literal D x D formulas
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "width"), [(80, 6), (20, 35)])
def test_h_scores_equal_the_literal_covariance_formulas(n: int, width: int) -> None:
    labels = np.arange(n) % 3
    features = class_features(1.0, n, labels)[:, :6]
    features = np.hstack([features, np.random.default_rng(n).normal(size=(n, width - 6))])
    centred = features - features.mean(axis=0)
    class_means = np.stack([centred[labels == c].mean(axis=0) for c in range(3)])[labels]
    cov_between = class_means.T @ class_means / n
    literal = np.trace(linalg.pinv(centred.T @ centred / n) @ cov_between)
    assert h_score(features, labels) == pytest.approx(literal, rel=1e-8)

    shrunk = LedoitWolf().fit(features)  # centres itself; biased covariance, like h_score
    literal_shrunk = np.trace(np.linalg.inv(shrunk.covariance_) @ ((1 - shrunk.shrinkage_) * cov_between))
    assert regularized_h_score(features, labels) == pytest.approx(literal_shrunk, rel=1e-8)


def test_h_score_saturates_on_wide_noise_and_shrinkage_does_not() -> None:
    """With at least N - 1 feature columns the pseudo-inverse whitens pure noise into perfect class
    separation (H-score = C - 1); the Ledoit-Wolf shrinkage is what keeps the score meaningful there."""
    labels = np.arange(30) % 3
    noise = np.random.default_rng(5).normal(size=(30, 40))
    assert h_score(noise, labels) == pytest.approx(2.0)
    assert regularized_h_score(noise, labels) < 0.5 * h_score(noise, labels)


# --------------------------------------------------------------------------------------------------
# LogME against an independent computation of the evidence
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "width"), [(40, 5), (25, 60), (30, 12)])
def test_logme_evidence_equals_direct_marginal_likelihood(n: int, width: int) -> None:
    """Per-class evidence x N equals log N(y; 0, I/beta + F F^T/alpha) at the alpha, beta LogME reports,
    for tall, wide and rank-deficient (duplicated columns) features."""
    rng = np.random.default_rng(n + width)
    labels = rng.integers(0, 3, size=n)
    features = rng.normal(size=(n, width))
    features[:, 0] += 2.0 * labels
    if width == 12:
        features[:, 6:] = features[:, :6]  # rank 6 of 12
    fit = logme_fit(features, labels)
    assert fit.rank == min(n, width, 6 if width == 12 else width)
    assert sorted(fit.classes) == [0, 1, 2]
    for cls, evidence, alpha, beta in zip(fit.classes, fit.evidences, fit.alphas, fit.betas, strict=True):
        target = (labels == cls).astype(np.float64)
        assert evidence * n == pytest.approx(direct_log_evidence(features, target, alpha, beta), rel=1e-9)
    assert fit.score == pytest.approx(np.mean(fit.evidences))


def maximise_direct_evidence(features: np.ndarray, target: np.ndarray) -> tuple[float, float, float]:
    """(max log evidence per sample, alpha, beta) by Nelder-Mead over (log alpha, log beta)."""
    result = optimize.minimize(
        lambda log_ab: -direct_log_evidence(features, target, *np.exp(log_ab)),
        x0=np.zeros(2),
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000},
    )
    assert result.success
    alpha, beta = np.exp(result.x)
    return -result.fun / target.size, alpha, beta


def test_logme_fixed_point_is_the_maximum_of_the_evidence() -> None:
    """Maximising the direct evidence numerically over (log alpha, log beta) lands where LogME's
    fixed-point iteration does (up to the 1e-5 the reference adds to the alpha/beta denominators).
    A constant column (a bias) lets the features explain every one-hot column, so that each class's
    maximum is interior."""
    rng = np.random.default_rng(11)
    labels = np.arange(60) % 2
    features = rng.normal(size=(60, 4))
    features[:, 0] += 1.5 * labels
    features[:, 3] = 1.0
    fit = logme_fit(features, labels, tol=1e-12, max_iter=1000)
    for cls, evidence, alpha, beta in zip(fit.classes, fit.evidences, fit.alphas, fit.betas, strict=True):
        best, best_alpha, best_beta = maximise_direct_evidence(features, (labels == cls).astype(np.float64))
        assert evidence == pytest.approx(best, abs=1e-8)
        assert alpha == pytest.approx(best_alpha, rel=1e-3)
        assert beta == pytest.approx(best_beta, rel=1e-3)


def test_logme_stops_short_of_a_maximum_at_infinite_alpha() -> None:
    """Without a bias column, the class-0 indicator is best explained by no weights at all: the evidence
    keeps growing as alpha -> infinity. The 1e-5 in the alpha update then stops alpha at a finite value,
    just below the supremum (which is what the reference does too)."""
    rng = np.random.default_rng(11)
    labels = np.arange(60) % 2
    features = rng.normal(size=(60, 4))
    features[:, 0] += 1.5 * labels
    fit = logme_fit(features, labels, tol=1e-12, max_iter=1000)
    supremum, best_alpha, _ = maximise_direct_evidence(features, (labels == 0).astype(np.float64))
    assert best_alpha > 1e10 and math.isfinite(fit.alphas[0]) and fit.alphas[0] > 1e3
    assert supremum - 1e-3 < fit.evidences[0] <= supremum + 1e-12


def test_logme_default_iteration_is_close_to_the_converged_one() -> None:
    features = class_features(2.5, 5)
    converged = logme(features, LABELS, tol=1e-12, max_iter=1000)
    assert logme(features, LABELS) == pytest.approx(converged, abs=1e-3)


# --------------------------------------------------------------------------------------------------
# Numerical stability on awkward features
# --------------------------------------------------------------------------------------------------

AWKWARD = {
    "wider_than_samples": np.random.default_rng(0).normal(size=(12, 200)),
    "duplicate_columns": np.repeat(np.random.default_rng(1).normal(size=(30, 3)), 4, axis=1),
    "constant": np.full((30, 5), 2.5),
    "all_zero": np.zeros((30, 5)),
    "separable_and_wide": np.hstack([np.repeat((np.arange(12) % 2)[:, None] * 50.0, 1, axis=1), np.eye(12)]),
}


@pytest.mark.parametrize("method", sorted(set(SCORES) - SOURCE_HEAD_METHODS))
@pytest.mark.parametrize("case", sorted(AWKWARD))
def test_feature_scores_stay_finite_on_awkward_features(method: str, case: str) -> None:
    features = AWKWARD[case]
    labels = np.arange(features.shape[0]) % 2
    value = transferability_score(method, features, labels, knn_k=3)
    assert math.isfinite(value)


def test_logme_prefers_informative_over_constant_features() -> None:
    constant = np.full((60, 4), 1.0)
    informative = class_features(3.0, 2, np.arange(60) % 2)[:, :4]
    labels = np.arange(60) % 2
    assert logme(informative, labels) > logme(constant, labels)


def test_leep_ignores_source_classes_nobody_predicts() -> None:
    probs = source_softmax(0.8, 4)
    padded = np.hstack([probs, np.zeros((N_SAMPLES, 3))])
    assert leep(padded, LABELS) == pytest.approx(leep(probs, LABELS), rel=1e-12)


# --------------------------------------------------------------------------------------------------
# k-NN probe
# --------------------------------------------------------------------------------------------------


def test_knn_accuracy_explicit_split_uses_callers_ids() -> None:
    labels = np.arange(120) % 3
    features = class_features(6.0, 9, labels)
    ids = np.array([10, 20, 30])[labels]
    assert knn_accuracy(features[:90], ids[:90], features[90:], ids[90:], k=5) == pytest.approx(1.0)
    # k larger than the training set is capped instead of failing.
    assert math.isfinite(knn_accuracy(features[:4], ids[:4], features[90:], ids[90:], k=50))


def test_knn_dispatch_split_is_fixed_by_seed() -> None:
    features = class_features(2.5, 6)
    first = transferability_score("knn", features, LABELS, seed=3)
    assert transferability_score("knn", features, LABELS, seed=3) == first


# --------------------------------------------------------------------------------------------------
# Dispatch and validation
# --------------------------------------------------------------------------------------------------


def test_dispatch_matches_direct_calls() -> None:
    features = class_features(2.5, 0)
    probs = source_softmax(0.6, 0)
    assert transferability_score("logme", features, LABELS) == logme(features, LABELS)
    assert transferability_score("hscore", features, LABELS) == h_score(features, LABELS)
    assert transferability_score("hscore-shrink", features, LABELS) == regularized_h_score(features, LABELS)
    assert transferability_score("nce", features, LABELS, source_probs=probs) == nce(probs.argmax(1), LABELS)
    assert transferability_score("leep", features, LABELS, source_probs=probs) == leep(probs, LABELS)


def test_unknown_method_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown transferability method 'logmee'") as info:
        transferability_score("logmee", np.zeros((4, 2)), np.array([0, 1, 0, 1]))
    for name in SCORES:
        assert name in str(info.value)


@pytest.mark.parametrize("method", sorted(SOURCE_HEAD_METHODS))
def test_source_head_scores_without_probs_say_why(method: str) -> None:
    with pytest.raises(ValueError, match="no source classifier head"):
        transferability_score(method, class_features(1.0, 0), LABELS)


@pytest.mark.parametrize(
    ("features", "labels", "message"),
    [
        (np.zeros(10), np.arange(10) % 2, "2-D"),
        (np.zeros((10, 3)), np.arange(9) % 2, "9 entries but there are 10 samples"),
        (np.zeros((10, 3)), np.zeros(10, dtype=int), "at least 2"),
        (np.zeros((10, 3)), np.arange(10) % 2 + 0.5, "integer class ids"),
        (np.full((10, 3), np.nan), np.arange(10) % 2, "NaN"),
    ],
)
def test_bad_inputs_are_rejected_with_the_cause(
    features: np.ndarray, labels: np.ndarray, message: str
) -> None:
    for method in ("logme", "hscore", "hscore-shrink", "knn"):
        with pytest.raises(ValueError, match=message):
            transferability_score(method, features, labels)


def test_logits_instead_of_probabilities_are_rejected() -> None:
    logits = np.random.default_rng(0).normal(size=(N_SAMPLES, N_SOURCE_CLASSES))
    with pytest.raises(ValueError, match="softmax"):
        leep(logits, LABELS)


# --------------------------------------------------------------------------------------------------
# Rank agreement
# --------------------------------------------------------------------------------------------------

ACCURACIES = {"a": 0.91, "b": 0.85, "c": 0.78, "d": 0.70, "e": 0.62}


def test_rank_agreement_identical_and_reversed_orders() -> None:
    # A monotone but nonlinear map of the accuracies: same ranking.
    same = rank_agreement({k: math.exp(10 * v) - 3 for k, v in ACCURACIES.items()}, ACCURACIES)
    assert (same.weighted_kendall_tau, same.spearman, same.kendall_tau) == pytest.approx((1.0, 1.0, 1.0))
    reverse = rank_agreement({k: -v for k, v in ACCURACIES.items()}, ACCURACIES)
    assert (reverse.weighted_kendall_tau, reverse.spearman, reverse.kendall_tau) == pytest.approx(
        (-1.0, -1.0, -1.0)
    )
    assert same.n == 5


def test_weighted_tau_penalises_mistakes_at_the_top_more() -> None:
    order = sorted(ACCURACIES, key=ACCURACIES.__getitem__, reverse=True)
    top_swapped = {m: float(-i) for i, m in enumerate(order)}
    top_swapped[order[0]], top_swapped[order[1]] = top_swapped[order[1]], top_swapped[order[0]]
    bottom_swapped = {m: float(-i) for i, m in enumerate(order)}
    last, second_last = order[-1], order[-2]
    bottom_swapped[last], bottom_swapped[second_last] = bottom_swapped[second_last], bottom_swapped[last]
    top, bottom = rank_agreement(top_swapped, ACCURACIES), rank_agreement(bottom_swapped, ACCURACIES)
    assert top.kendall_tau == pytest.approx(bottom.kendall_tau)  # unweighted tau cannot tell them apart
    assert top.weighted_kendall_tau < bottom.weighted_kendall_tau


def test_rank_agreement_uses_common_backbones_only() -> None:
    scores = {"a": 3.0, "b": 2.0, "z": 100.0}
    result = rank_agreement(scores, ACCURACIES)
    assert result.n == 2
    assert result.models == ("a", "b")
    with pytest.raises(ValueError, match="at least 2 backbones"):
        rank_agreement({"a": 1.0, "z": 2.0}, ACCURACIES)


def _svd_only(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The spectrum by the thin SVD alone (what _thin_svd does for wide or ill-conditioned input)."""
    u, s, _ = linalg.svd(features, full_matrices=False)
    keep = s > s.max() * max(features.shape) * np.finfo(np.float64).eps
    return u[:, keep], s[keep] ** 2


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), width=st.integers(1, 12), duplicate=st.booleans())
def test_the_gram_route_for_tall_features_gives_the_svds_scores(
    seed: int, width: int, duplicate: bool
) -> None:
    from reusespec.transferability import spectrum

    rng = np.random.default_rng(seed)
    features = np.maximum(rng.normal(size=(120, width)) @ rng.normal(size=(width, width)), 0) + 0.1
    if duplicate:  # rank-deficient: the Gram route must hand over to the SVD
        features = np.hstack([features, features[:, :1]])
    labels = rng.integers(0, 3, 120)
    labels[:3] = [0, 1, 2]
    assert (spectrum._gram_spectrum(features) is None) == duplicate  # which route is taken
    u, sigma = spectrum.thin_svd(features)
    u_svd, sigma_svd = _svd_only(features)
    assert sigma.shape == sigma_svd.shape  # the same rank
    assert np.allclose(np.sort(sigma), np.sort(sigma_svd), rtol=1e-8)
    y = (labels == 1).astype(float)  # the projections LogME uses agree, whatever the basis order
    assert np.allclose(np.sort((u.T @ y) ** 2), np.sort((u_svd.T @ y) ** 2), atol=1e-9)
    assert np.allclose(u @ u.T, u_svd @ u_svd.T, atol=1e-8)  # the same column space
