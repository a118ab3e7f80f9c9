"""Strict JSON for report documents: no bare ``NaN`` or ``Infinity``.

Python's :mod:`json` writes ``NaN``/``Infinity`` by default, which JavaScript's ``JSON.parse``,
``jq`` and most other parsers reject. A score can be non-finite (a ``>= nan`` comparison, a
diverged fit), and a report must still say so: the number becomes ``null`` and the dict that
holds it gets a ``non_finite`` entry naming the field and what it was, e.g.
``{"value": null, "threshold": 0.9, "non_finite": {"value": "nan"}}``. A non-finite number in
a list is named by its index (``"seed_values[2]": "inf"``) in the nearest enclosing dict.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["NON_FINITE_KEY", "dumps_strict", "non_finite_name", "strict"]

NON_FINITE_KEY = "non_finite"


def non_finite_name(value: float) -> str:
    """``"nan"``, ``"inf"`` or ``"-inf"``."""
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def _is_non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _strict_list(
    items: list[Any] | tuple[Any, ...], path: str, flags: dict[str, str], _open: frozenset[int]
) -> list[Any]:
    if id(items) in _open:
        raise ValueError("Circular reference detected")
    _open = _open | {id(items)}
    out: list[Any] = []
    for index, item in enumerate(items):
        where = f"{path}[{index}]"
        if _is_non_finite(item):
            flags[where] = non_finite_name(item)
            out.append(None)
        elif isinstance(item, list | tuple):
            out.append(_strict_list(item, where, flags, _open))
        else:
            out.append(strict(item, _open))
    return out


def strict(value: Any, _open: frozenset[int] = frozenset()) -> Any:
    """A copy of ``value`` with every non-finite float replaced by ``None`` and flagged.

    Dicts, lists and tuples are copied (tuples become lists, as JSON has them); other values
    are returned as they are. A non-finite float that is the whole value becomes
    ``{"value": None, "non_finite": NAME}``.
    """
    if _is_non_finite(value):
        return {"value": None, NON_FINITE_KEY: non_finite_name(value)}
    if isinstance(value, list | tuple | dict):
        if id(value) in _open:
            raise ValueError("Circular reference detected")  # as json.dumps says it
        _open = _open | {id(value)}
    if isinstance(value, list | tuple):  # no dict to hold flags: each item is flagged on its own
        return [strict(item, _open) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    flags: dict[str, str] = {}
    for key, item in value.items():
        if _is_non_finite(item):
            flags[str(key)] = non_finite_name(item)
            out[key] = None
        elif isinstance(item, list | tuple):
            out[key] = _strict_list(item, str(key), flags, _open)
        else:
            out[key] = strict(item, _open)
    if flags:
        existing = out.get(NON_FINITE_KEY)
        out[NON_FINITE_KEY] = {**existing, **flags} if isinstance(existing, dict) else flags
    return out


def dumps_strict(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`strict` ``(value)``, refusing any non-finite number that is left."""
    return json.dumps(strict(value), allow_nan=False, **kwargs)
