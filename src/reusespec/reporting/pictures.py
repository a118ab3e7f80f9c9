"""Pictures of a run: the backbone x task accuracy matrix and accuracy-versus-severity curves.

Pure functions over the JSON report document (:func:`reusespec.reporting.document.build_report`), so the
pictures can be drawn by the pytest plugin right after it writes the report, or later from a
saved report (``write_pictures(json.load(f), path)``). Where the numbers come from:

* the matrix: every ``accuracy`` score of a plain task (probe or fine-tuning rows, one matrix
  per strategy), and the ``per_task`` accuracies that profile scores carry in ``extra``;
* the curves: shift-suite scores (``extra.table`` {corruption: {severity: accuracy}} and
  ``extra.clean_accuracy``) and single shift specs (task ``"TASK ~ CORRUPTION@SEVERITY"``).

matplotlib is imported inside the drawing functions, so ``import reusespec`` never pays for it,
and it is optional: without it :func:`write_pictures` notes that pictures were skipped.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reusespec import atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Matrix = dict[str, dict[str, float]]
"""Accuracy by backbone, then by task."""

DPI = 100
HEAD_ONLY = "head-only"
MIN_MATRIX_CELLS = 2  # a single probe is already a row of the table; a 1x1 heatmap adds nothing
MIN_CURVE_POINTS = 2  # one severity is a point, not a curve
# Reports written before scores carried their shift (``shift``, ``corruption``, ``severity``) only
# had it in the task label; these read such reports.
_OLD_SHIFT_LABEL = re.compile(r"^(?P<task>.+) ~ (?P<corruption>[A-Za-z0-9_]+)@(?P<severity>\d+)$")
_OLD_SUITE_SUFFIX = " ~ suite"


@dataclass
class SeverityCurve:
    """Accuracy of one backbone on one task under one corruption, by severity."""

    backbone: str
    task: str
    corruption: str
    accuracy: dict[int, float] = field(default_factory=dict)
    clean_accuracy: float | None = None

    @property
    def severities(self) -> list[int]:
        return sorted(self.accuracy)


# -- reading the report ------------------------------------------------------------------------


def _scores(doc: Mapping[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    for spec in doc.get("specs", []):
        for score in spec.get("scores", []):
            yield spec.get("nodeid", ""), score


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def matrix_strategies(doc: Mapping[str, Any]) -> list[str]:
    """The strategies with accuracy scores in the report, head-only first."""
    found = {s["strategy"] for _, s in _scores(doc) if _is_task_accuracy(s)}
    if any(_is_profile(s) for _, s in _scores(doc)):
        found.add(HEAD_ONLY)
    return sorted(found, key=lambda name: (name != HEAD_ONLY, name))


def _shift_of(score: Mapping[str, Any]) -> tuple[str, str, str | None, int | None] | None:
    """(trained task, shift, corruption, severity) of a shifted score, None for any other score."""
    label = str(score.get("task", ""))
    shift = score.get("shift")
    if shift is not None:
        severity = score.get("severity")
        return (
            label.removesuffix(f" ~ {shift}"),
            str(shift),
            score.get("corruption"),
            None if severity is None else int(severity),
        )
    if label.endswith(_OLD_SUITE_SUFFIX):
        return label.removesuffix(_OLD_SUITE_SUFFIX), "suite", None, None
    match = _OLD_SHIFT_LABEL.match(label)
    if match is not None:
        return (
            match["task"],
            f"{match['corruption']}@{match['severity']}",
            match["corruption"],
            int(match["severity"]),
        )
    return None


def _is_task_accuracy(score: Mapping[str, Any]) -> bool:
    # shifted tasks are curves, not matrix cells
    return (
        score.get("metric") == "accuracy"
        and score.get("shift") is None
        and " ~ " not in score.get("task", "")
    )


def _is_profile(score: Mapping[str, Any]) -> bool:
    return isinstance(score.get("extra", {}).get("per_task"), Mapping)


def matrix_from_report(doc: Mapping[str, Any], strategy: str = HEAD_ONLY) -> Matrix:
    """Accuracy by backbone and task for one strategy.

    A cell measured by several specs (other seeds, say) holds their mean. Profile scores'
    ``per_task`` fill cells that their spec has no accuracy row for in any strategy
    (profiles also report each task's own score, so this matters only for reports written
    by other tools); such cells count as head-only, the default profile strategy.
    """
    per_spec: dict[str, dict[tuple[str, str], list[float]]] = defaultdict(lambda: defaultdict(list))
    measured: set[tuple[str, str, str]] = set()  # (spec, backbone, task) with an accuracy row
    for nodeid, score in _scores(doc):
        if _is_task_accuracy(score):
            measured.add((nodeid, score["backbone"], score["task"]))
            if score.get("strategy") == strategy:
                per_spec[nodeid][score["backbone"], score["task"]].append(float(score["value"]))
    if strategy == HEAD_ONLY:
        for nodeid, score in _scores(doc):
            if not _is_profile(score):
                continue
            for task, value in score["extra"]["per_task"].items():
                if (nodeid, score["backbone"], task) not in measured:
                    per_spec[nodeid][score["backbone"], task] = [float(value)]
    pooled: dict[tuple[str, str], list[float]] = defaultdict(list)
    for cells in per_spec.values():
        for key, values in cells.items():
            pooled[key].append(_mean(values))
    matrix: Matrix = {}
    for (backbone, task), values in pooled.items():
        matrix.setdefault(backbone, {})[task] = _mean(values)
    return matrix


def severity_curves_from_report(doc: Mapping[str, Any]) -> list[SeverityCurve]:
    """One curve per backbone, task and corruption, sorted by those three names.

    Points measured more than once (a single shift spec and a suite at the same severity,
    or several seeds) hold their mean; so does the clean accuracy.
    """
    points: dict[tuple[str, str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    clean: dict[tuple[str, str], list[float]] = defaultdict(list)
    seen_suites: set[tuple[str, str, str]] = set()
    for nodeid, score in _scores(doc):
        backbone, label, extra = score.get("backbone", ""), score.get("task", ""), score.get("extra", {})
        shift = _shift_of(score)
        table = extra.get("table")
        if shift is not None and shift[1] == "suite" and isinstance(table, Mapping):
            # every score of a suite carries the same table: read it once per spec
            suite_key = (nodeid, backbone, label)
            if suite_key in seen_suites:
                continue
            seen_suites.add(suite_key)
            task = shift[0]
            for corruption, by_severity in table.items():
                for severity, accuracy in by_severity.items():
                    points[backbone, task, corruption][int(severity)].append(float(accuracy))
            if extra.get("clean_accuracy") is not None:
                clean[backbone, task].append(float(extra["clean_accuracy"]))
            continue
        if shift is None:
            continue
        task, _, shift_corruption, shift_severity = shift
        if shift_corruption is None or shift_severity is None:
            continue  # shifted to another dataset: no severity to draw along
        if score.get("metric") == "shifted_accuracy":
            points[backbone, task, shift_corruption][shift_severity].append(float(score["value"]))
        elif score.get("metric") == "clean_accuracy":
            clean[backbone, task].append(float(score["value"]))
    curves = []
    for (backbone, task, corruption), by_severity in sorted(points.items()):
        clean_values = clean.get((backbone, task))
        curves.append(
            SeverityCurve(
                backbone,
                task,
                corruption,
                {s: _mean(v) for s, v in sorted(by_severity.items())},
                _mean(clean_values) if clean_values else None,
            )
        )
    return curves


# -- drawing -----------------------------------------------------------------------------------

_CHAR_INCHES = 0.075  # width of one tick-label character at the 9 pt labels used here
_CELL_WIDTH, _CELL_HEIGHT = 0.95, 0.5
_LEVEL_LABEL_CHARS = 11  # task names up to this long fit level under a cell; longer ones slant


def _task_label_angle(tasks: Sequence[str]) -> int:
    return 40 if max((len(t) for t in tasks), default=0) > _LEVEL_LABEL_CHARS else 0


def heatmap_figsize(backbones: Sequence[str], tasks: Sequence[str]) -> tuple[float, float]:
    """Inches that give every cell room for its value and every label room for its name."""
    label_width = _CHAR_INCHES * max((len(b) for b in backbones), default=0)
    longest_task = max((len(t) for t in tasks), default=0)
    task_label_height = 0.7 * _CHAR_INCHES * longest_task if _task_label_angle(tasks) else 0.2
    width = 1.0 + label_width + _CELL_WIDTH * len(tasks) + 1.3  # + colour bar
    height = 1.2 + task_label_height + _CELL_HEIGHT * len(backbones)
    return max(width, 5.0), max(height, 3.0)


def _backbone_order(matrix: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Best mean accuracy first (ties by name), so the ranking reads top to bottom."""
    return sorted(matrix, key=lambda b: (-_mean(list(matrix[b].values())) if matrix[b] else 0.0, b))


def heatmap_png(
    matrix: Mapping[str, Mapping[str, float]],
    path: str | Path,
    *,
    title: str = "Head-only accuracy: backbone x task",
) -> Path:
    """Draw the matrix as an annotated heatmap (rows best first, tasks by name) and save it as PNG."""
    import numpy as np

    backbones = _backbone_order(matrix)
    tasks = sorted({t for row in matrix.values() for t in row})
    if not backbones or not tasks:
        raise ValueError("heatmap_png needs at least one backbone with one task score; the matrix is empty")
    values = np.array([[matrix[b].get(t, np.nan) for t in tasks] for b in backbones], dtype=float)

    fig = _figure(heatmap_figsize(backbones, tasks))
    ax = fig.add_subplot()
    cmap = _colormap("viridis").with_extremes(bad="#d9d9d9")  # grey: cells nobody measured
    # the scale tops out at 1 and starts a round tenth below the lowest score, so that close
    # scores still differ in colour without exaggerating small gaps; the annotations are exact
    lowest = float(np.nanmin(values))
    vmin = max(0.0, np.floor(lowest * 10) / 10 - 0.1)
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=1.0, aspect="auto")
    for i, j in np.ndindex(values.shape):
        value = values[i, j]
        if np.isnan(value):
            ax.text(j, i, "n/a", ha="center", va="center", fontsize=9, color="#555555")
        else:
            ink = _ink(cmap(image.norm(value)))
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=9, color=ink)
    ax.set_xticks(
        range(len(tasks)),
        labels=tasks,
        rotation=_task_label_angle(tasks),
        ha="right" if _task_label_angle(tasks) else "center",
        rotation_mode="anchor",
        fontsize=9,
    )
    ax.set_yticks(range(len(backbones)), labels=backbones, fontsize=9)
    ax.set_xticks(np.arange(len(tasks) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(backbones) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("task")
    ax.set_ylabel("backbone (best mean first)")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="accuracy", fraction=0.046 if len(tasks) > 3 else 0.08, pad=0.02)
    return _save(fig, path)


def severity_curves_png(
    curves: Sequence[SeverityCurve], path: str | Path, *, title: str | None = None
) -> Path:
    """Draw accuracy against severity, one line per curve, clean accuracy dashed; save it as PNG."""
    if not curves:
        raise ValueError("severity_curves_png needs at least one curve; none was given")
    pairs = sorted({(c.backbone, c.task) for c in curves})
    one_pair = len(pairs) == 1
    if title is None:
        title = f"{pairs[0][0]} on {pairs[0][1]}" if one_pair else "Accuracy under corruption"

    fig = _figure((8.0 if len(curves) > 6 else 7.0, 4.5))
    ax = fig.add_subplot()
    colours = _colormap("tab10" if len(curves) <= 10 else "tab20").colors
    markers = "osD^vP*Xh<>p"
    lowest = 1.0
    for k, curve in enumerate(sorted(curves, key=lambda c: (c.backbone, c.task, c.corruption))):
        xs = curve.severities
        ys = [curve.accuracy[s] for s in xs]
        lowest = min(lowest, *ys)
        label = curve.corruption if one_pair else f"{curve.backbone} / {curve.task} / {curve.corruption}"
        ax.plot(xs, ys, marker=markers[k % len(markers)], color=colours[k % len(colours)], label=label)
    cleans = sorted({(c.backbone, c.task, c.clean_accuracy) for c in curves if c.clean_accuracy is not None})
    for backbone, task, clean in cleans:
        assert clean is not None
        lowest = min(lowest, clean)
        name = "clean" if one_pair else f"clean ({backbone} / {task})"
        ax.axhline(clean, color="black", linestyle="--", linewidth=1.2, label=f"{name}: {clean:.3f}")
    severities = sorted({s for c in curves for s in c.accuracy})
    ax.set_xticks(range(min(1, *severities), max(5, *severities) + 1))
    ax.set_xlim(min(1, *severities) - 0.3, max(5, *severities) + 0.3)
    # zoom to the data, on a round tenth, but always show the top of the scale
    ax.set_ylim(max(0.0, int(max(lowest - 0.05, 0.0) * 10) / 10), 1.0)
    ax.grid(True, alpha=0.3)
    ax.set_xlabel("corruption severity")
    ax.set_ylabel("accuracy")
    ax.set_title(title + ": accuracy vs corruption severity" if one_pair else title)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    return _save(fig, path)


def _figure(size: tuple[float, float]) -> Figure:
    # a Figure with its own Agg canvas: no pyplot, no global backend switch, safe in any process
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _colormap(name: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[name].copy()


def _ink(rgba: tuple[float, float, float, float]) -> str:
    """Black text on light cells, white on dark ones (relative luminance)."""
    r, g, b = rgba[:3]
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "white"


def _save(fig: Figure, path: str | Path) -> Path:
    """Save as PNG atomically, so a reader never sees half a picture."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    atomic.write_bytes(path, buffer.getvalue())
    return path


# -- next to the report ------------------------------------------------------------------------


def _slug(text: str, limit: int = 60) -> str:
    """A file-name-safe version of a backbone or task string, short but still recognisable."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-") or "x"
    if len(slug) > limit:
        slug = slug[: limit - 9] + "-" + _short_hash(text)
    return slug


def _short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()


def write_pictures(
    doc: Mapping[str, Any], report_path: str | Path, *, note: Callable[[str], None] | None = None
) -> list[Path]:
    """Write the run's pictures next to the report and return their paths.

    ``<stem>-matrix.png`` (head-only; ``<stem>-matrix-<strategy>.png`` for others) when a
    strategy has at least two matrix cells, and ``<stem>-shift-<backbone>-<task>.png`` for
    each backbone and task with a corruption measured at two or more severities. Without
    matplotlib, ``note`` is told that pictures were skipped and nothing is written.
    """
    report_path = Path(report_path)
    stem = report_path.with_suffix("").name
    jobs: list[tuple[str, Callable[[Path], Path]]] = []
    for strategy in matrix_strategies(doc):
        matrix = matrix_from_report(doc, strategy)
        if sum(len(row) for row in matrix.values()) < MIN_MATRIX_CELLS:
            continue
        name = f"{stem}-matrix.png" if strategy == HEAD_ONLY else f"{stem}-matrix-{_slug(strategy)}.png"
        title = f"{strategy.capitalize()} accuracy: backbone x task"
        jobs.append((name, partial(heatmap_png, matrix, title=title)))
    groups: dict[tuple[str, str], list[SeverityCurve]] = defaultdict(list)
    for curve in severity_curves_from_report(doc):
        groups[curve.backbone, curve.task].append(curve)
    for (backbone, task), curves in sorted(groups.items()):
        if max(len(c.accuracy) for c in curves) < MIN_CURVE_POINTS:
            continue
        name = f"{stem}-shift-{_slug(backbone)}-{_slug(task)}.png"
        if any(existing == name for existing, _ in jobs):  # two names slugged alike
            name = name.removesuffix(".png") + f"-{_short_hash(backbone + chr(0) + task)}.png"
        jobs.append((name, partial(severity_curves_png, curves)))
    if not jobs:
        return []
    try:
        import matplotlib  # noqa: F401  (optional: the 'plots' extra)
    except ImportError:
        if note is not None:
            note("reusespec pictures skipped: matplotlib is not installed (pip install 'reusespec[plots]')")
        return []
    return [draw(report_path.parent / name) for name, draw in jobs]
