"""Calibrate thresholds: replay specs over N seeds and measure how their scores move.

    reusespec calibrate reuse_specs/test_demo_transfer.py --seeds 20 --rate 0.05 \\
        --out calibration.json [any other pytest options, e.g. --reuse-cache-dir DIR -n 4]

(the command is :mod:`reusespec.cli`; ``reusespec-calibrate`` is its older name). The chosen
specs run once per seed (``--reuse-seed`` 0..N-1, in this process, with interval verdicts on),
on the current backbone, which is taken to be healthy. For every score the output gives its
spread over the seeds (mean, standard deviation, min, max) and
:func:`reusespec.stats.suggest_threshold`: a threshold that one rerun of this backbone misses
with probability ``--rate``. For every spec it gives the false-failure rate measured across the
seeds, as plain asserts (any compared score on the wrong side of its threshold) and with
confidence-aware verdicts (interval wholly on the wrong side), and how often the interval
verdict was inconclusive.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reusespec.gate.baseline import higher_is_better
from reusespec.stats import StatsError, suggest_threshold

if TYPE_CHECKING:
    from reusespec.reporting.model import RunReport, SpecReport
    from reusespec.results import ScoreRecord

__all__ = ["format_summary", "summarise"]


def _score_id(score: ScoreRecord, occurrence: int) -> str:
    key = f"{score.backbone}|{score.task}|{score.strategy}|{score.metric}"
    return key if occurrence == 0 else f"{key}#{occurrence}"


def _point_failed(spec: SpecReport) -> bool:
    """The spec as plain asserts judge it: a compared score on the wrong side, or another failure."""
    if any(score.passed is False for score in spec.scores):
        return True
    # an assert on something other than a score, or a crash, fails with or without intervals
    threshold_verdict = spec.gate.threshold_verdict if spec.gate is not None else None
    return threshold_verdict == "fail" or spec.outcome.value == "error"


def summarise(documents: Sequence[RunReport | Mapping[str, Any]], rate: float) -> dict[str, Any]:
    """Per spec and score, the spread over the runs (one report per seed) and the rates."""
    # the report model is a layer up (it reads gate statuses): imported here, not at the top
    from reusespec.reporting.model import as_run_report

    specs: dict[str, dict[str, Any]] = {}
    for report in map(as_run_report, documents):
        seed = report.seed
        for spec in report.specs:
            entry = specs.setdefault(
                spec.nodeid,
                {"runs": 0, "point_failures": 0, "interval_failures": 0, "inconclusive": 0, "scores": {}},
            )
            entry["runs"] += 1
            verdict = spec.gate.threshold_verdict if spec.gate is not None else None
            entry["point_failures"] += int(_point_failed(spec))
            entry["interval_failures"] += int(verdict == "fail" or spec.outcome.value == "error")
            entry["inconclusive"] += int(verdict == "inconclusive")
            seen: dict[str, int] = {}
            for score in spec.scores:
                base = _score_id(score, 0)
                key = _score_id(score, seen.get(base, 0))
                seen[base] = seen.get(base, 0) + 1
                row = entry["scores"].setdefault(
                    key,
                    {
                        "backbone": score.backbone,
                        "task": score.task,
                        "strategy": score.strategy,
                        "metric": score.metric,
                        "op": score.op,
                        "thresholds": [],
                        "values": [],
                        "seeds": [],
                    },
                )
                row["values"].append(float(score.value))
                row["seeds"].append(seed)
                if score.threshold is not None:
                    row["thresholds"].append(float(score.threshold))
                    row["op"] = score.op
    for entry in specs.values():
        runs = entry["runs"]
        entry["point_false_failure_rate"] = entry["point_failures"] / runs
        entry["interval_false_failure_rate"] = entry["interval_failures"] / runs
        entry["inconclusive_rate"] = entry["inconclusive"] / runs
        for row in entry["scores"].values():
            values = [v for v in row["values"] if math.isfinite(v)]
            row["mean"] = statistics.fmean(values) if values else math.nan
            row["std"] = statistics.stdev(values) if len(values) > 1 else 0.0
            row["min"], row["max"] = (min(values), max(values)) if values else (math.nan, math.nan)
            row["threshold"] = statistics.fmean(row["thresholds"]) if row["thresholds"] else None
            higher = higher_is_better(row["metric"], row.get("op"))
            try:
                row["suggested_threshold"] = suggest_threshold(values, rate, higher_is_better=higher)
            except StatsError:
                row["suggested_threshold"] = None
            row["suggested_op"] = ">=" if higher else "<="
    return {"rate": rate, "runs": len(documents), "specs": specs}


def format_summary(summary: Mapping[str, Any]) -> list[str]:
    lines = [
        f"reusespec calibration over {summary['runs']} seeds, "
        f"target false-failure rate {summary['rate']:.1%}",
    ]
    for nodeid, entry in sorted(summary["specs"].items()):
        lines.append(
            f"{nodeid}: false failures {entry['point_failures']}/{entry['runs']} with plain asserts, "
            f"{entry['interval_failures']}/{entry['runs']} with interval verdicts "
            f"({entry['inconclusive']} inconclusive)"
        )
        for key, row in entry["scores"].items():
            threshold = f"{row['op']} {row['threshold']:.4g}" if row.get("threshold") is not None else "none"
            suggested = row.get("suggested_threshold")
            suggestion = f"{row['suggested_op']} {suggested:.4g}" if suggested is not None else "-"
            lines.append(
                f"    {key}: mean {row['mean']:.4g} sd {row['std']:.3g} [{row['min']:.4g}, {row['max']:.4g}] "
                f"threshold {threshold}; suggested {suggestion}"
            )
    return lines
