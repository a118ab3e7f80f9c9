"""The pytest plugin: ``reuse`` fixtures, ``--reuse-*`` options, the score table and report.

A thin layer over :mod:`reusespec.session`: it builds one :class:`ReuseSession` per
process from the options, hands specs a :class:`Reuse` facade whose scores are attached to
the test report (``report.user_properties``, which pytest-xdist carries to the controller),
and on the controller prints the summary table and writes the JSON report.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from reusespec import plugin_xdist
from reusespec.config import ReuseConfig, default_cache_dir
from reusespec.report import SpecOutcome, build_report, environment, format_table, write_json_atomic
from reusespec.results import ScoreRecord

if TYPE_CHECKING:  # imported when first used: torch stays out of the xdist controller
    from reusespec.session import Reuse, ReuseSession

PROPERTY = "reusespec.scores"
REUSE_FIXTURES = frozenset({"reuse", "reuse_session", "reuse_device"})
_records_key = pytest.StashKey[list[ScoreRecord]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reusespec", "reusespec: reusability specs")
    options: list[tuple[str, str, dict[str, Any]]] = [
        (
            "cache-dir",
            "where backbones, zoo checkpoints and features are cached "
            "(default: $REUSESPEC_CACHE_DIR or ~/.cache/reusespec)",
            {},
        ),
        (
            "data-dir",
            "where datasets are looked for (default: $REUSESPEC_DATA_DIR or ~/.cache/reusespec/data)",
            {},
        ),
        ("device", "auto (a GPU per xdist worker when CUDA is present, else CPU), cpu, cuda, cuda:N", {}),
        ("seed", "seed of splits, head initialisation and data order (default 0)", {}),
        ("report", "write the JSON report of every score to this path", {}),
        ("batch-size", "feature extraction batch size (default 256)", {}),
    ]
    for name, help_text, kwargs in options:
        group.addoption(
            f"--reuse-{name}", dest=f"reuse_{name.replace('-', '_')}", default=None, help=help_text, **kwargs
        )
        parser.addini(f"reuse_{name.replace('-', '_')}", help_text, default=None)
    group.addoption(
        "--reuse-allow-download",
        action="store_true",
        default=None,
        help="let torchvision download missing weights and datasets (off by default: specs skip instead)",
    )
    parser.addini("reuse_allow_download", "as --reuse-allow-download", type="bool", default=False)
    group.addoption(
        "--reuse-trust-pickle",
        action="append",
        default=[],
        metavar="PATH",
        help="allow this one checkpoint to unpickle arbitrary objects (runs code from the file; repeatable)",
    )
    from reusespec.plugin_gate import add_gate_options

    add_gate_options(parser)  # the release gate: verdicts, seeds, baselines, CI reports


def _option(config: pytest.Config, name: str) -> Any:
    value = config.getoption(f"reuse_{name}")
    if value is None:
        value = config.getini(f"reuse_{name}")
    return value


def _path(config: pytest.Config, name: str) -> Path | None:
    from_command_line = config.getoption(f"reuse_{name}") is not None
    value = _option(config, name)
    if not value:
        return None
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    # As pytest does for its own path options: a command-line path is relative to where pytest
    # was started, an ini path to the ini file (so it does not move with the working directory).
    if from_command_line or config.inipath is None:
        return Path(config.invocation_params.dir) / path
    return config.inipath.parent / path


def config_from_pytest(config: pytest.Config) -> ReuseConfig:
    seed = _option(config, "seed")
    batch = _option(config, "batch_size")
    return ReuseConfig(
        cache_dir=_path(config, "cache_dir") or default_cache_dir(),
        data_dir=_path(config, "data_dir"),
        device=_option(config, "device") or "auto",
        seed=int(seed) if seed not in (None, "") else 0,
        allow_download=bool(_option(config, "allow_download")),
        trusted_pickles=tuple(Path(p).resolve() for p in config.getoption("reuse_trust_pickle") or ()),
        batch_size=int(batch) if batch else 256,
    )


class ReusePlugin:
    """Per-process state: the session (created on first use) and, on the controller, outcomes."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings = config_from_pytest(config)
        self.settings.progress = self.progress
        self.worker_id = os.environ.get("PYTEST_XDIST_WORKER")
        self.is_worker = hasattr(config, "workerinput")
        self._session: ReuseSession | None = None
        self.outcomes: dict[str, SpecOutcome] = {}

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
        report_path = _path(self.config, "report")
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
            settings.update(plugin_xdist.extraction_counts(self.config))  # workers' too, under xdist
            env = environment(settings)
            document = build_report(list(self.outcomes.values()), env)
            from reusespec.plugin_gate import active_gate

            if (gate := active_gate(self.config)) is not None:
                gate.extend_report(document)  # reproducibility receipt, verdicts, baseline comparisons
            write_json_atomic(report_path, document)
            terminalreporter.write_line(f"reusespec report written to {report_path}")
            from reusespec.pictures import write_pictures

            for picture in write_pictures(document, report_path, note=terminalreporter.write_line):
                terminalreporter.write_line(f"reusespec picture written to {picture}")


_exit_hook_registered = False


def _skip_the_final_collection_at_exit() -> None:
    """At interpreter exit, freeze the heap so Python's last garbage collection skips it.

    With torch, torchvision and scikit-learn loaded that collection is most of a process's exit:
    measured here 0.77 s to exit, 0.16 s with the heap frozen; an xdist controller waits for
    every worker's. The operating system reclaims the memory either way; registered with
    ``atexit``, it changes nothing while the process is still running tests.
    """
    global _exit_hook_registered
    if not _exit_hook_registered:
        import atexit
        import gc

        atexit.register(gc.freeze)
        _exit_hook_registered = True


def pytest_configure(config: pytest.Config) -> None:
    _skip_the_final_collection_at_exit()
    if hasattr(config, "workerinput"):
        from reusespec.devices import configure_worker_threads

        configure_worker_threads()  # n workers x all cores would oversubscribe the CPU
    reuse_plugin = ReusePlugin(config)
    config.pluginmanager.register(reuse_plugin, "reusespec-plugin")
    from reusespec import plugin_schedule

    plugin_schedule.register(config, reuse_plugin.settings.cache_dir)  # longest specs first under -n
    from reusespec import plugin_gate

    plugin_gate.register(config)  # the release gate (reusespec.plugin_gate)
    plugin_xdist.register(config)  # backbone groups under --dist loadgroup, workers' extraction counts


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


def _plugin(config: pytest.Config) -> ReusePlugin:
    plugin = config.pluginmanager.get_plugin("reusespec-plugin")
    assert isinstance(plugin, ReusePlugin)
    return plugin


@pytest.fixture(scope="session")
def reuse_session(request: pytest.FixtureRequest) -> ReuseSession:
    """The process's :class:`ReuseSession` (backbones, tasks and features shared by all specs)."""
    return _plugin(request.config).session


@pytest.fixture(scope="session")
def reuse_device(reuse_session: ReuseSession) -> Any:
    """The torch device of this process: a GPU per xdist worker when there are GPUs, else the CPU."""
    return reuse_session.device


@pytest.fixture
def reuse(request: pytest.FixtureRequest, reuse_session: ReuseSession) -> Reuse:
    """The facade a spec uses: ``reuse.probe(backbone, task)`` and friends. Scores go to the report."""
    from reusespec.plugin_facade import PytestReuse

    records: list[ScoreRecord] = []
    request.node.stash[_records_key] = records
    return PytestReuse(reuse_session, records)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    # Every reuse spec's main phase carries the property (scores, possibly none), which is also
    # how the controller under xdist tells specs from the other tests of the run.
    is_spec = bool(REUSE_FIXTURES.intersection(getattr(item, "fixturenames", ())))
    if is_spec and (report.when == "call" or (report.when == "setup" and not report.passed)):
        records = item.stash.get(_records_key, [])
        report.user_properties.append((PROPERTY, [r.as_dict() for r in records]))
    return report
