"""The release gate in pytest: replays specs over seeds, applies verdicts and turns them into outcomes.

The rules themselves live in the pytest-free :mod:`reusespec.gate` (see docs/gating.md for
what each option does). This module feeds the engine each spec's records, replays the spec when
the engine asks for another seed, and turns the decision into the call's outcome: pass, fail
(:class:`~reusespec.errors.GateFailure`, :class:`~reusespec.errors.Inconclusive`) or pass with a
:class:`~reusespec.errors.ReuseGateWarning`. Everything here is opt-in: a run without any of the
gate's options behaves as before (the spec's own ``assert`` decides), except that scores are
also written as JUnit XML properties and the JSON report gets a reproducibility receipt.

Severity (``@pytest.mark.reuse_severity("block" | "warn" | "track")``): block (default) fails
the test on a FAIL; warn passes it with a warning (status WARNED); track records and compares
only (status TRACKED). A spec that crashes is an error whatever its severity. INCONCLUSIVE blocks
unless ``--reuse-inconclusive warn``.

Zero-code checks: ``--reuse-backbone SPEC`` runs :mod:`reusespec.standard_suite` on a checkpoint;
``--reuse-swap-backbone [OLD=]NEW`` runs existing specs with NEW in place of OLD (without
``OLD=``, in place of the first backbone each spec loads).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from reusespec.errors import GateFailure, Inconclusive, ReuseGateWarning
from reusespec.gate.baseline import (
    Baseline,
    BaselineError,
    Tolerance,
    check_run_compatible,
    parse_tolerance,
    stored_score,
)
from reusespec.gate.decision import SeedJudgement, compare_with_baseline, judge_over_seeds
from reusespec.gate.rules import (
    VERDICT_MODES,
    SeedRun,
    Severity,
    Status,
    is_threshold_failure,
    status_for,
    worst,
)
from reusespec.gate.settings import SpecSettings
from reusespec.pytest_plugin.completeness import completeness
from reusespec.pytest_plugin.gate_summary import run_problems, summary_lines
from reusespec.pytest_plugin.options import gate_settings, setting
from reusespec.pytest_plugin.receipts import compatibility_receipt, git_state, run_receipt, spec_receipt
from reusespec.pytest_plugin.specs import RECORDS_KEY
from reusespec.pytest_plugin.spread import baseline_spreads
from reusespec.pytest_plugin.state import ReusePlugin
from reusespec.pytest_plugin.suite import add_suite_items
from reusespec.pytest_plugin.writes import save_baseline, write_or_explain
from reusespec.results import ScoreRecord
from reusespec.stats import Verdict

if TYPE_CHECKING:
    from reusespec.session import ReuseSession

PLUGIN_NAME = "reusespec-gate"
SEVERITIES = tuple(s.value for s in Severity)
_gate_key = pytest.StashKey[dict[str, Any]]()
MARKERS = (
    "reuse_severity(level): block (default) fails the run, warn reports only, track only records",
    "reuse_tolerance(abs_or_pct=None, *, abs=None, rel=None, **per_metric): regression tolerance "
    "against the baseline, e.g. reuse_tolerance(accuracy=0.02, latency_ms='50%')",
    "reuse_seeds(n, max_seeds=None): replay the spec over n seeds (more, up to max_seeds, while "
    "its verdict is inconclusive)",
    "reuse_verdicts(mode='interval'): confidence-aware verdicts for this spec",
    "reuse_gate(*metrics): gate these scores against the baseline although the spec does not assert them",
)


def spec_settings(item: pytest.Item, run: Any) -> SpecSettings:
    """The run's gate settings, overridden by the spec's markers (the closest marker wins)."""
    settings = SpecSettings.of_run(run)
    marker = item.get_closest_marker("reuse_severity")
    if marker is not None:
        settings.severity = str(marker.args[0] if marker.args else marker.kwargs.get("level", ""))
        if settings.severity not in SEVERITIES:
            raise pytest.UsageError(
                f"{item.nodeid}: reuse_severity must be one of {SEVERITIES}, got {settings.severity!r}"
            )
    marker = item.get_closest_marker("reuse_verdicts")
    if marker is not None:
        settings.verdicts = str(marker.args[0] if marker.args else "interval")
        if settings.verdicts not in VERDICT_MODES:
            raise pytest.UsageError(f"{item.nodeid}: reuse_verdicts must be one of {VERDICT_MODES}")
    marker = item.get_closest_marker("reuse_seeds")
    if marker is not None:
        settings.seeds = int(marker.args[0] if marker.args else marker.kwargs.get("n", 1))
        settings.max_seeds = int(marker.kwargs.get("max_seeds", max(settings.seeds, run.max_seeds)))
        if settings.seeds < 1 or settings.max_seeds < settings.seeds:
            raise pytest.UsageError(f"{item.nodeid}: reuse_seeds needs 1 <= n <= max_seeds")
    # The closest marker wins: apply the farthest (module) first, the spec's own last.
    for marker in reversed(list(item.iter_markers("reuse_tolerance"))):
        try:
            if marker.args:
                settings.tolerance_all = parse_tolerance(marker.args[0])
            if "abs" in marker.kwargs or "rel" in marker.kwargs:
                settings.tolerance_all = Tolerance(marker.kwargs.get("abs"), marker.kwargs.get("rel"))
            for metric, value in marker.kwargs.items():
                if metric not in ("abs", "rel"):
                    settings.tolerances[metric] = parse_tolerance(value)
        except BaselineError as exc:
            raise pytest.UsageError(f"{item.nodeid}: reuse_tolerance: {exc}") from None
    marker = item.get_closest_marker("reuse_gate")
    if marker is not None:
        settings.gate_metrics = frozenset(str(metric) for metric in marker.args)
    # The zero-code suite's checks are the gate the user asked for: all their scores gate.
    settings.gate_all = settings.gate_all or bool(getattr(item, "gates_every_score", False))
    return settings


class GatePlugin:
    """Per-process gate state; on the controller also the gate results of every spec."""

    def __init__(self, config: pytest.Config, reuse: ReusePlugin) -> None:
        self.config = config
        self.reuse = reuse
        self.settings = gate_settings(config)
        self.is_worker = hasattr(config, "workerinput")
        self.results: dict[str, dict[str, Any]] = {}
        self.written: list[str] = []
        self.problems: list[str] = []
        self._subject: str | None = None
        self._requested: set[str] = set()
        self._git_state: dict[str, Any] | None = None
        self.baseline: Baseline | None = None
        for marker in MARKERS:
            config.addinivalue_line("markers", marker)
        if self.settings.baseline is not None:
            try:
                self.baseline = Baseline.load(self.settings.baseline)
            except BaselineError as exc:
                raise pytest.UsageError(str(exc)) from None
            current = compatibility_receipt(self.reuse.settings.seed, self.settings)
            problems = check_run_compatible(self.baseline.receipt, current)
            if problems:
                raise pytest.UsageError(
                    f"reusespec: refusing to compare with the baseline {self.settings.baseline}: "
                    + "; ".join(problems)
                    + ". A baseline only compares like with like: save a new one with "
                    "--reuse-save-baseline on the reference checkpoint with these settings."
                )

    def run_receipt(self) -> dict[str, Any]:
        """What the run's scores depend on: libraries, seeds, platform, devices, git state."""
        if self._git_state is None:
            self._git_state = git_state(Path(self.config.rootpath))
        spec_receipts = [r.get("receipt", {}) for r in self.results.values()]
        return run_receipt(self.reuse.settings.seed, self.settings, spec_receipts, self._git_state)

    # -- backbone swap ---------------------------------------------------------------------

    def _alias(self, spec: str) -> str:
        self._requested.add(spec)  # a swap whose OLD no spec asks for is a usage error
        if spec in self.settings.swaps:
            return self.settings.swaps[spec]
        if self.settings.subject_swap is not None:
            if self._subject is None:
                self._subject = spec
            if spec == self._subject:
                return self.settings.subject_swap
        return spec

    # -- zero-code suite -------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        if self.settings.backbone is None:
            return
        add_suite_items(session, config, items, self.settings.backbone, lambda name: setting(config, name))

    # -- running a spec ----------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        records = item.stash.get(RECORDS_KEY, None)
        if records is None:
            return (yield)
        session = self.reuse.session
        if self.settings.swaps or self.settings.subject_swap:
            session.backbone_alias = self._alias
        self._subject = None
        self._requested = set()
        session.used_backbones.clear()
        session.used_tasks.clear()
        settings = spec_settings(item, self.settings)
        base_seed = session.config.seed
        try:
            yield
            first = SeedRun(base_seed, list(records), None)
        except BaseException as exc:
            if not _is_spec_failure(exc):
                raise
            first = SeedRun(base_seed, list(records), exc)
        try:
            result = self._decide(item, settings, first, records, session)
        finally:
            session.config.seed = base_seed
        item.stash[_gate_key] = result
        for record in records:
            name = f"reusespec:{record.backbone}|{record.task}|{record.strategy}|{record.metric}"
            item.user_properties.append((name, record.value))
        item.user_properties.append(("reusespec:status", result["status"]))
        self._act(item, result, first.error)
        return None

    def _replay(
        self, item: pytest.Item, records: list[ScoreRecord], session: ReuseSession, seed: int
    ) -> SeedRun:
        self.reuse.progress(f"{item.nodeid}: replaying with seed {seed}")
        records.clear()
        session.config.seed = seed
        try:
            item.runtest()
            return SeedRun(seed, list(records), None)
        except BaseException as exc:
            if not _is_spec_failure(exc):
                raise
            if not is_threshold_failure(SeedRun(seed, list(records), exc)):
                raise  # a crash or a non-score assert under another seed fails the spec as it is
            return SeedRun(seed, list(records), exc)

    def _decide(
        self,
        item: pytest.Item,
        settings: SpecSettings,
        first: SeedRun,
        records: list[ScoreRecord],
        session: ReuseSession,
    ) -> dict[str, Any]:
        """The engine's decision on one spec, as the plain dict the report and xdist carry."""
        result: dict[str, Any] = {
            "severity": settings.severity,
            "verdicts": settings.verdicts,
            "lines": [],
            "comparisons": [],
        }
        judgement: SeedJudgement = judge_over_seeds(
            first, lambda seed: self._replay(item, records, session, seed), settings, self.settings.confidence
        )
        if judgement.confidence is not None:
            result["confidence"] = judgement.confidence
            result["lines"] = judgement.lines
            records[:] = judgement.records
        outcome = judgement.verdict
        result["seeds"] = judgement.seeds
        result["requested"] = sorted(self._requested | set(session.used_backbones))
        result["threshold_verdict"] = outcome.value
        own_failure = judgement.own_failure_only
        result["receipt"] = spec_receipt(session)
        spreads = baseline_spreads(item, records, session, judgement, self.settings, self.reuse.progress)
        roles = self._name_swapped(records, session)
        scores = [
            {**r.as_dict(), "role": role, "examples": r.examples, "spread": spread}
            for r, role, spread in zip(records, roles, spreads, strict=True)
        ]
        if self.baseline is not None and not judgement.crashed:
            against = compare_with_baseline(
                self.baseline.spec(item.nodeid), result["receipt"], scores, settings, self.settings.confidence
            )
            result["baseline"] = against.state
            if against.state == "compared":
                result["comparisons"] = [c.as_dict() for c in against.comparisons]
            result["lines"].extend(against.lines)
            own_failure = own_failure and against.verdict is Verdict.PASS
            outcome = worst((outcome, against.verdict))
        keep = self.settings.save_baseline is not None
        result["scores"] = [stored_score(s, s["examples"] if keep else None) for s in scores]
        result["verdict"] = outcome.value
        result["crashed"] = judgement.crashed
        result["own_failure_only"] = own_failure and not result["lines"]
        status = Status.ERROR if judgement.crashed else status_for(outcome, settings.severity)
        result["status"] = status.value
        return result

    def _name_swapped(self, records: list[ScoreRecord], session: ReuseSession) -> list[str]:
        """Show a swapped backbone under its real name; return each score's role (the spec's name).

        Results label scores with the spec's string or with the loaded backbone's name (shift
        results do the latter), so both are mapped back to the role the baseline knows.
        """
        if not (self.settings.swaps or self.settings.subject_swap):
            return [r.backbone for r in records]
        swapped = {role: bb.name for role, bb in session.used_backbones.items() if bb.name != role}
        role_of = {name: role for role, name in swapped.items()}
        roles = []
        for record in records:
            role = role_of.get(record.backbone, record.backbone)
            if role in swapped:
                record.backbone = swapped[role]
                record.extra = {**record.extra, "swapped_from": role}
            roles.append(role)
        return roles

    def _act(self, item: pytest.Item, result: dict[str, Any], error: BaseException | None) -> None:
        """Turn the decision into the call's outcome: return (pass) or raise (fail)."""
        status = result["status"]
        if error is not None and (result["crashed"] or (status == "failed" and result["own_failure_only"])):
            raise error  # pytest shows the spec's own assertion or crash, unchanged
        message = "\n".join(result["lines"])
        if status == "failed":
            raise GateFailure(f"reusespec gate: FAIL\n{message}") from error
        if status == "inconclusive" and self.settings.inconclusive == "block":
            raise Inconclusive(
                f"reusespec gate: INCONCLUSIVE (blocks; --reuse-inconclusive warn to let it pass)\n{message}"
            ) from error
        if status in ("warned", "inconclusive"):
            detail = message or (str(error) if error is not None else "")
            path, line, _ = item.reportinfo()
            warnings.warn_explicit(  # reported at the spec, not here
                ReuseGateWarning(f"reusespec gate: {result['verdict'].upper()} ({status}): {detail}"),
                ReuseGateWarning,
                filename=str(path),
                lineno=(line or 0) + 1,
            )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, Any]:
        report = yield
        if report.when == "call":
            result = item.stash.get(_gate_key, None)
            if result is not None:
                report.reusespec_gate = _jsonable(result)
            if call.excinfo is not None and isinstance(call.excinfo.value, GateFailure | Inconclusive):
                report.longrepr = _gate_longrepr(item, call.excinfo.value)
        return report

    # -- on the controller -----------------------------------------------------------------

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        s = self.settings
        parts = []
        if s.verdicts != "off":
            parts.append(f"verdicts={s.verdicts}@{s.confidence:g} inconclusive={s.inconclusive}")
        if s.seeds > 1 or s.max_seeds > s.seeds:
            parts.append(f"seeds={s.seeds}" + (f" (up to {s.max_seeds})" if s.max_seeds > s.seeds else ""))
        if s.baseline is not None:
            parts.append(f"baseline={s.baseline}")
        if s.swaps or s.subject_swap:
            swaps = [f"{old}={new}" for old, new in s.swaps.items()]
            parts.append("swap " + ", ".join(swaps + ([s.subject_swap] if s.subject_swap else [])))
        if s.backbone is not None:
            parts.append(f"standard suite on {s.backbone}")
        return "reusespec gate: " + "; ".join(parts) if parts else None

    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config) -> Any:
        result = getattr(report, "reusespec_gate", None)
        if report.when != "call" or not result:
            return None
        status = result.get("status")
        if status == "inconclusive":
            return "inconclusive", "I", ("INCONCLUSIVE", {"yellow": True})
        if status == "warned":
            return "warned", "W", ("WARNED", {"yellow": True})
        if status == "tracked":
            return "tracked", "T", ("TRACKED", {"yellow": True})
        return None

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = getattr(report, "reusespec_gate", None)
        if report.when != "call" or not result:
            return
        self.results[report.nodeid] = result
        outcome = self.reuse.outcomes.get(report.nodeid)
        if outcome is not None and result["status"] in ("inconclusive", "warned", "tracked"):
            outcome.outcome = result["status"]
            if result["lines"]:
                outcome.message = result["lines"][0]

    def extend_report(self, document: dict[str, Any]) -> None:
        """Add the receipt and each spec's gate results to a JSON report document."""
        document["receipt"] = self.run_receipt()
        for spec in document.get("specs", []):
            result = self.results.get(spec["nodeid"])
            if result is not None:
                spec["gate"] = {k: v for k, v in result.items() if k != "scores"}
                spec["gate"]["roles"] = [s.get("role") for s in result.get("scores", [])]

    def report_document(self) -> dict[str, Any]:
        from reusespec.reporting.document import build_report, environment

        document = build_report(
            list(self.reuse.outcomes.values()), environment({"seed": self.reuse.settings.seed})
        )
        self.extend_report(document)
        return document

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker:
            return
        references = self.settings.spread_backbones if self.settings.save_baseline else None
        self.problems = run_problems(self.results, self.settings.swaps, self.settings.baseline, references)
        if self.problems:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
        tracker = completeness(self.config)
        refusal = tracker.baseline_refusal(self.results) if tracker is not None else None
        if self.settings.save_baseline is not None and refusal is not None:
            self.written.append(
                f"reusespec baseline NOT written to {self.settings.save_baseline}: {refusal}; "
                "the file there is left as it was"
            )
        elif self.settings.save_baseline is not None:
            self.written.append(
                save_baseline(
                    self.results,
                    self.run_receipt(),
                    self.settings.save_baseline,
                    self.settings.baseline_spread,
                    session,
                    max((len(news) for news in self.settings.spread_backbones.values()), default=0),
                )
            )
        if self.settings.markdown is not None or self.settings.html is not None:
            from reusespec.reporting.render import render_html, render_markdown, write_text_atomic

            document = self.report_document()
            for path, render, what in (
                (self.settings.markdown, render_markdown, "Markdown summary"),
                (self.settings.html, render_html, "HTML report"),
            ):
                if path is not None:
                    text = render(document)
                    done = f"reusespec {what} written to {path}"
                    write = functools.partial(write_text_atomic, path, text)
                    self.written.append(write_or_explain(write, done, what, session))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        lines = summary_lines(self.results, self.reuse.outcomes, self.settings.baseline, self.problems)
        if lines:
            terminalreporter.write_sep("=", "reusespec gate")
            for line in lines:
                terminalreporter.write_line(line)
        for line in self.written:
            terminalreporter.write_line(line)


def _gate_longrepr(item: pytest.Item, failure: AssertionError) -> Any:
    """The spec's own failure as pytest shows it, with the gate's reasons under it.

    Without this, pytest would show the gate's frames; what the reader needs is the spec's
    assert (when it failed) and why the gate decided as it did.
    """
    cause = failure.__cause__
    if cause is None or cause.__traceback__ is None:
        return str(failure)
    longrepr = item.repr_failure(pytest.ExceptionInfo.from_exception(cause))
    addsection = getattr(longrepr, "addsection", None)
    if not callable(addsection):
        return f"{longrepr}\n{failure}"
    addsection("reusespec gate", str(failure))
    return longrepr


def _is_spec_failure(exc: BaseException) -> bool:
    """An exception the gate may judge: assertion failures and errors, not skips/xfails/exits."""
    if isinstance(exc, pytest.skip.Exception | pytest.xfail.Exception):
        return False
    return isinstance(exc, Exception | pytest.fail.Exception)


def _jsonable(value: Any) -> Any:
    """Plain JSON types, so the result travels to the xdist controller and into reports."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items() if k != "examples"}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Verdict):
        return value.value
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    if hasattr(value, "item"):
        return value.item()  # numpy scalars
    return str(value)


def register(config: pytest.Config, reuse: ReusePlugin) -> None:
    """Called from ``pytest_configure`` (:mod:`reusespec.pytest_plugin`)."""
    gate = GatePlugin(config, reuse)
    reuse.report_extensions.append(gate.extend_report)
    config.pluginmanager.register(gate, PLUGIN_NAME)


__all__ = ["GatePlugin", "register", "spec_settings"]
