"""The head-only linear probe: multinomial logistic regression on frozen features.

Protocol (Kornblith et al. 2019; CLIP, appendix A.3): L2-regularised multinomial logistic
regression fitted by L-BFGS; the L2 strength chosen by validation accuracy over a log
grid, then the head refitted on train + val with that strength and scored once on test.

The objective is ``mean cross-entropy + l2/2 * ||W||^2`` (bias unpenalised), the same
minimiser as scikit-learn's ``LogisticRegression(C=1/(l2 * n))``. Features are
standardised with the training statistics so one grid fits every backbone. Each grid point
starts from the previous solution (strongest penalty first), so the sweep costs a few full
fits rather than one per point.

Two solvers run that protocol (:func:`_run_protocol` is shared):

- on the CPU, :class:`_ScipySolver`: the loss and its gradient written out in numpy (two
  matrix products and a softmax per evaluation, into reused buffers), driven by scipy's
  L-BFGS-B. The matrix products run in ``dtype`` (float32 by default, the precision features
  are stored in); the loss is summed, and the optimiser's state kept, in float64, so the line
  search sees a smooth function. An evaluation costs its arithmetic and almost nothing else;
- on any other device (CUDA), :class:`_TorchSolver`: the same objective taped by autograd and
  driven by ``torch.optim.LBFGS`` on the device, where each iteration is nearly free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import torch

from reusespec.devices import single_thread_below

DEFAULT_GRID = tuple(float(x) for x in np.logspace(-6, 2, 9))

# Bump when a change can alter a fitted head (solver, tolerances, precision, protocol): the
# number is part of the key under which fitted heads are cached on disk.
SOLVER_VERSION = 2

# A fit stops when the largest entry of the gradient of the mean loss is at most this
# (scikit-learn's ``tol`` means the same; its default 1e-4 stops short at weak penalties with many
# classes and loses accuracy there: docs/benchmarks.md). The final head (the refit, or the chosen
# sweep point without one) is always fitted to it, and so is every fit of the torch solver.
GRADIENT_TOLERANCE = 1e-6
# The CPU sweep's fits only have to rank the grid points by validation accuracy, so each stops once
# it has cut its starting gradient SWEEP_REDUCTION-fold, within [GRADIENT_TOLERANCE,
# SWEEP_TOLERANCE]. Relative, not a fixed loose tolerance: a warm start from the next stronger
# penalty is already within any fixed loose tolerance at the weakest penalties, so those points would
# not move, would tie with it and lose the tie (measured with 1e-5 fixed: 100 classes, 10,000 x 512,
# validation accuracy at the chosen point 0.893 against 0.908 fitted to 1e-6; the relative rule
# gives 0.908). Measured on the benchmark problems, this halves the evaluations of the
# sweep-and-refit at the same test accuracy (see bench/bench_headfit.py).
SWEEP_TOLERANCE = 1e-5
SWEEP_REDUCTION = 100.0
# L-BFGS memory (scipy's default is 10). Measured over the whole CPU sweep and refit: 5,000 x 256,
# 100 classes, 395 evaluations with 10, 219 with 20, 219 with 40; the demo (3,000 x 64, 10
# classes) 1,584 / 1,534 / 1,450. Same accuracy throughout.
HISTORY = 20

Float64Array = npt.NDArray[np.float64]
ParamsT = TypeVar("ParamsT")


@dataclass
class LinearHead:
    """A fitted probe: standardisation plus a linear layer."""

    mean: torch.Tensor
    scale: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    l2: float

    def logits(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        x = _as_tensor(features, self.weight.dtype, self.weight.device)
        z = (x - self.mean) / self.scale
        return (z @ self.weight.T + self.bias).cpu().numpy()


@dataclass
class ProbeFit:
    head: LinearHead
    l2: float
    val_accuracy: float
    sweep: list[tuple[float, float]] = field(default_factory=list)


def _as_tensor(x: np.ndarray | torch.Tensor, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype)
    array = np.asarray(x)
    t = torch.from_numpy(array if array.flags.writeable else np.array(array))  # memory-mapped cache entries
    return t.to(device=device, dtype=dtype)


class _Solver(Protocol, Generic[ParamsT]):
    """What the protocol needs from a solver; ``ParamsT`` is its own form of (weight, bias)."""

    def fit(self, l2: float, init: ParamsT | None) -> ParamsT:
        """Minimise the objective on the training split, from ``init`` (zeros when None)."""
        ...

    def val_accuracy(self, params: ParamsT) -> float: ...

    def refit(self, l2: float, init: ParamsT) -> ParamsT:
        """Minimise the objective on train + val, standardised with their joint statistics."""
        ...

    def head(self, params: ParamsT, l2: float, refitted: bool) -> LinearHead: ...


def _run_protocol(
    solver: _Solver[ParamsT], l2_grid: tuple[float, ...], refine: bool, refit_on_train_val: bool
) -> ProbeFit:
    """Sweep strong to weak with warm starts, refine around the best, refit on train + val."""
    sweep: dict[float, tuple[float, ParamsT]] = {}
    params: ParamsT | None = None
    for l2 in sorted(l2_grid, reverse=True):  # strong to weak: each fit warm-starts the next
        params = solver.fit(l2, params)
        sweep[l2] = (solver.val_accuracy(params), params)
    best = _best(sweep)
    if refine and len(l2_grid) > 1:
        # One finer pass around the best point: half a grid step either side.
        step = np.diff(np.log10(sorted(l2_grid))).min() / 2
        for l2 in (best * 10**step, best / 10**step):
            if l2 not in sweep and min(l2_grid) <= l2 <= max(l2_grid):  # refine inside the grid only
                params = solver.fit(l2, sweep[best][1])
                sweep[l2] = (solver.val_accuracy(params), params)
        best = _best(sweep)
    best_val, best_params = sweep[best]
    if refit_on_train_val:
        best_params = solver.refit(best, best_params)
    best = float(best)  # plain floats travel to the xdist controller; numpy scalars do not
    head = solver.head(best_params, best, refit_on_train_val)
    return ProbeFit(head, best, best_val, sorted((float(l2), acc) for l2, (acc, _) in sweep.items()))


def _best(sweep: dict[float, tuple[float, ParamsT]]) -> float:
    """Highest validation accuracy; ties go to the stronger penalty (the simpler head)."""
    return max(sweep, key=lambda l2: (sweep[l2][0], l2))


# ---------------------------------------------------------------------------------------------
# CPU: written-out gradient, scipy's L-BFGS-B


def _standardise_np(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample standard deviation (ddof=1), accumulated in float64, returned in x's dtype."""
    mean = x.mean(axis=0, dtype=np.float64)
    centred = x - mean.astype(x.dtype)
    scale = np.sqrt(np.square(centred).sum(axis=0, dtype=np.float64) / max(len(x) - 1, 1))
    scale = np.where(scale > 1e-8, scale, 1.0)  # constant features stay zero
    return mean.astype(x.dtype), scale.astype(x.dtype)


class _Objective:
    """Mean cross-entropy + l2/2 ||W||^2 and its gradient at a flat float64 vector (W rows, then b).

    The logits are held class-major (classes x samples): the softmax's max and sum then run
    across rows, element-wise over long contiguous rows, which halves an evaluation's cost at
    10 classes against per-sample reductions over short rows (numpy is slow at those).
    """

    def __init__(self, z: np.ndarray, y: npt.NDArray[np.intp], num_classes: int, l2: float) -> None:
        self.z, self.y, self.classes, self.l2 = z, y, num_classes, l2
        self.samples = np.arange(len(y))
        self.logits = np.empty((num_classes, len(y)), dtype=z.dtype)  # reused by every evaluation
        self.evaluations = 0
        self.last: tuple[Float64Array, float, Float64Array] | None = None

    def __call__(self, params: Float64Array) -> tuple[float, Float64Array]:
        if self.last is not None and np.array_equal(params, self.last[0]):
            return self.last[1], self.last[2].copy()  # the start point, evaluated before the solver ran
        self.evaluations += 1
        n, d = self.z.shape
        weight = params[: self.classes * d].reshape(self.classes, d)
        logits = np.matmul(weight.astype(self.z.dtype), self.z.T, out=self.logits)
        logits += params[self.classes * d :, None].astype(self.z.dtype)
        logits -= logits.max(axis=0)
        true_class = logits[self.y, self.samples].astype(np.float64)
        np.exp(logits, out=logits)
        totals = logits.sum(axis=0)  # >= 1: the largest logit contributes exp(0)
        logits /= totals  # now the softmax
        # -log softmax at the true class as log-sum-exp minus the true logit (finite even where the
        # softmax underflows to 0), summed in float64 so the line search sees a smooth loss.
        loss = float((np.log(totals.astype(np.float64)) - true_class).sum()) / n
        loss += 0.5 * self.l2 * float(np.square(weight).sum())  # a plain sum: no threaded BLAS dot
        logits[self.y, self.samples] -= 1.0  # now d(sum of losses)/d(logits)
        grad = np.empty_like(params)
        grad_weight = grad[: self.classes * d].reshape(self.classes, d)
        grad_weight[...] = logits @ self.z  # in the features' precision, then float64
        grad_weight /= n
        grad_weight += self.l2 * weight
        grad[self.classes * d :] = logits.sum(axis=1, dtype=np.float64) / n
        self.last = (params.copy(), float(loss), grad.copy())
        return float(loss), grad


@dataclass
class _ScipySolver:
    """L-BFGS-B on numpy features; parameters travel as one flat float64 vector."""

    train_x: np.ndarray
    train_y: npt.NDArray[np.intp]
    val_x: np.ndarray
    val_y: npt.NDArray[np.intp]
    num_classes: int
    max_iter: int
    in_sweep: bool = True  # False: every fit to GRADIENT_TOLERANCE (no refit follows the sweep)
    evaluations: int = 0

    def __post_init__(self) -> None:
        self.mean, self.scale = _standardise_np(self.train_x)
        self.z_train = (self.train_x - self.mean) / self.scale
        self.z_val = (self.val_x - self.mean) / self.scale

    def _minimise(
        self, z: np.ndarray, y: npt.NDArray[np.intp], l2: float, init: Float64Array | None, sweep: bool
    ) -> Float64Array:
        from scipy.optimize import minimize

        start = np.zeros(self.num_classes * (z.shape[1] + 1)) if init is None else init
        objective = _Objective(z, y, self.num_classes, l2)
        gtol = GRADIENT_TOLERANCE
        if sweep:
            reduced = float(np.abs(objective(start)[1]).max()) / SWEEP_REDUCTION
            gtol = min(max(reduced, GRADIENT_TOLERANCE), SWEEP_TOLERANCE)
        result = minimize(
            objective,
            start,
            jac=True,
            method="L-BFGS-B",
            options={
                "maxiter": self.max_iter,
                "maxfun": self.max_iter * 2,
                "maxcor": HISTORY,
                "gtol": gtol,
                "ftol": 64 * np.finfo(float).eps,  # stop on the gradient, not on a stalled loss
            },
        )
        self.evaluations += objective.evaluations
        return np.asarray(result.x, dtype=np.float64)

    def _split(self, params: Float64Array) -> tuple[np.ndarray, np.ndarray]:
        d = self.train_x.shape[1]
        weight = params[: self.num_classes * d].reshape(self.num_classes, d)
        return weight.astype(self.train_x.dtype), params[self.num_classes * d :].astype(self.train_x.dtype)

    def fit(self, l2: float, init: Float64Array | None) -> Float64Array:
        return self._minimise(self.z_train, self.train_y, l2, init, sweep=self.in_sweep)

    def val_accuracy(self, params: Float64Array) -> float:
        weight, bias = self._split(params)
        return float(((self.z_val @ weight.T + bias).argmax(1) == self.val_y).mean())

    def refit(self, l2: float, init: Float64Array) -> Float64Array:
        x_all = np.concatenate([self.train_x, self.val_x])
        self.mean, self.scale = _standardise_np(x_all)
        y_all = np.concatenate([self.train_y, self.val_y])
        return self._minimise((x_all - self.mean) / self.scale, y_all, l2, init, sweep=False)

    def head(self, params: Float64Array, l2: float, refitted: bool) -> LinearHead:
        weight, bias = self._split(params)

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a))

        return LinearHead(tensor(self.mean), tensor(self.scale), tensor(weight), tensor(bias), l2)


# ---------------------------------------------------------------------------------------------
# Other devices: autograd and torch.optim.LBFGS on the device

TorchParams = tuple[torch.Tensor, torch.Tensor]


def _standardise_torch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = x.mean(dim=0)
    scale = x.std(dim=0)
    scale = torch.where(scale > 1e-8, scale, torch.ones_like(scale))  # constant features stay zero
    return mean, scale


@dataclass
class _TorchSolver:
    """torch.optim.LBFGS (strong Wolfe line search) on tensors on ``device``, in ``dtype``."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    num_classes: int
    max_iter: int

    def __post_init__(self) -> None:
        self.mean, self.scale = _standardise_torch(self.train_x)
        self.z_train = (self.train_x - self.mean) / self.scale
        self.z_val = (self.val_x - self.mean) / self.scale

    def _minimise(self, z: torch.Tensor, y: torch.Tensor, l2: float, init: TorchParams | None) -> TorchParams:
        weight = torch.zeros(self.num_classes, z.shape[1], dtype=z.dtype, device=z.device)
        bias = torch.zeros(self.num_classes, dtype=z.dtype, device=z.device)
        if init is not None:
            weight.copy_(init[0])
            bias.copy_(init[1])
        weight.requires_grad_(True)
        bias.requires_grad_(True)
        optimizer = torch.optim.LBFGS(
            [weight, bias],
            lr=1.0,
            max_iter=self.max_iter,
            history_size=HISTORY,
            tolerance_grad=GRADIENT_TOLERANCE,
            tolerance_change=1e-10,
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            logits = torch.addmm(bias, z, weight.T)
            loss = torch.nn.functional.cross_entropy(logits, y) + 0.5 * l2 * weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        return weight.detach(), bias.detach()

    def fit(self, l2: float, init: TorchParams | None) -> TorchParams:
        return self._minimise(self.z_train, self.train_y, l2, init)

    def val_accuracy(self, params: TorchParams) -> float:
        return float(((self.z_val @ params[0].T + params[1]).argmax(1) == self.val_y).double().mean())

    def refit(self, l2: float, init: TorchParams) -> TorchParams:
        x_all = torch.cat([self.train_x, self.val_x])
        self.mean, self.scale = _standardise_torch(x_all)
        return self._minimise(
            (x_all - self.mean) / self.scale, torch.cat([self.train_y, self.val_y]), l2, init
        )

    def head(self, params: TorchParams, l2: float, refitted: bool) -> LinearHead:
        return LinearHead(self.mean, self.scale, params[0], params[1], l2)


# ---------------------------------------------------------------------------------------------
# Threads

# A CPU fit runs on one thread, torch and BLAS alike, whatever the process uses elsewhere:
# - determinism: OpenBLAS's threaded matrix products round differently from its single-threaded
#   ones (measured: 100 x 256 by 256 x 5,000 differs between 1 and 2 threads), so a head would
#   depend on the thread count, and a serial pytest run and its xdist workers (one thread each)
#   would report different scores;
# - speed: on a shared machine extra threads mostly wait on each other (figures in
#   docs/benchmarks.md, "Threads of a CPU fit"); on an idle machine 2 threads would save up to half
#   a large fit.


# ---------------------------------------------------------------------------------------------
# The entry point

_NUMPY_DTYPES: dict[torch.dtype, type[np.floating]] = {torch.float32: np.float32, torch.float64: np.float64}


def fit_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    *,
    num_classes: int,
    l2_grid: tuple[float, ...] = DEFAULT_GRID,
    refine: bool = True,
    refit_on_train_val: bool = True,
    max_iter: int = 200,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> ProbeFit:
    """Choose the L2 strength on ``val``, then (by default) refit on train + val.

    ``dtype`` is the precision of the products of features and weights: float32 (the default,
    the precision features are stored in) or float64. On the CPU the loss is summed and the
    optimiser's state kept in float64 either way; on other devices the whole fit runs in ``dtype``.
    The head's tensors are in ``dtype``, on ``device``.
    """
    return _fit_probe(
        train_x,
        train_y,
        val_x,
        val_y,
        num_classes=num_classes,
        l2_grid=l2_grid,
        refine=refine,
        refit_on_train_val=refit_on_train_val,
        max_iter=max_iter,
        device=device,
        dtype=dtype,
        use_torch=torch.device(device).type != "cpu",
    )


def _fit_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    *,
    num_classes: int,
    l2_grid: tuple[float, ...],
    refine: bool,
    refit_on_train_val: bool,
    max_iter: int,
    device: torch.device | str,
    dtype: torch.dtype,
    use_torch: bool,
) -> ProbeFit:
    """:func:`fit_probe` with the solver chosen by ``use_torch`` (tests run the torch one on the CPU)."""
    if dtype not in _NUMPY_DTYPES:
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if len(np.unique(np.asarray(train_y))) < 2:
        raise ValueError("the training split has fewer than two classes; a probe needs at least two")
    with single_thread_below(0.0, math.inf, device):  # every CPU fit (see above)
        if use_torch:
            tensors = [_as_tensor(x, dtype, device) for x in (train_x, val_x)]
            labels = [
                torch.as_tensor(np.asarray(y), dtype=torch.long, device=device) for y in (train_y, val_y)
            ]
            torch_solver = _TorchSolver(tensors[0], labels[0], tensors[1], labels[1], num_classes, max_iter)
            return _run_protocol(torch_solver, l2_grid, refine, refit_on_train_val)
        arrays = [_as_numpy(x, _NUMPY_DTYPES[dtype]) for x in (train_x, val_x)]
        targets = [np.asarray(y, dtype=np.intp) for y in (train_y, val_y)]
        cpu_solver = _ScipySolver(
            arrays[0], targets[0], arrays[1], targets[1], num_classes, max_iter, in_sweep=refit_on_train_val
        )
        return _run_protocol(cpu_solver, l2_grid, refine, refit_on_train_val)


def _as_numpy(x: np.ndarray | torch.Tensor, dtype: type[np.floating]) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=dtype)
