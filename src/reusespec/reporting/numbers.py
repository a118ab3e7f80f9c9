"""The one number formatter of every report (terminal table, Markdown, HTML)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["format_number"]


def format_number(value: Any, signed: bool = False) -> str:
    """Scores in [0, 1] with four decimals; counts and sizes readably; ``-`` for no number."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    sign = "+" if signed else ""
    if math.isfinite(value) and abs(value) >= 1e4:
        return f"{value:{sign},.0f}"
    if math.isfinite(value) and abs(value) >= 100:
        return f"{value:{sign}.1f}"
    return f"{value:{sign}.4f}"
