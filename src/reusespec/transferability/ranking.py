"""Whether scores order backbones like the accuracies they really reach."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats


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
