"""Reports for CI: a Markdown summary and a self-contained HTML report of a run.

Both are pure functions of the JSON report document (:func:`reusespec.reporting.document.build_report`,
extended by the release gate with each spec's ``gate`` results and the run's ``receipt``), so
they can be written by the pytest plugin (``--reuse-markdown``, ``--reuse-html``) or later from
a saved report::

    reusespec render report.json --markdown summary.md --html report.html

The Markdown is meant for ``$GITHUB_STEP_SUMMARY`` or a pull-request comment: one row per
score with its interval, threshold, verdict and baseline difference, the reasons specs did not
pass, and the receipt folded away. The HTML holds everything inline (styles, and charts as
SVG drawn by matplotlib when it is installed): the backbone x task matrix, the score table,
and per spec a chart of its scores with intervals, thresholds, baseline values and seeds.
"""

from __future__ import annotations

import html
import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reusespec.reporting.numbers import format_number
from reusespec.stats import Interval, StatsError, verdict

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["render_html", "render_markdown", "score_rows", "write_text_atomic"]

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


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write text so that readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a report is for others to read (CI artifacts)
    os.replace(tmp, path)
    return path


def _short(nodeid: str) -> str:
    return nodeid.split("::", 1)[-1] if "::" in nodeid else nodeid


def _score_verdict(score: Mapping[str, Any], mode: str) -> str:
    """pass / fail / inconclusive of one compared score, by the gate's rule; "-" when not compared."""
    threshold, op = score.get("threshold"), score.get("op")
    if threshold is None or op is None:
        return "-"
    low, high, value = score.get("ci_low"), score.get("ci_high"), score.get("value")
    if mode == "interval" and low is not None and high is not None and isinstance(value, int | float):
        try:
            interval = Interval(min(low, value), max(high, value), value, 0.95, "recorded")
            return verdict(interval, float(threshold), str(op)).value
        except StatsError:
            pass
    return "pass" if score.get("passed") else "fail"


def score_rows(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per score of the report, with the spec's status and the score's baseline comparison."""
    rows = []
    for spec in sorted(document.get("specs", []), key=lambda s: s["nodeid"]):
        gate = spec.get("gate") or {}
        comparisons: dict[tuple[str, str, str, str], list[Mapping[str, Any]]] = {}
        for c in gate.get("comparisons", []):
            comparisons.setdefault((c["backbone"], c["task"], c["strategy"], c["metric"]), []).append(c)
        status = gate.get("status") or spec.get("outcome", "")
        for score in spec.get("scores", []):
            key = (score["backbone"], score["task"], score["strategy"], score["metric"])
            matches = comparisons.get(key) or []
            comparison = matches.pop(0) if matches else None
            rows.append(
                {
                    "nodeid": spec["nodeid"],
                    "status": status,
                    "score": score,
                    "verdict": _score_verdict(score, gate.get("verdicts", "off")),
                    "comparison": comparison,
                    "seeds": len(gate.get("seeds", [])) or 1,
                }
            )
    return rows


def _cells(row: Mapping[str, Any]) -> list[str]:
    s, c = row["score"], row["comparison"]
    ci = (
        f"[{format_number(s['ci_low'])}, {format_number(s['ci_high'])}]"
        if s.get("ci_low") is not None
        else "-"
    )
    threshold = f"{s['op']} {format_number(s['threshold'])}" if s.get("threshold") is not None else "-"
    baseline = "-"
    delta = "-"
    if c is not None:
        baseline = format_number(c["baseline"]) + ("" if c["verdict"] == "pass" else f" ({c['verdict']})")
        delta = f"{c['delta']:+.4f}" if abs(c["delta"]) < 100 else f"{c['delta']:+,.1f}"
    value = format_number(s["value"]) + (f" ({row['seeds']} seeds)" if row["seeds"] > 1 else "")
    return [
        STATUS_MARK.get(row["status"], ""),
        _short(row["nodeid"]),
        s["backbone"],
        s["task"],
        s["strategy"],
        s["metric"],
        value,
        ci,
        threshold,
        row["verdict"],
        baseline,
        delta,
    ]


def _counts(document: Mapping[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for spec in document.get("specs", []):
        status = (spec.get("gate") or {}).get("status") or spec.get("outcome", "unknown")
        counts[status] = counts.get(status, 0) + 1
    return counts


def _headline(document: Mapping[str, Any]) -> str:
    counts = _counts(document)
    order = ["failed", "error", "inconclusive", "warned", "tracked", "passed", "skipped"]
    parts = [f"{STATUS_MARK.get(k, '')} {counts[k]} {k}".strip() for k in order if counts.get(k)]
    parts += [f"{n} {k}" for k, n in counts.items() if k not in order]
    return " · ".join(parts) if parts else "no specs"


def _receipt_lines(document: Mapping[str, Any]) -> list[str]:
    receipt = document.get("receipt") or {}
    env = document.get("environment") or {}
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


def _reasons(document: Mapping[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(spec, status, explanation lines) of every spec that did not simply pass."""
    out = []
    for spec in sorted(document.get("specs", []), key=lambda s: s["nodeid"]):
        gate = spec.get("gate") or {}
        status = gate.get("status") or spec.get("outcome", "")
        if status in ("passed", "skipped") and not any(
            c.get("verdict") != "pass" for c in gate.get("comparisons", [])
        ):
            continue
        lines = list(gate.get("lines") or []) or ([spec["message"]] if spec.get("message") else [])
        out.append((spec["nodeid"], status, lines))
    return out


# -- Markdown ----------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(document: Mapping[str, Any], title: str = "reusespec") -> str:
    """A Markdown summary of the run (GitHub-flavoured: tables and a folded receipt)."""
    out = [f"## {title}: {_headline(document)}", ""]
    rows = score_rows(document)
    if rows:
        out.append("| " + " | ".join(COLUMNS) + " |")
        out.append("|" + "|".join("---" for _ in COLUMNS) + "|")
        out.extend("| " + " | ".join(_md_cell(c) for c in _cells(r)) + " |" for r in rows)
        out.append("")
    reasons = _reasons(document)
    if reasons:
        out.append("### Specs that did not simply pass")
        out.append("")
        for nodeid, status, lines in reasons:
            out.append(f"- {STATUS_MARK.get(status, '')} **{_md_cell(nodeid)}** ({status})")
            out.extend(f"  - {_md_cell(line)}" for line in lines)
        out.append("")
    receipt = _receipt_lines(document)
    if receipt:
        out += ["<details><summary>Reproducibility receipt</summary>", ""]
        out += [f"- {_md_cell(line)}" for line in receipt]
        out += ["", "</details>", ""]
    return "\n".join(out)


# -- HTML --------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td, tr.error td { background: #fde8e8; } tr.inconclusive td { background: #fff6d6; }
tr.warned td, tr.tracked td { background: #fdf3e1; }
.matrix td { text-align: center; min-width: 5em; }
.spec { margin: 1.5em 0; } .spec svg { max-width: 100%; height: auto; }
.note { color: #666; font-size: 0.85em; }
code { font-size: 0.9em; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _matrix_html(document: Mapping[str, Any]) -> str:
    from reusespec.reporting.pictures import matrix_from_report, matrix_strategies

    parts = []
    for strategy in matrix_strategies(document):
        matrix = matrix_from_report(document, strategy)
        if not matrix:
            continue
        tasks = sorted({t for row in matrix.values() for t in row})
        head = "".join(f"<th>{_e(t)}</th>" for t in tasks)
        body = []
        for backbone in sorted(matrix):
            cells = []
            for task in tasks:
                value = matrix[backbone].get(task)
                if value is None:
                    cells.append("<td>-</td>")
                    continue
                hue = max(0.0, min(1.0, value)) * 120  # red (0) to green (1)
                cells.append(f'<td style="background: hsl({hue:.0f}, 65%, 80%)">{value:.4f}</td>')
            body.append(f"<tr><th>{_e(backbone)}</th>{''.join(cells)}</tr>")
        parts.append(
            f"<h3>{_e(strategy)} accuracy</h3><table class='matrix'><tr><th>backbone \\ task</th>{head}</tr>"
            + "".join(body)
            + "</table>"
        )
    return "".join(parts) or "<p class='note'>No accuracy scores to put in a matrix.</p>"


def _table_html(rows: Sequence[Mapping[str, Any]]) -> str:
    numeric = {"value", "95% CI", "threshold", "baseline", "Δ"}
    head = "".join(f"<th>{_e(c)}</th>" for c in COLUMNS)
    body = []
    for row in rows:
        cells = "".join(
            f"<td class='num'>{_e(c)}</td>" if COLUMNS[i] in numeric else f"<td>{_e(c)}</td>"
            for i, c in enumerate(_cells(row))
        )
        body.append(f"<tr class='{_e(row['status'])}'>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def spec_figure(spec: Mapping[str, Any]) -> Figure | None:
    """A chart of a spec's scores in [0, 1]: value, interval, threshold, baseline and seeds.

    None when matplotlib is not installed or no score of the spec lies in [0, 1] (counts and
    timings are in the table).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    gate = spec.get("gate") or {}
    comparisons = {
        (c["backbone"], c["task"], c["strategy"], c["metric"]): c for c in gate.get("comparisons", [])
    }
    scores = [
        s
        for s in spec.get("scores", [])
        if isinstance(s.get("value"), int | float) and -0.05 <= s["value"] <= 1.05
    ]
    if not scores:
        return None
    fig = Figure(figsize=(7.5, 0.9 + 0.38 * len(scores)), layout="constrained")
    ax = fig.add_subplot()
    labels = []
    shown: list[float] = []  # every x drawn, to zoom on them
    for y, score in enumerate(scores):
        labels.append(f"{score['metric']} · {score['backbone']} · {score['task']}")
        shown.append(float(score["value"]))
        if score.get("ci_low") is not None and score.get("ci_high") is not None:
            ax.plot([score["ci_low"], score["ci_high"]], [y, y], color="#4a7ab5", linewidth=2.5, alpha=0.6)
            shown += [float(score["ci_low"]), float(score["ci_high"])]
        for seed_value in (score.get("extra") or {}).get("seed_values", []):
            ax.plot([seed_value], [y + 0.18], "o", color="#999999", markersize=3)
            shown.append(float(seed_value))
        ax.plot([float(score["value"])], [y], "o", color="#1f4e8c", markersize=6)
        if score.get("threshold") is not None:
            ax.plot([score["threshold"]], [y], "|", color="#c0392b", markersize=16, markeredgewidth=2)
            shown.append(float(score["threshold"]))
        comparison = comparisons.get((score["backbone"], score["task"], score["strategy"], score["metric"]))
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


def spec_chart_svg(spec: Mapping[str, Any]) -> str | None:
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


def render_html(document: Mapping[str, Any], title: str = "reusespec report") -> str:
    """A self-contained HTML page (no external assets) of the run."""
    rows = score_rows(document)
    created = document.get("created", "")
    sections = [
        f"<h1>{_e(title)}</h1>",
        f"<p>{_e(_headline(document))}</p>",
        f"<p class='note'>{_e(created)}</p>",
        "<h2>Backbone × task</h2>",
        _matrix_html(document),
        "<h2>Scores</h2>",
        _table_html(rows) if rows else "<p class='note'>No scores.</p>",
    ]
    reasons = _reasons(document)
    if reasons:
        items = "".join(
            f"<li>{STATUS_MARK.get(status, '')} <b>{_e(nodeid)}</b> ({_e(status)})<ul>"
            + "".join(f"<li><code>{_e(line)}</code></li>" for line in lines)
            + "</ul></li>"
            for nodeid, status, lines in reasons
        )
        sections += ["<h2>Specs that did not simply pass</h2>", f"<ul>{items}</ul>"]
    sections.append("<h2>Per spec</h2>")
    charts_missing = False
    for spec in sorted(document.get("specs", []), key=lambda s: s["nodeid"]):
        gate = spec.get("gate") or {}
        status = gate.get("status") or spec.get("outcome", "")
        chart = spec_chart_svg(spec)
        charts_missing = charts_missing or chart is None
        scores = "; ".join(f"{s['metric']} {format_number(s['value'])}" for s in spec.get("scores", []))
        sections.append(
            f"<div class='spec'><h3>{STATUS_MARK.get(status, '')} {_e(spec['nodeid'])} ({_e(status)})</h3>"
            f"<p class='note'>{_e(scores)}</p>{chart or ''}</div>"
        )
    if charts_missing:
        sections.append(
            "<p class='note'>Specs without a chart have no score in [0, 1] (or matplotlib is missing).</p>"
        )
    receipt = _receipt_lines(document)
    if receipt:
        sections += [
            "<h2>Reproducibility receipt</h2>",
            "<ul>" + "".join(f"<li><code>{_e(r)}</code></li>" for r in receipt) + "</ul>",
        ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
