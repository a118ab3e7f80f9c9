"""The plugin's per-process state: the session, the specs' outcomes, the score table and report.

One :class:`ReusePlugin` per process builds the :class:`ReuseSession` from the options (on first
use), collects each spec's outcome and scores from the test reports (which pytest-xdist carries
to the controller), and on the controller prints the summary table and writes the JSON report.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from reusespec.pytest_plugin.options import path_setting, reuse_config
from reusespec.pytest_plugin.specs import PROPERTY, RECORDS_KEY, is_reuse_spec
from reusespec.pytest_plugin.writes import write_or_explain
from reusespec.pytest_plugin.xdist import extraction_counts, repair_counts
from reusespec.reporting.document import (
    SpecOutcome,
    build_report,
    environment,
    format_table,
    write_json_atomic,
)
from reusespec.results import ScoreRecord

if TYPE_CHECKING:  # imported when first used: torch stays out of the xdist controller
    from reusespec.session import ReuseSession

PLUGIN_NAME = "reusespec-plugin"


class ReusePlugin:
    """Per-process state: the session (created on first use) and, on the controller, outcomes."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings = reuse_config(config)
        self.settings.progress = self.progress
        self.worker_id = os.environ.get("PYTEST_XDIST_WORKER")
        self.is_worker = hasattr(config, "workerinput")
        self._session: ReuseSession | None = None
        self.outcomes: dict[str, SpecOutcome] = {}
        self.report_extensions: list[Callable[[dict[str, Any]], None]] = []
        self.pytest_session: pytest.Session | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from reusespec.cache import reset_repair_counts

        self.pytest_session = session
        reset_repair_counts()  # counts are per process; a run (pytester's too) starts from zero

    @property
    def started(self) -> ReuseSession | None:
        """The session if this process has needed one (None: it ran no spec)."""
        return self._session

    @property
    def session(self) -> ReuseSession:
        if self._session is None:
            from reusespec.session import ReuseSession

            self._session = ReuseSession(self.settings, worker_id=self.worker_id)
        return self._session

    def progress(self, message: str) -> None:
        """Show long work as it happens, unless quiet or on an xdist worker (no terminal there)."""
        if self.is_worker or self.config.get_verbosity() < 0:
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        if capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"[reusespec] {message}")
        else:
            reporter.write_line(f"[reusespec] {message}")

    # -- collecting outcomes (runs on the controller under xdist, and in serial runs) --

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entries = [value for name, value in report.user_properties if name == PROPERTY]
        if report.when == "teardown" and report.failed and report.nodeid in self.outcomes:
            spec = self.outcomes[report.nodeid]
            spec.outcome, spec.message = "error", spec.message or _message(report)
            return
        is_main_phase = report.when == "call" or (report.when == "setup" and not report.passed)
        if not is_main_phase or not entries:
            return  # a test that is not a reuse spec (it uses no reusespec fixture)
        scores = [ScoreRecord.from_dict(d) for value in entries for d in value]  # type: ignore[attr-defined]
        outcome = report.outcome if report.when == "call" else ("skipped" if report.skipped else "error")
        self.outcomes[report.nodeid] = SpecOutcome(
            report.nodeid, outcome, report.duration, _message(report), scores
        )

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        s = self.settings
        lines = [
            f"reusespec: cache={s.cache_dir} device={s.device} seed={s.seed} download={s.allow_download}"
        ]
        if self.is_worker or config.pluginmanager.has_plugin("dsession"):
            return lines  # no terminal on a worker; the controller runs no spec (workers pick devices)
        from reusespec.devices import cpu_fallback_note

        note = cpu_fallback_note(self.session.device)
        if note:
            lines.append(f"reusespec: {note}")
        return lines

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        lines = format_table(list(self.outcomes.values()))
        if lines:
            terminalreporter.write_sep("=", "reusespec scores")
            for line in lines:
                terminalreporter.write_line(line)
        report_path = path_setting(self.config, "reuse_report")
        if report_path is not None and not self.is_worker:
            settings = {
                "seed": self.settings.seed,
                "device": self.settings.device,
                "batch_size": self.settings.batch_size,
                "cache_dir": str(self.settings.cache_dir),
            }
            if not self.config.pluginmanager.has_plugin("dsession"):
                # A serial run computed everything here; under xdist each worker picks its own.
                settings["device_used"] = str(self.session.device)
            settings.update(extraction_counts(self.config))  # workers' too, under xdist
            settings["cache_repairs"] = repair_counts(self.config)
            env = environment(settings)
            document = build_report(list(self.outcomes.values()), env)
            for extend in self.report_extensions:
                extend(document)  # the gate's receipt, verdicts and baseline comparisons
            done = f"reusespec report written to {report_path}"
            line = write_or_explain(
                lambda: write_json_atomic(report_path, document), done, "report", self.pytest_session
            )
            terminalreporter.write_line(line)
            if line != done:
                return
            from reusespec.reporting.pictures import write_pictures

            for picture in write_pictures(document, report_path, note=terminalreporter.write_line):
                terminalreporter.write_line(f"reusespec picture written to {picture}")


def _message(report: pytest.TestReport) -> str:
    """Why a spec was skipped, or the exception it failed with (assertion text included)."""
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if not report.failed:
        return ""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    return report.longreprtext.strip().splitlines()[-1] if report.longreprtext else ""


_exit_hook_registered = False


def free_exit() -> None:
    """At interpreter exit, freeze the heap so Python's last garbage collection skips it.

    With torch, torchvision and scikit-learn loaded that collection is most of a process's exit
    (figures in docs/benchmarks.md), and an xdist controller waits for every worker's. The
    operating system reclaims the memory either way; registered with ``atexit``, it changes
    nothing while the process is still running tests.
    """
    global _exit_hook_registered
    if not _exit_hook_registered:
        import atexit
        import gc

        atexit.register(gc.freeze)
        _exit_hook_registered = True


def reuse_plugin(config: pytest.Config) -> ReusePlugin:
    """This process's :class:`ReusePlugin` (registered by ``pytest_configure``)."""
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    assert isinstance(plugin, ReusePlugin)
    return plugin


def attach_scores(item: pytest.Item, report: pytest.TestReport) -> None:
    """Put a spec's scores on its main phase's report, which xdist carries to the controller.

    Every reuse spec's main phase carries the property (scores, possibly none), which is also
    how the controller under xdist tells specs from the other tests of the run.
    """
    if is_reuse_spec(item) and (report.when == "call" or (report.when == "setup" and not report.passed)):
        records = item.stash.get(RECORDS_KEY, [])
        report.user_properties.append((PROPERTY, [r.as_dict() for r in records]))
