"""Writing the run's files (report, baseline, summaries) so that a failed write is said, not a traceback."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from reusespec.atomic import AtomicWriteError
from reusespec.gate.baseline import Baseline


def write_or_explain(
    write: Callable[[], object], done: str, what: str, session: pytest.Session | None
) -> str:
    """Run ``write``; the line to show: ``done``, or why ``what`` was not written (the run then fails).

    A full disk or an unwritable folder must not end a finished run in a plugin traceback, nor let it
    pass: the scores were computed, but CI would read a report or baseline that is not there.
    """
    try:
        write()
    except (AtomicWriteError, OSError) as exc:  # OSError: e.g. its folder could not be made
        if session is not None and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return f"reusespec {what} NOT written: {exc}"
    return done


def save_baseline(
    results: Mapping[str, Mapping[str, Any]],
    receipt: dict[str, Any],
    target: Path,
    spread_seeds: int,
    session: pytest.Session | None,
    references: int = 0,
) -> str:
    """Write the run's specs as a baseline at ``target``; the line that says what was written."""
    baseline = Baseline(receipt=receipt)
    for nodeid, result in results.items():
        baseline.specs[nodeid] = {
            "outcome": result["status"],
            "receipt": result.get("receipt", {}),
            "scores": result.get("scores", []),
        }
    done = f"reusespec baseline ({len(baseline.specs)} specs) written to {target}" + (
        f", with each score's spread over {references} reference checkpoints"
        if references
        else f", with each score's seed spread over {spread_seeds} more seeds"
        if spread_seeds
        else "; no seed spread measured (with --reuse-baseline-spread N a later comparison allows "
        "each score's seed noise, so that a candidate within that noise passes)"
    )
    return write_or_explain(lambda: baseline.save(target), done, "baseline", session)
