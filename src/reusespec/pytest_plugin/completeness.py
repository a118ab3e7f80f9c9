"""Complete or visibly incomplete: what a run's report and baseline may claim.

An interrupted run (Ctrl-C), a worker that crashed under pytest-xdist, a collection error or a
run stopped early (``-x``) did not run every spec. The JSON report then says so
(``complete: false``, ``incomplete_reason``, ``unfinished``), the crashed spec appears in it as
failed with the crash, and ``--reuse-save-baseline`` refuses to replace a baseline with it.
"""

from __future__ import annotations

from typing import Any

import pytest

from reusespec.pytest_plugin.specs import is_reuse_spec
from reusespec.pytest_plugin.state import ReusePlugin
from reusespec.reporting.document import SpecOutcome

__all__ = ["PLUGIN_NAME", "RunCompleteness", "completeness", "register"]

PLUGIN_NAME = "reusespec-completeness"
# pytest-xdist's report for the test a dead worker was running.
_CRASH_MARK = "crashed while running"


class RunCompleteness:
    """Which specs were expected, which finished, and why the run may be incomplete."""

    def __init__(self, state: ReusePlugin) -> None:
        self.state = state
        self.expected: list[str] = []
        self.started: list[str] = []
        self.finished: set[str] = set()
        self.crashed: set[str] = set()
        self.reasons: list[str] = []

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.reasons.append(f"collection error in {report.nodeid or 'the session'}")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.expected = [item.nodeid for item in session.items if is_reuse_spec(item)]

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.started.append(nodeid)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.finished.add(report.nodeid)
        if report.failed and _CRASH_MARK in (report.longreprtext or ""):
            self.finished.add(report.nodeid)
            self.crashed.add(report.nodeid)
            crash = next(line for line in report.longreprtext.splitlines() if _CRASH_MARK in line)
            self.reasons.append(crash)
            if report.nodeid not in self.state.outcomes:  # its scores died with the worker
                self.state.outcomes[report.nodeid] = SpecOutcome(
                    report.nodeid, "failed", report.duration, crash
                )

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.reasons.append(f"interrupted ({excinfo.typename})")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if exitstatus == pytest.ExitCode.INTERRUPTED and not any("interrupted" in r for r in self.reasons):
            self.reasons.append("interrupted")
        if session.shouldstop or session.shouldfail:
            self.reasons.append(f"stopped early: {session.shouldstop or session.shouldfail}")

    @property
    def unfinished(self) -> list[str]:
        """Specs collected or started that did not finish, in run order."""
        seen = dict.fromkeys([*self.started, *self.expected])
        return [nodeid for nodeid in seen if nodeid not in self.finished]

    @property
    def complete(self) -> bool:
        return not self.reasons and not self.unfinished

    def incomplete_reason(self) -> str | None:
        if self.complete:
            return None
        reasons = list(dict.fromkeys(self.reasons))
        if self.unfinished:
            reasons.append(f"{len(self.unfinished)} specs did not finish")
        return "; ".join(reasons)

    def baseline_refusal(self, results: dict[str, dict[str, Any]]) -> str | None:
        """Why this run's scores must not replace a baseline (None: they may)."""
        errored = sorted(
            {n for n, r in results.items() if r.get("status") == "error"}
            | {n for n, o in self.state.outcomes.items() if o.outcome == "error"}
            | self.crashed
        )
        problems = []
        reason = self.incomplete_reason()
        if reason:
            problems.append(f"the run is incomplete ({reason})")
        if errored:
            more = ", ..." if len(errored) > 3 else ""
            problems.append(f"{len(errored)} specs errored ({', '.join(errored[:3])}{more})")
        return "; ".join(problems) or None

    def extend_report(self, document: dict[str, Any]) -> None:
        document["complete"] = self.complete
        document["incomplete_reason"] = self.incomplete_reason()
        document["unfinished"] = self.unfinished


def completeness(config: pytest.Config) -> RunCompleteness | None:
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    return plugin if isinstance(plugin, RunCompleteness) else None


class _XdistCollection:
    """On an xdist controller (which collects nothing itself): the specs the workers collected."""

    def __init__(self, tracker: RunCompleteness) -> None:
        self.tracker = tracker

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if not self.tracker.expected:
            self.tracker.expected = list(ids)


def register(config: pytest.Config, state: ReusePlugin) -> None:
    """Called from ``pytest_configure`` (:mod:`reusespec.pytest_plugin`)."""
    tracker = RunCompleteness(state)
    state.report_extensions.append(tracker.extend_report)
    config.pluginmanager.register(tracker, PLUGIN_NAME)
    if config.pluginmanager.has_plugin("xdist"):
        config.pluginmanager.register(_XdistCollection(tracker), PLUGIN_NAME + "-xdist")
