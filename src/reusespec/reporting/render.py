"""Reports for CI: a Markdown summary and a self-contained HTML report of a run.

Both are pure functions of a :class:`~reusespec.reporting.model.RunReport` (or the JSON report
document it reads: :func:`reusespec.reporting.document.build_report`, extended by the release
gate with each spec's ``gate`` results and the run's ``receipt``), so they can be written by the
pytest plugin (``--reuse-markdown``, ``--reuse-html``) or later from a saved report::

    reusespec render report.json --markdown summary.md --html report.html

The Markdown is meant for ``$GITHUB_STEP_SUMMARY`` or a pull-request comment: one row per
score with its interval, threshold, verdict and baseline difference, the reasons specs did not
pass, and the receipt folded away. The HTML holds everything inline (styles, and charts as
SVG drawn by matplotlib when it is installed): the backbone x task matrix, the score table,
and per spec a chart of its scores with intervals, thresholds, baseline values and seeds. The
page is a jinja2 template (``templates/report.html.j2``) with autoescaping on.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reusespec import atomic
from reusespec.reporting.model import RunReport, SpecReport, as_run_report
from reusespec.reporting.numbers import format_number
from reusespec.results import ScoreRecord
from reusespec.stats import Interval, StatsError, verdict

if TYPE_CHECKING:
    import jinja2
    from matplotlib.figure import Figure

__all__ = ["ScoreRow", "render_html", "render_markdown", "score_rows", "write_text_atomic"]

STATUS_MARK = {
    "passed": "✅",
    "failed": "❌",
    "error": "💥",
    "inconclusive": "❔",
    "warned": "⚠️",
    "tracked": "📈",
    "skipped": "⏭️",
}
COLUMNS = (
    "",
    "spec",
    "backbone",
    "task",
    "strategy",
    "metric",
    "value",
    "95% CI",
    "threshold",
    "verdict",
    "baseline",
    "Δ",
)
_NUMERIC_COLUMNS = {"value", "95% CI", "threshold", "baseline", "Δ"}


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write text with :mod:`reusespec.atomic` (creating the directory), so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, text)
    return path


@dataclass
class ScoreRow:
    """One score of the report with its spec's status and the score's baseline comparison."""

    nodeid: str
    status: str
    score: ScoreRecord
    verdict: str
    comparison: Mapping[str, Any] | None
    seeds: int


def _short(nodeid: str) -> str:
    return nodeid.split("::", 1)[-1] if "::" in nodeid else nodeid


def _score_key(item: ScoreRecord | Mapping[str, Any]) -> tuple[str, str, str, str]:
    if isinstance(item, ScoreRecord):
        return (item.backbone, item.task, item.strategy, item.metric)
    return (item["backbone"], item["task"], item["strategy"], item["metric"])


def _score_verdict(score: ScoreRecord, mode: str) -> str:
    """pass / fail / inconclusive of one compared score, by the gate's rule; "-" when not compared."""
    threshold, op = score.threshold, score.op
    if threshold is None or op is None:
        return "-"
    low, high, value = score.ci_low, score.ci_high, score.value
    if mode == "interval" and low is not None and high is not None and isinstance(value, int | float):
        try:
            interval = Interval(min(low, value), max(high, value), value, 0.95, "recorded")
            return verdict(interval, float(threshold), str(op)).value
        except StatsError:
            pass
    return "pass" if score.passed else "fail"


def score_rows(report: RunReport | Mapping[str, Any]) -> list[ScoreRow]:
    """One row per score of the report, with the spec's status and the score's baseline comparison."""
    rows = []
    for spec in as_run_report(report).sorted_specs():
        gate = spec.gate
        comparisons: dict[tuple[str, str, str, str], list[Mapping[str, Any]]] = {}
        for c in gate.comparisons if gate is not None else []:
            comparisons.setdefault(_score_key(c), []).append(c)
        for score in spec.scores:
            matches = comparisons.get(_score_key(score)) or []
            rows.append(
                ScoreRow(
                    nodeid=spec.nodeid,
                    status=spec.status,
                    score=score,
                    verdict=_score_verdict(score, gate.verdicts if gate is not None else "off"),
                    comparison=matches.pop(0) if matches else None,
                    seeds=len(gate.seeds if gate is not None else []) or 1,
                )
            )
    return rows


def _cells(row: ScoreRow) -> list[str]:
    s, c = row.score, row.comparison
    ci = f"[{format_number(s.ci_low)}, {format_number(s.ci_high)}]" if s.ci_low is not None else "-"
    threshold = f"{s.op} {format_number(s.threshold)}" if s.threshold is not None else "-"
    baseline = "-"
    delta = "-"
    if c is not None:
        baseline = format_number(c["baseline"]) + ("" if c["verdict"] == "pass" else f" ({c['verdict']})")
        delta = f"{c['delta']:+.4f}" if abs(c["delta"]) < 100 else f"{c['delta']:+,.1f}"
    value = format_number(s.value) + (f" ({row.seeds} seeds)" if row.seeds > 1 else "")
    return [
        STATUS_MARK.get(row.status, ""),
        _short(row.nodeid),
        s.backbone,
        s.task,
        s.strategy,
        s.metric,
        value,
        ci,
        threshold,
        row.verdict,
        baseline,
        delta,
    ]


def _headline(report: RunReport) -> str:
    counts: dict[str, int] = {}
    for spec in report.specs:
        counts[spec.status] = counts.get(spec.status, 0) + 1
    order = ["failed", "error", "inconclusive", "warned", "tracked", "passed", "skipped"]
    parts = [f"{STATUS_MARK.get(k, '')} {counts[k]} {k}".strip() for k in order if counts.get(k)]
    parts += [f"{n} {k}" for k, n in counts.items() if k not in order]
    return " · ".join(parts) if parts else "no specs"


def _receipt_lines(report: RunReport) -> list[str]:
    receipt = report.receipt or {}
    env = report.environment or {}
    lines = []
    if receipt.get("git_commit"):
        dirty = " (with uncommitted changes)" if receipt.get("git_dirty") else ""
        lines.append(f"git commit: {receipt['git_commit']}{dirty}")
    libraries = receipt.get("libraries") or {k: env[k] for k in ("torch", "torchvision") if k in env}
    if libraries:
        lines.append("libraries: " + ", ".join(f"{k} {v}" for k, v in sorted(libraries.items())))
    seed = receipt.get("seed", env.get("seed"))
    if seed is not None:
        lines.append(f"seed: {seed}; seeds per spec: {receipt.get('seeds', 1)}")
    if receipt.get("devices"):
        lines.append("devices: " + ", ".join(receipt["devices"]))
    if receipt.get("verdicts"):
        lines.append(f"verdicts: {receipt['verdicts']} at confidence {receipt.get('confidence', 0.95)}")
    for role, info in sorted((receipt.get("backbones") or {}).items()):
        swapped = f" (as {role})" if info.get("name") != role else ""
        lines.append(f"backbone {info.get('name')}{swapped}: fingerprint {info.get('fingerprint')}")
    for key, info in sorted((receipt.get("tasks") or {}).items()):
        lines.append(f"task {key}: fingerprint {info.get('fingerprint')} (test split {info.get('test')})")
    return lines


def _reasons(report: RunReport) -> list[tuple[str, str, list[str]]]:
    """(spec, status, explanation lines) of every spec that did not simply pass."""
    out = []
    for spec in report.sorted_specs():
        comparisons = spec.gate.comparisons if spec.gate is not None else []
        if spec.status in ("passed", "skipped") and not any(c.get("verdict") != "pass" for c in comparisons):
            continue
        lines = list(spec.gate.lines if spec.gate is not None else []) or (
            [spec.message] if spec.message else []
        )
        out.append((spec.nodeid, spec.status, lines))
    return out


# -- Markdown ----------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: RunReport | Mapping[str, Any], title: str = "reusespec") -> str:
    """A Markdown summary of the run (GitHub-flavoured: tables and a folded receipt)."""
    report = as_run_report(report)
    out = [f"## {title}: {_headline(report)}", ""]
    rows = score_rows(report)
    if rows:
        out.append("| " + " | ".join(COLUMNS) + " |")
        out.append("|" + "|".join("---" for _ in COLUMNS) + "|")
        out.extend("| " + " | ".join(_md_cell(c) for c in _cells(r)) + " |" for r in rows)
        out.append("")
    reasons = _reasons(report)
    if reasons:
        out.append("### Specs that did not simply pass")
        out.append("")
        for nodeid, status, lines in reasons:
            out.append(f"- {STATUS_MARK.get(status, '')} **{_md_cell(nodeid)}** ({status})")
            out.extend(f"  - {_md_cell(line)}" for line in lines)
        out.append("")
    receipt = _receipt_lines(report)
    if receipt:
        out += ["<details><summary>Reproducibility receipt</summary>", ""]
        out += [f"- {_md_cell(line)}" for line in receipt]
        out += ["", "</details>", ""]
    return "\n".join(out)


# -- HTML --------------------------------------------------------------------------------------


@dataclass
class _MatrixTable:
    strategy: str
    tasks: list[str]
    rows: list[tuple[str, list[tuple[str | None, str]]]]  # backbone, cells (hue or None, text)


def _matrices(report: RunReport) -> list[_MatrixTable]:
    from reusespec.reporting.pictures import matrix_from_report, matrix_strategies

    document = report.to_json()
    tables = []
    for strategy in matrix_strategies(document):
        matrix = matrix_from_report(document, strategy)
        if not matrix:
            continue
        tasks = sorted({t for row in matrix.values() for t in row})
        rows = []
        for backbone in sorted(matrix):
            cells: list[tuple[str | None, str]] = []
            for task in tasks:
                value = matrix[backbone].get(task)
                if value is None:
                    cells.append((None, "-"))
                else:
                    hue = max(0.0, min(1.0, value)) * 120  # red (0) to green (1)
                    cells.append((f"{hue:.0f}", f"{value:.4f}"))
            rows.append((backbone, cells))
        tables.append(_MatrixTable(strategy, tasks, rows))
    return tables


def spec_figure(spec: SpecReport) -> Figure | None:
    """A chart of a spec's scores in [0, 1]: value, interval, threshold, baseline and seeds.

    None when matplotlib is not installed or no score of the spec lies in [0, 1] (counts and
    timings are in the table).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    comparisons = {_score_key(c): c for c in (spec.gate.comparisons if spec.gate is not None else [])}
    scores = [s for s in spec.scores if isinstance(s.value, int | float) and -0.05 <= s.value <= 1.05]
    if not scores:
        return None
    fig = Figure(figsize=(7.5, 0.9 + 0.38 * len(scores)), layout="constrained")
    ax = fig.add_subplot()
    labels = []
    shown: list[float] = []  # every x drawn, to zoom on them
    for y, score in enumerate(scores):
        labels.append(f"{score.metric} · {score.backbone} · {score.task}")
        shown.append(float(score.value))
        if score.ci_low is not None and score.ci_high is not None:
            ax.plot([score.ci_low, score.ci_high], [y, y], color="#4a7ab5", linewidth=2.5, alpha=0.6)
            shown += [float(score.ci_low), float(score.ci_high)]
        for seed_value in (score.extra or {}).get("seed_values", []):
            ax.plot([seed_value], [y + 0.18], "o", color="#999999", markersize=3)
            shown.append(float(seed_value))
        ax.plot([float(score.value)], [y], "o", color="#1f4e8c", markersize=6)
        if score.threshold is not None:
            ax.plot([score.threshold], [y], "|", color="#c0392b", markersize=16, markeredgewidth=2)
            shown.append(float(score.threshold))
        comparison = comparisons.get(_score_key(score))
        if comparison is not None:
            ax.plot([comparison["baseline"]], [y], "D", color="#e67e22", markersize=5, fillstyle="none")
            shown.append(float(comparison["baseline"]))
    ax.set_yticks(range(len(scores)), labels, fontsize=8)
    ax.set_ylim(len(scores) - 0.3, -0.7)  # first score on top
    ax.set_xlim(max(-0.02, min(shown) - 0.05), min(1.02, max(shown) + 0.05))  # zoom on the scores
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel(
        "score (dot), interval (bar), threshold (red |), baseline (orange ◇), seeds (grey)", fontsize=8
    )
    return fig


def spec_chart_svg(spec: SpecReport) -> str | None:
    """:func:`spec_figure` as inline SVG (text kept as text, so the page stays searchable)."""
    fig = spec_figure(spec)
    if fig is None:
        return None
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    FigureCanvasSVG(fig)
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "reusespec"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    return svg[svg.find("<svg") :]


def _escape(value: Any) -> Any:
    """Autoescaping with :func:`html.escape` (quotes as ``&#x27;``/``&quot;``), as reports always had."""
    import markupsafe

    return value if isinstance(value, markupsafe.Markup) else markupsafe.Markup(html.escape(str(value)))


@cache
def _templates() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("reusespec.reporting", "templates"),
        autoescape=True,
        finalize=_escape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )


@dataclass
class _SpecSection:
    nodeid: str
    status: str
    mark: str
    scores: str
    chart: Any  # markupsafe.Markup of the SVG, or ""


def render_html(report: RunReport | Mapping[str, Any], title: str = "reusespec report") -> str:
    """A self-contained HTML page (no external assets) of the run."""
    import markupsafe

    report = as_run_report(report)
    sections = []
    for spec in report.sorted_specs():
        chart = spec_chart_svg(spec)
        scores = "; ".join(f"{s.metric} {format_number(s.value)}" for s in spec.scores)
        sections.append(
            _SpecSection(
                spec.nodeid,
                spec.status,
                STATUS_MARK.get(spec.status, ""),
                scores,
                markupsafe.Markup(chart) if chart is not None else "",
            )
        )
    rows: Sequence[ScoreRow] = score_rows(report)
    return (
        _templates()
        .get_template("report.html.j2")
        .render(
            title=title,
            headline=_headline(report),
            created=report.created,
            matrices=_matrices(report),
            columns=COLUMNS,
            numeric_columns=_NUMERIC_COLUMNS,
            rows=[(row.status, _cells(row)) for row in rows],
            reasons=_reasons(report),
            marks=STATUS_MARK,
            specs=sections,
            charts_missing=any(not section.chart for section in sections),
            receipt=_receipt_lines(report),
        )
    )
