"""The references reusespec is measured against: the usual hand-written head-only loop, and
scikit-learn's L-BFGS logistic regression with the probe's regularisation sweep, warm-started
(:func:`sklearn_sweep`) or as the linear-probe literature runs it, a fresh estimator per grid
point (:func:`sklearn_literature`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from reusespec.backbones.base import Backbone
from reusespec.probe import DEFAULT_GRID
from reusespec.tasks.base import Task


@dataclass
class LoopResult:
    accuracy: float
    forward_passes: int


def usual_head_only_loop(
    backbone: Backbone,
    task: Task,
    *,
    epochs: int = 10,
    lr: float = 0.001,
    momentum: float = 0.9,
    batch_size: int = 100,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> LoopResult:
    """The common tutorial loop: frozen backbone, new last layer, SGD; every batch through the backbone.

    The backbone stays in eval mode (frozen BatchNorm statistics) and runs under ``no_grad``,
    the fastest correct form of the loop. It trains on train + val, the same labelled examples
    the probe's final refit sees, and is scored on the test split.
    """
    torch.manual_seed(seed)
    device = torch.device(device)
    model = backbone.model.to(device).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    head = nn.Linear(backbone.feature_dim, task.num_classes).to(device)
    optimizer = torch.optim.SGD(head.parameters(), lr=lr, momentum=momentum)
    images = torch.cat([task.train.load(np.arange(len(task.train))), task.val.load(np.arange(len(task.val)))])
    labels = torch.from_numpy(np.concatenate([task.train.labels, task.val.labels]))
    generator = torch.Generator().manual_seed(seed)
    passes = 0
    for _ in range(epochs):
        head.train()
        for batch in torch.randperm(len(labels), generator=generator).split(batch_size):
            inputs = backbone.prepare(images[batch].to(device))
            with torch.no_grad():
                features = model(inputs)
            passes += len(batch)
            loss = nn.functional.cross_entropy(head(features), labels[batch].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    head.eval()
    correct = 0
    test = task.test
    with torch.no_grad():
        for first in range(0, len(test), batch_size):
            positions = np.arange(first, min(first + batch_size, len(test)))
            logits = head(model(backbone.prepare(test.load(positions).to(device))))
            correct += int((logits.argmax(1).cpu().numpy() == test.labels[positions]).sum())
            passes += len(positions)
    return LoopResult(correct / len(test), passes)


@dataclass
class SklearnSweep:
    l2: float
    val_accuracy: float
    coef: npt.NDArray[np.float64]
    intercept: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    iterations: int = 0
    sweep: list[tuple[float, float]] = field(default_factory=list)

    def logits(self, features: npt.ArrayLike) -> npt.NDArray[np.float64]:
        z = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        return z @ self.coef.T + self.intercept


def _standardise(x: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0, ddof=1)
    return mean, np.where(scale > 1e-8, scale, 1.0)


def sklearn_sweep(
    train_x: npt.ArrayLike,
    train_y: npt.ArrayLike,
    val_x: npt.ArrayLike,
    val_y: npt.ArrayLike,
    *,
    l2_grid: tuple[float, ...] = DEFAULT_GRID,
    refine: bool = True,
    max_iter: int = 200,
    tol: float = 1e-4,
) -> SklearnSweep:
    """The linear-probe standard (Kornblith et al.; ssl-transfer) with warm starts:
    LogisticRegression(lbfgs, warm_start) over the same L2 grid as the probe (C = 1/(l2 * n)),
    strong to weak, the same refinement and the same refit on train + val, on the same
    standardised features. ``tol`` bounds the largest gradient entry of the mean loss, as
    ``fit_probe``'s tolerance does: 1e-4 is scikit-learn's default, 1e-6 fit_probe's."""
    return _sklearn_protocol(train_x, train_y, val_x, val_y, l2_grid, refine, max_iter, tol, warm_start=True)


def sklearn_literature(
    train_x: npt.ArrayLike,
    train_y: npt.ArrayLike,
    val_x: npt.ArrayLike,
    val_y: npt.ArrayLike,
    *,
    l2_grid: tuple[float, ...] = DEFAULT_GRID,
    refine: bool = True,
    max_iter: int = 1000,
) -> SklearnSweep:
    """How linear-probe code usually runs scikit-learn: a fresh ``LogisticRegression(solver="lbfgs",
    max_iter=1000)`` for every grid point (no warm start, default ``tol=1e-4``), over the same grid,
    refinement and refit on train + val as the probe, on the same standardised features."""
    return _sklearn_protocol(
        train_x, train_y, val_x, val_y, l2_grid, refine, max_iter, 1e-4, warm_start=False
    )


def _sklearn_protocol(
    train_x: npt.ArrayLike,
    train_y: npt.ArrayLike,
    val_x: npt.ArrayLike,
    val_y: npt.ArrayLike,
    l2_grid: tuple[float, ...],
    refine: bool,
    max_iter: int,
    tol: float,
    *,
    warm_start: bool,
) -> SklearnSweep:
    """The probe's protocol on scikit-learn. With ``warm_start`` one estimator walks the grid strong to
    weak, each fit starting from the last solution (a refinement or the refit from the chosen
    point's); without it every fit starts from zero."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    xt = np.asarray(train_x, dtype=np.float64)
    xv = np.asarray(val_x, dtype=np.float64)
    yt, yv = np.asarray(train_y), np.asarray(val_y)
    mean, scale = _standardise(xt)
    zt, zv = (xt - mean) / scale, (xv - mean) / scale
    clf = LogisticRegression(solver="lbfgs", warm_start=warm_start, max_iter=max_iter, tol=tol)
    found: dict[float, tuple[float, npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}
    iterations = 0

    def fit_at(
        l2: float, z: npt.NDArray[np.float64], y: npt.NDArray[np.int64], start: float | None = None
    ) -> None:
        nonlocal iterations
        if warm_start and start is not None:
            clf.coef_, clf.intercept_ = found[start][1].copy(), found[start][2].copy()
        clf.set_params(C=1.0 / (l2 * len(z)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(z, y)
        iterations += int(np.max(clf.n_iter_))

    for l2 in sorted(l2_grid, reverse=True):
        fit_at(l2, zt, yt)
        found[l2] = (float(clf.score(zv, yv)), clf.coef_.copy(), clf.intercept_.copy())
    best = max(found, key=lambda k: (found[k][0], k))
    if refine and len(l2_grid) > 1:
        step = np.diff(np.log10(sorted(l2_grid))).min() / 2
        for l2 in (best * 10**step, best / 10**step):
            if l2 not in found and min(l2_grid) <= l2 <= max(l2_grid):
                fit_at(l2, zt, yt, start=best)
                found[l2] = (float(clf.score(zv, yv)), clf.coef_.copy(), clf.intercept_.copy())
        best = max(found, key=lambda k: (found[k][0], k))
    x_all = np.concatenate([xt, xv])
    mean, scale = _standardise(x_all)
    fit_at(best, (x_all - mean) / scale, np.concatenate([yt, yv]), start=best)
    return SklearnSweep(
        best,
        found[best][0],
        clf.coef_.copy(),
        clf.intercept_.copy(),
        mean,
        scale,
        iterations,
        sorted((k, v[0]) for k, v in found.items()),
    )
