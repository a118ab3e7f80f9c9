"""Fitted probe heads on disk, next to the features they were fitted on.

A probe's head is a pure function of its training and validation features, their labels, the
L2 grid and the solver, so it is cached like the features are: content-addressed, written
atomically, verified when read, computed once across processes under a per-key lock. A new
pytest run on a warm cache then costs what reading the features costs, and xdist workers
never refit a head another worker has fitted.

The entry is one float64 array of shape ``(C + 2, D + 1)``: rows ``0..C-1`` hold
``[weight | bias]``, row ``C`` the standardisation mean and row ``C + 1`` its scale (last
column unused); the chosen L2 strength, validation accuracy and sweep go in the entry's
metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from reusespec import probe
from reusespec.backbones.base import Backbone
from reusespec.cache import FeatureCache
from reusespec.features import feature_key
from reusespec.hashing import digest
from reusespec.probe import LinearHead, ProbeFit
from reusespec.tasks.base import Split

HEAD_FORMAT = 1


def head_key(
    backbone: Backbone,
    train: Split,
    val: Split,
    num_classes: int,
    l2_grid: tuple[float, ...],
    device: torch.device,
) -> str:
    """What a fitted head depends on: both feature sets, their labels, the grid and the solver."""
    return digest(
        "probe-head",
        HEAD_FORMAT,
        probe.SOLVER_VERSION,
        feature_key(backbone, train),
        feature_key(backbone, val),
        train.fingerprint,  # covers the labels, which the features do not depend on
        val.fingerprint,
        num_classes,
        [float(x) for x in l2_grid],
        device.type,  # a GPU fit's reduction order differs from the CPU's
        np.__version__,
    )


def pack(fit: ProbeFit) -> tuple[np.ndarray, dict[str, Any]]:
    head = fit.head
    weight = head.weight.detach().cpu().double().numpy()
    classes, dim = weight.shape
    array = np.zeros((classes + 2, dim + 1))
    array[:classes, :dim] = weight
    array[:classes, dim] = head.bias.detach().cpu().double().numpy()
    array[classes, :dim] = head.mean.detach().cpu().double().numpy()
    array[classes + 1, :dim] = head.scale.detach().cpu().double().numpy()
    meta = {
        "kind": "probe-head",
        "l2": fit.l2,
        "val_accuracy": fit.val_accuracy,
        "sweep": [[float(l2), float(acc)] for l2, acc in fit.sweep],
        "head_dtype": str(head.weight.dtype).removeprefix("torch."),
    }
    return array, meta


def unpack(array: np.ndarray, meta: dict[str, Any], device: torch.device) -> ProbeFit:
    dtype = getattr(torch, meta["head_dtype"])
    rows = torch.as_tensor(np.array(array), dtype=dtype, device=device)  # a writable copy of the map
    classes = rows.shape[0] - 2
    head = LinearHead(
        mean=rows[classes, :-1].clone(),
        scale=rows[classes + 1, :-1].clone(),
        weight=rows[:classes, :-1].clone(),
        bias=rows[:classes, -1].clone(),
        l2=float(meta["l2"]),
    )
    sweep = [(float(l2), float(acc)) for l2, acc in meta["sweep"]]
    return ProbeFit(head, float(meta["l2"]), float(meta["val_accuracy"]), sweep)


def cached_fit(cache: FeatureCache, key: str, fit: Callable[[], ProbeFit], device: torch.device) -> ProbeFit:
    """The head stored under ``key``, or ``fit()`` run once (under the key's lock) and stored."""
    fitted: list[ProbeFit] = []

    def compute() -> tuple[np.ndarray, dict[str, Any]]:
        fitted.append(fit())
        return pack(fitted[0])

    array, meta, _ = cache.get_or_compute_entry(key, compute)
    if fitted:  # computed here: return the head itself, not its round trip through float64
        return fitted[0]
    return unpack(array, meta, device)
