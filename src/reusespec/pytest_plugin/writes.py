"""Writing the run's files (report, baseline, summaries) so that a failed write is said, not a traceback."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reusespec.atomic import AtomicWriteError


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
