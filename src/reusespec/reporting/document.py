"""The run's report: the terminal summary table and the versioned JSON document.

Pure functions over :class:`SpecOutcome` records, so the same report can be built by the
pytest plugin, under xdist on the controller, or by any other runner.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from reusespec import atomic
from reusespec.reporting.numbers import format_number
from reusespec.results import ScoreRecord
from reusespec.strict_json import strict

SCHEMA = "reusespec-report"
SCHEMA_VERSION = 1
OUTCOMES = ("passed", "failed", "skipped", "error")


@dataclass
class SpecOutcome:
    """One spec (test item): its outcome and the scores it computed."""

    nodeid: str
    outcome: str  # one of OUTCOMES
    duration: float = 0.0
    message: str = ""
    scores: list[ScoreRecord] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "outcome": self.outcome,
            "duration": round(self.duration, 4),
            "message": self.message,
            "scores": [s.as_dict() for s in self.scores],
        }


def environment(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Versions and platform, for the report's reproducibility record.

    Versions come from the installed packages' metadata: importing torch and torchvision only
    to read them would cost an xdist controller, which runs no spec, seconds at the end of a
    run. The CUDA fields need torch itself, so they are filled where it is loaded already (a
    serial run) and null on a controller (its workers may run on other hosts anyway).
    """
    from reusespec import __version__

    torch = sys.modules.get("torch")
    env: dict[str, Any] = {
        "reusespec": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": _version("torch"),
        "torchvision": _version("torchvision"),
        "cuda_available": None if torch is None else torch.cuda.is_available(),
        "cuda_devices": None if torch is None else torch.cuda.device_count(),
    }
    env.update(extra or {})
    return env


def _version(package: str) -> str | None:
    """``package.__version__`` without importing the package where it is not loaded yet.

    torch and torchvision write it to ``<package>/version.py`` with the build's local tag
    (``2.14.1+cu130``), which the distribution's metadata may leave out; read from there so a
    controller and a serial run report the same string.
    """
    import re
    from importlib.metadata import PackageNotFoundError, distribution

    module = sys.modules.get(package)
    if module is not None and hasattr(module, "__version__"):
        return str(module.__version__)
    try:
        dist = distribution(package)
    except PackageNotFoundError:
        return None
    version_file = dist.locate_file(f"{package}/version.py")
    try:
        found = re.search(
            r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", Path(str(version_file)).read_text(), re.M
        )
    except OSError:
        found = None
    return found.group(1) if found else dist.version


def build_report(outcomes: list[SpecOutcome], env: dict[str, Any]) -> dict[str, Any]:
    # Every outcome is always present (0 when none), so readers can index the summary directly.
    counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
    for o in outcomes:
        counts[o.outcome] = counts.get(o.outcome, 0) + 1
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": env,
        "summary": {"specs": len(outcomes), **counts, "scores": sum(len(o.scores) for o in outcomes)},
        "specs": [o.as_dict() for o in sorted(outcomes, key=lambda o: o.nodeid)],
    }


def write_json_atomic(path: str | Path, document: dict[str, Any]) -> Path:
    """Write the report's JSON (sorted keys, indent 2) atomically with :mod:`reusespec.atomic`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Strict JSON: NaN and Infinity become null plus a "non_finite" flag (reusespec.strict_json).
    text = json.dumps(strict(document), indent=2, default=str, sort_keys=True, allow_nan=False)
    atomic.write_text(path, text + "\n")
    return path


COLUMNS = (
    "spec",
    "backbone",
    "task",
    "strategy",
    "metric",
    "value",
    "95% CI",
    "threshold",
    "margin",
    "outcome",
    "secs",
    "cache",
)


def table_rows(outcomes: list[SpecOutcome]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for o in sorted(outcomes, key=lambda o: o.nodeid):
        name = o.nodeid.split("::", 1)[-1]
        for s in o.scores:
            threshold = f"{s.op} {format_number(s.threshold)}" if s.threshold is not None and s.op else "-"
            margin = format_number(s.margin, signed=True) if s.margin is not None else "-"
            cache = "-" if s.cache_hit is None else ("hit" if s.cache_hit else "miss")
            has_ci = s.ci_low is not None and s.ci_high is not None
            ci = f"[{format_number(s.ci_low or 0)}, {format_number(s.ci_high or 0)}]" if has_ci else "-"
            rows.append(
                (
                    name,
                    s.backbone,
                    s.task,
                    s.strategy,
                    s.metric,
                    format_number(s.value),
                    ci,
                    threshold,
                    margin,
                    o.outcome,
                    f"{s.seconds:.2f}",
                    cache,
                )
            )
    return rows


def format_table(outcomes: list[SpecOutcome], max_width: int = 48) -> list[str]:
    """The summary table as lines: one row per score, widths fitted to the content."""
    rows = [tuple(_clip(c, max_width) for c in r) for r in table_rows(outcomes)]
    if not rows:
        return []
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(COLUMNS)]
    numeric = {"value", "margin", "secs"}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if COLUMNS[i] in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(COLUMNS), line(tuple("-" * w for w in widths)), *(line(r) for r in rows)]


def _clip(text: str, width: int) -> str:
    """Keep the end of a long cell (the distinguishing part of a node id or path)."""
    if len(text) <= width:
        return text
    keep = max(width - 3, 1)  # text[-0:] would be the whole text
    return "..." + text[-keep:]
