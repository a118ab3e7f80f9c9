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

from reusespec.transferability.dispatch import (
    SCORES,
    SOURCE_HEAD_METHODS,
    ScoreRequest,
    transferability_score,
)
from reusespec.transferability.hscore import h_score, regularized_h_score
from reusespec.transferability.knn import knn_accuracy, knn_split_accuracy
from reusespec.transferability.logme import LogMEFit, logme, logme_fit
from reusespec.transferability.ranking import RankAgreement, rank_agreement
from reusespec.transferability.source_scores import leep, nce

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
