"""Checks on frozen features before anything is fitted or scored on them.

Nothing downstream may depend on the features' scale: a randomly initialised deep network in
eval mode can output features of magnitude 1e-9 that still carry the information. So "constant"
is decided relative to each column's own magnitude, never against an absolute threshold, and the
same rule serves the probe's standardisation (:func:`column_scale`) and the warning here.

Degenerate features are reported naming the backbone: NaN or infinite values raise
:class:`DegenerateFeaturesError`; features that are constant in every column across the samples
(nothing to learn from) raise a :class:`DegenerateFeaturesWarning`.
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt

from reusespec.errors import ReuseSpecError

# A column whose standard deviation is at most this fraction of its largest magnitude is constant:
# its spread is then at the level of float32 rounding (eps 1.2e-7) of the values themselves.
RELATIVE_CONSTANT_TOLERANCE = 1e-6


class DegenerateFeaturesError(ReuseSpecError, ValueError):
    """Features that hold NaN or infinite values."""


class DegenerateFeaturesWarning(UserWarning):
    """Features that are constant across the samples, so no probe or score can use them."""


def column_scale(
    std: npt.NDArray[np.floating], max_abs: npt.NDArray[np.floating]
) -> npt.NDArray[np.floating]:
    """The standardisation divisor per column: ``std``, or 1 where the column is constant.

    Constant means ``std <= RELATIVE_CONSTANT_TOLERANCE * max|x|`` (an all-zero column included):
    a rule that multiplying the features by any factor leaves unchanged.
    """
    constant = ~(std > RELATIVE_CONSTANT_TOLERANCE * max_abs)
    return np.where(constant, 1.0, std)


def constant_columns(features: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Which columns are constant across the rows, by the rule of :func:`column_scale`."""
    x = np.asarray(features, dtype=np.float64)
    if x.shape[0] < 2:
        return np.ones(x.shape[1], dtype=bool)
    std = x.std(axis=0)
    max_abs = np.abs(x).max(axis=0)
    return np.asarray(~(std > RELATIVE_CONSTANT_TOLERANCE * max_abs))


def check_features(
    features: npt.ArrayLike, backbone: str, what: str = "features", *, warn_constant: bool = True
) -> None:
    """Raise on NaN/Inf, warn (if ``warn_constant``) when every column is constant; naming ``backbone``."""
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] == 0:
        return  # shapes are the consumers' to check, with their own messages
    finite = np.isfinite(x)
    if not finite.all():
        bad_rows = int((~finite).any(axis=1).sum())
        raise DegenerateFeaturesError(
            f"the {what} of backbone {backbone!r} contain NaN or infinite values ({bad_rows} of "
            f"{x.shape[0]} samples affected): its forward pass overflows or divides by zero. Check the "
            "checkpoint (a corrupt or half-trained file), the input normalisation, and the precision "
            "(float16 overflows above 65504); the cached features are not used for any score."
        )
    if warn_constant and constant_columns(x).all():
        warnings.warn(
            f"the {what} of backbone {backbone!r} are constant across all {x.shape[0]} samples (every one "
            f"of {x.shape[1]} dimensions): every probe and score on them is at chance. The backbone ignores "
            "its input: check that its weights loaded and that the images reach it.",
            DegenerateFeaturesWarning,
            stacklevel=2,
        )
