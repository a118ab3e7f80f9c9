"""What the gate says at the end of a run, and the run-level mistakes that make it an error.

* every spec the gate did not simply pass, with the lines that explain it;
* every skip, with its reason (a gate that passes because specs skipped must say so);
* every comparison made outside an ``assert`` (tracked, not judged);
* the baseline's count of gated and tracked comparisons;
* usage errors found only once the specs ran: a swap whose OLD no spec loaded, a baseline
  against which nothing was compared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reusespec.gate.swaps import unmatched_swaps
from reusespec.reporting.document import SpecOutcome

__all__ = ["run_problems", "summary_lines"]


def run_problems(
    results: Mapping[str, Mapping[str, Any]],
    swaps: Mapping[str, str],
    baseline: Path | None,
    references: Mapping[str, list[str]] | None = None,
) -> list[str]:
    """Usage errors of the whole run (empty: none); each makes the run exit with a usage error.

    ``references``: the reference checkpoints of a baseline save, whose OLD must be loaded too.
    """
    if not results:
        return []  # nothing ran (all deselected, or the run was interrupted first)
    requested = {name for result in results.values() for name in result.get("requested", [])}
    problems = unmatched_swaps(swaps, requested)
    first = {old: news[0] for old, news in (references or {}).items()}
    problems += unmatched_swaps(first, requested, "--reuse-baseline-spread-backbone")
    if baseline is not None:
        gated = [c for r in results.values() for c in r.get("comparisons", []) if not c.get("tracked")]
        refused = any(r.get("baseline") == "refused" for r in results.values())
        if not gated and not refused:
            problems.append(
                f"--reuse-baseline {baseline}: no score was compared with it (it has no finite value for "
                "any score a spec asserted, or names other specs); a gate that compares nothing does "
                "not pass. Save the baseline again, or check that the specs assert their scores"
            )
    return problems


def _tracked_comparisons(outcomes: Iterable[SpecOutcome]) -> list[str]:
    lines = []
    for outcome in sorted(outcomes, key=lambda o: o.nodeid):
        for score in outcome.scores:
            for entry in score.extra.get("tracked_comparisons", []):
                lines.append(
                    f"TRACKED       {outcome.nodeid}: {score.metric} {score.value:.4g} {entry['op']} "
                    f"{entry['threshold']:.4g} is {entry['passed']} at {entry['where']}: tracked, not judged"
                )
    return lines


def summary_lines(
    results: Mapping[str, Mapping[str, Any]],
    outcomes: Mapping[str, SpecOutcome],
    baseline: Path | None,
    problems: list[str],
) -> list[str]:
    """The lines of the terminal's ``reusespec gate`` section (empty: nothing to say)."""
    lines = []
    for nodeid, result in sorted(results.items()):
        if result["status"] == "passed" or (result["status"] == "failed" and not result["lines"]):
            continue  # a plain failure of a spec's own assert is pytest's to show
        lines.append(f"{result['status'].upper():<13} {nodeid}")
        lines.extend(f"    {line}" for line in result["lines"])
    for nodeid, outcome in sorted(outcomes.items()):
        if outcome.outcome == "skipped":
            lines.append(f"SKIPPED       {nodeid}: {outcome.message}")
    lines.extend(_tracked_comparisons(outcomes.values()))
    if baseline is not None:
        comparisons = [c for r in results.values() for c in r.get("comparisons", [])]
        gated = [c for c in comparisons if not c.get("tracked")]
        worse = sum(1 for c in gated if c["verdict"] != "pass")
        refused = sum(1 for r in results.values() if r.get("baseline") == "refused")
        lines.append(
            f"baseline {baseline}: {len(gated)} scores compared, {worse} not within tolerance, "
            f"{len(comparisons) - len(gated)} tracked (shown, not gating), {refused} specs refused"
        )
    lines.extend(f"ERROR: {problem}" for problem in problems)
    return lines
