"""A prototype of a faster head fit, to show what the numbers call for (for the lead to move into src/).

Same model, objective and protocol as :func:`reusespec.probe.fit_probe`: multinomial logistic
regression on standardised features, ``mean cross-entropy + l2/2 * ||W||^2`` (bias unpenalised),
the L2 strength swept strong to weak with warm starts, one refinement pass of half a grid step
either side of the best point, then a refit on train + val. What differs is how each fit is
solved, which is where ``fit_probe`` spends its time (see docs/benchmarks.md):

- the gradient is written out (two matrix products and a softmax) instead of taped by autograd,
  and scipy's L-BFGS-B (Fortran) drives it, so an iteration costs its arithmetic and little else;
- the matrix products run in float32, the features' own precision (they are stored as float32),
  with the loss summed in float64; the optimum moves by far less than the accuracy it is scored on;
- each fit stops when the largest gradient entry of the mean loss is <= ``gtol`` (1e-6, fit_probe's
  ``tolerance_grad``; scikit-learn's default 1e-4 is cheaper but stops short at weak penalties
  with many classes and loses accuracy there: measured in docs/benchmarks.md);
- optionally (``sweep_gtol``) the sweep's fits stop at a looser tolerance than the final refit:
  they only have to rank the grid points by validation accuracy, and the refit starts from the
  chosen point's solution. Measured: at 10 classes this keeps fit_probe's accuracy; at 100
  classes the loose sweep under-fits the weakest penalties, picks a stronger one and loses 0.5 to
  1.5 points (the refit's precision is not the cause: a float64 refit scores the same);
- optionally (``early_stop``) the sweep ends once validation accuracy has fallen for two grid
  points in a row below the best (on the default grid the peak is near the weak end, so this
  rarely saves anything; kept for wider grids).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

from reusespec.probe import DEFAULT_GRID

Array = npt.NDArray[np.floating]


@dataclass
class FastHead:
    mean: Array
    scale: Array
    weight: Array
    bias: Array
    l2: float

    def logits(self, features: npt.ArrayLike) -> Array:
        z = (np.asarray(features, dtype=self.weight.dtype) - self.mean) / self.scale
        return z @ self.weight.T + self.bias


@dataclass
class FastFit:
    head: FastHead
    l2: float
    val_accuracy: float
    sweep: list[tuple[float, float]] = field(default_factory=list)
    evaluations: int = 0


def _standardise(x: Array) -> tuple[Array, Array]:
    mean = x.mean(axis=0, dtype=np.float64)
    scale = x.std(axis=0, ddof=1, dtype=np.float64)  # ddof=1 as torch.std in fit_probe
    scale = np.where(scale > 1e-8, scale, 1.0)
    return mean.astype(x.dtype), scale.astype(x.dtype)


class _Objective:
    """Loss and gradient of the L2-penalised multinomial logistic regression at a flat parameter vector."""

    def __init__(self, z: Array, y: npt.NDArray[np.int64], num_classes: int, l2: float) -> None:
        self.z, self.y, self.c, self.l2 = z, y, num_classes, l2
        self.rows = np.arange(len(y))
        self.evaluations = 0

    def __call__(self, params: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        self.evaluations += 1
        n, d = self.z.shape
        weight = params[: self.c * d].reshape(self.c, d).astype(self.z.dtype)
        bias = params[self.c * d :].astype(self.z.dtype)
        logits = self.z @ weight.T + bias
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        totals = logits.sum(axis=1, keepdims=True)
        # -log softmax at the true class, summed in float64 so the line search sees a smooth loss.
        loss = -np.log(logits[self.rows, self.y] / totals[:, 0]).sum(dtype=np.float64) / n
        probs = logits / totals
        probs[self.rows, self.y] -= 1.0
        probs /= n
        grad_w = probs.T @ self.z + self.l2 * weight
        grad_b = probs.sum(axis=0)
        loss += 0.5 * self.l2 * float(np.dot(weight.ravel(), weight.ravel()))
        return loss, np.concatenate([grad_w.ravel(), grad_b]).astype(np.float64)


def _solve(
    z: Array,
    y: npt.NDArray[np.int64],
    num_classes: int,
    l2: float,
    init: npt.NDArray[np.float64] | None,
    max_iter: int,
    gtol: float,
) -> tuple[npt.NDArray[np.float64], int]:
    d = z.shape[1]
    start = np.zeros(num_classes * (d + 1)) if init is None else init
    objective = _Objective(z, y, num_classes, l2)
    result = minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "maxfun": max_iter * 2, "gtol": gtol, "ftol": 64 * np.finfo(float).eps},
    )
    return np.asarray(result.x), objective.evaluations


def fast_fit_probe(
    train_x: npt.ArrayLike,
    train_y: npt.ArrayLike,
    val_x: npt.ArrayLike,
    val_y: npt.ArrayLike,
    *,
    num_classes: int,
    l2_grid: tuple[float, ...] = DEFAULT_GRID,
    refine: bool = True,
    refit_on_train_val: bool = True,
    max_iter: int = 200,
    gtol: float = 1e-6,
    sweep_gtol: float | None = None,
    dtype: type[np.floating] = np.float32,
    early_stop: bool = False,
) -> FastFit:
    """Choose the L2 strength on ``val`` along a warm-started path, then refit on train + val."""
    xt = np.asarray(train_x, dtype=dtype)
    xv = np.asarray(val_x, dtype=dtype)
    yt = np.asarray(train_y, dtype=np.int64)
    yv = np.asarray(val_y, dtype=np.int64)
    d = xt.shape[1]
    sweep_gtol = gtol if sweep_gtol is None else sweep_gtol
    mean, scale = _standardise(xt)
    zt, zv = (xt - mean) / scale, (xv - mean) / scale
    evaluations = 0

    def val_accuracy(params: npt.NDArray[np.float64]) -> float:
        w = params[: num_classes * d].reshape(num_classes, d).astype(dtype)
        return float(((zv @ w.T + params[num_classes * d :].astype(dtype)).argmax(1) == yv).mean())

    sweep: dict[float, tuple[float, npt.NDArray[np.float64]]] = {}
    params: npt.NDArray[np.float64] | None = None
    falls = 0
    for l2 in sorted(l2_grid, reverse=True):
        params, used = _solve(zt, yt, num_classes, l2, params, max_iter, sweep_gtol)
        evaluations += used
        accuracy = val_accuracy(params)
        best_so_far = max((acc for acc, _ in sweep.values()), default=-1.0)
        sweep[l2] = (accuracy, params)
        falls = falls + 1 if accuracy < best_so_far else 0
        if early_stop and falls >= 2:
            break
    best = max(sweep, key=lambda k: (sweep[k][0], k))
    if refine and len(l2_grid) > 1:
        step = np.diff(np.log10(sorted(l2_grid))).min() / 2
        for l2 in (best * 10**step, best / 10**step):
            if l2 not in sweep:
                refined, used = _solve(zt, yt, num_classes, l2, sweep[best][1], max_iter, sweep_gtol)
                evaluations += used
                sweep[l2] = (val_accuracy(refined), refined)
        best = max(sweep, key=lambda k: (sweep[k][0], k))
    best_val, best_params = sweep[best]
    if refit_on_train_val:
        x_all = np.concatenate([xt, xv])
        mean, scale = _standardise(x_all)
        best_params, used = _solve(
            (x_all - mean) / scale, np.concatenate([yt, yv]), num_classes, best, best_params, max_iter, gtol
        )
        evaluations += used
    head = FastHead(
        mean,
        scale,
        best_params[: num_classes * d].reshape(num_classes, d).astype(dtype),
        best_params[num_classes * d :].astype(dtype),
        best,
    )
    return FastFit(head, best, best_val, sorted((k, v[0]) for k, v in sweep.items()), evaluations)
