"""The release gate: confidence-aware verdicts, seeds, baselines, severities and CI reports.

Registered by :mod:`reusespec.plugin`; everything here is opt-in, and a run without any of its
options behaves exactly as before (the spec's own ``assert`` decides), except that scores are
also written as JUnit XML properties and the JSON report gets a reproducibility receipt.

Verdicts (``--reuse-verdicts interval`` or ``@pytest.mark.reuse_verdicts("interval")``)
    A ``Metric`` remembers the threshold and operator it was compared with, and accuracy
    scores carry their bootstrap interval over test examples. The rule, per spec:

    * a spec whose asserts passed is PASS when the interval of every score it compared
      (successfully) lies wholly on the right side of its threshold, and INCONCLUSIVE when one
      straddles it;
    * a spec that failed an assert on a recorded comparison is FAIL when the interval of a
      failed comparison lies wholly on the wrong side, and INCONCLUSIVE when every failed
      comparison straddles its threshold;
    * any other failure (an exception, an assert on something that is not a score) fails as
      usual; scores without an interval (parameter counts, ...) are compared as points.

    With several seeds each compared score is re-evaluated on its mean over the seeds, with
    the interval of :func:`reusespec.seeding.interval_for`, and the spec's comparisons are all
    required (as in ``assert a >= x and b <= y``): FAIL if any is FAIL, else INCONCLUSIVE if
    any straddles, else PASS.

Seeds (``--reuse-seeds N``, ``@pytest.mark.reuse_seeds(N, max_seeds=M)``)
    The whole spec is replayed with the run's seed, seed + 1, ..., and its scores become means
    over the seeds (without verdicts, the mean is compared with the threshold). With
    ``--reuse-max-seeds M`` (M > N) and interval verdicts, the first look is at ``N0 = max(2, N)``
    seeds (one seed cannot show seed noise), and an INCONCLUSIVE spec then gets one more seed at a
    time until its verdict is conclusive or M seeds ran. Every look, the first included, uses the
    confidence ``1 - (1 - c) / L`` for ``L = M - N0 + 1`` looks (Bonferroni, as
    :func:`reusespec.stats.decide_with_seeds`, which also starts at two seeds), so that looking
    repeatedly does not inflate the chance of a wrong PASS or FAIL beyond ``1 - c``.

Baselines (``--reuse-save-baseline PATH``, ``--reuse-baseline PATH``): see :mod:`reusespec.baseline`.

Severity (``@pytest.mark.reuse_severity("block" | "warn" | "track")``)
    block (default): a FAIL fails the test. warn: a FAIL or INCONCLUSIVE passes, with a
    ``ReuseGateWarning`` in pytest's warnings summary and the status WARNED. track: the scores
    are recorded and compared, the test never fails on them (status TRACKED). Severity applies
    to assertion failures; a spec that crashes is an error whatever its severity.
    INCONCLUSIVE blocks (fails the test, status INCONCLUSIVE) unless ``--reuse-inconclusive warn``.

Zero-code checks: ``--reuse-backbone SPEC`` runs :mod:`reusespec.standard_suite` on a checkpoint;
``--reuse-swap-backbone [OLD=]NEW`` runs existing specs with NEW in place of OLD (without
``OLD=``, in place of the first backbone each spec loads).
"""

from __future__ import annotations

import math
import subprocess
import warnings
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from reusespec.baseline import (
    Baseline,
    BaselineError,
    Comparison,
    Tolerance,
    check_run_compatible,
    check_spec_compatible,
    compare_score,
    default_tolerance,
    library_versions,
    match_scores,
    parse_tolerance,
    stored_score,
)
from reusespec.plugin import ReusePlugin, _path, _plugin, _records_key
from reusespec.results import ScoreRecord
from reusespec.seeding import aggregate_records, interval_for, satisfies
from reusespec.stats import Verdict, verdict, verdict_message

if TYPE_CHECKING:
    from reusespec.session import ReuseSession

PLUGIN_NAME = "reusespec-gate"
SEVERITIES = ("block", "warn", "track")
VERDICT_MODES = ("off", "interval")
_gate_key = pytest.StashKey[dict[str, Any]]()
_WORST = {Verdict.PASS: 0, Verdict.INCONCLUSIVE: 1, Verdict.FAIL: 2}


class ReuseGateWarning(UserWarning):
    """A spec with severity ``warn`` (or an inconclusive one under ``--reuse-inconclusive warn``)."""


class GateFailure(AssertionError):
    """A spec the gate failed: a verdict over seeds or intervals, a regression, a refused baseline."""


class Inconclusive(AssertionError):
    """A spec whose interval straddles its threshold (and ``--reuse-inconclusive block``)."""


def add_gate_options(parser: pytest.Parser) -> None:
    """The gate's options; called from :func:`reusespec.plugin.pytest_addoption`."""
    group = parser.getgroup("reusespec")
    group.addoption(
        "--reuse-verdicts",
        dest="reuse_verdicts",
        choices=VERDICT_MODES,
        default=None,
        help="off: the spec's assert decides (default); interval: pass/fail only when the score's "
        "confidence interval is wholly on one side of its threshold, else inconclusive",
    )
    parser.addini("reuse_verdicts", "as --reuse-verdicts", default="off")
    group.addoption(
        "--reuse-confidence",
        dest="reuse_confidence",
        default=None,
        help="confidence of the intervals verdicts use (default 0.95)",
    )
    parser.addini("reuse_confidence", "as --reuse-confidence", default="0.95")
    group.addoption(
        "--reuse-seeds",
        dest="reuse_seeds",
        type=int,
        default=None,
        help="replay every spec with N seeds (the run's seed, +1, ...); scores become means (default 1)",
    )
    parser.addini("reuse_seeds", "as --reuse-seeds", default="1")
    group.addoption(
        "--reuse-max-seeds",
        dest="reuse_max_seeds",
        type=int,
        default=None,
        help="with interval verdicts, add seeds to an inconclusive spec, one at a time, up to M",
    )
    group.addoption(
        "--reuse-inconclusive",
        dest="reuse_inconclusive",
        choices=("block", "warn"),
        default=None,
        help="an inconclusive spec fails the run (block, default) or passes with a warning (warn)",
    )
    parser.addini("reuse_inconclusive", "as --reuse-inconclusive", default="block")
    for name, help_text in (
        ("save-baseline", "store every score of this run (and its receipt) as a baseline at PATH"),
        ("baseline", "compare every score with the baseline at PATH; fail specs that regressed"),
        ("markdown", "write a Markdown summary (for a CI job summary or a PR comment) to PATH"),
        ("html", "write a self-contained HTML report (matrix, per-spec charts) to PATH"),
    ):
        group.addoption(
            f"--reuse-{name}",
            dest=f"reuse_{name.replace('-', '_')}",
            metavar="PATH",
            default=None,
            help=help_text,
        )
        parser.addini(f"reuse_{name.replace('-', '_')}", help_text, default=None)
    group.addoption(
        "--reuse-backbone",
        dest="reuse_backbone",
        metavar="SPEC",
        default=None,
        help="zero-code check: run the standard reuse suite on this backbone (e.g. file:new.safetensors)",
    )
    group.addoption(
        "--reuse-swap-backbone",
        dest="reuse_swap_backbone",
        metavar="[OLD=]NEW",
        action="append",
        default=[],
        help="run the specs with NEW in place of OLD (without OLD=: in place of each spec's first backbone)",
    )
    group.addoption(
        "--reuse-suite-task",
        dest="reuse_suite_task",
        metavar="TASK",
        action="append",
        default=[],
        help="a task of the standard suite (repeatable; default: ini reuse_suite_tasks)",
    )
    from reusespec.standard_suite import SUITE_INI

    for name, help_text in SUITE_INI.items():
        if name == "reuse_suite_tasks":
            parser.addini(name, help_text, type="linelist")
        else:
            parser.addini(name, help_text, type="string")


def _setting(config: pytest.Config, name: str) -> Any:
    """A command-line option, else the ini value of the same name."""
    value = config.getoption(name, None)
    if value is None:
        try:
            value = config.getini(name)
        except ValueError:
            return None
    return value


@dataclass
class GateSettings:
    """The run's gate options."""

    verdicts: str = "off"
    confidence: float = 0.95
    seeds: int = 1
    max_seeds: int = 1
    inconclusive: str = "block"
    baseline: Path | None = None
    save_baseline: Path | None = None
    markdown: Path | None = None
    html: Path | None = None
    backbone: str | None = None
    swaps: dict[str, str] = field(default_factory=dict)
    subject_swap: str | None = None

    @classmethod
    def from_config(cls, config: pytest.Config) -> GateSettings:
        seeds = int(_setting(config, "reuse_seeds") or 1)
        max_seeds = config.getoption("reuse_max_seeds")
        confidence = float(_setting(config, "reuse_confidence") or 0.95)
        settings = cls(
            verdicts=str(_setting(config, "reuse_verdicts") or "off"),
            confidence=confidence,
            seeds=seeds,
            max_seeds=seeds if max_seeds is None else int(max_seeds),
            inconclusive=str(_setting(config, "reuse_inconclusive") or "block"),
            baseline=_path(config, "baseline"),
            save_baseline=_path(config, "save_baseline"),
            markdown=_path(config, "markdown"),
            html=_path(config, "html"),
            backbone=config.getoption("reuse_backbone"),
        )
        for swap in config.getoption("reuse_swap_backbone") or ():
            old, sep, new = swap.partition("=")
            if sep and old and new:
                settings.swaps[old] = new
            elif not sep:
                settings.subject_swap = swap
            else:
                raise pytest.UsageError(f"--reuse-swap-backbone {swap!r}: give NEW or OLD=NEW")
        settings.check()
        return settings

    def check(self) -> None:
        problems = []
        if self.verdicts not in VERDICT_MODES:
            problems.append(f"verdicts must be one of {VERDICT_MODES}, got {self.verdicts!r}")
        if self.inconclusive not in ("block", "warn"):
            problems.append(f"inconclusive must be block or warn, got {self.inconclusive!r}")
        if self.seeds < 1:
            problems.append(f"--reuse-seeds must be at least 1, got {self.seeds}")
        if self.max_seeds < self.seeds:
            problems.append(
                f"--reuse-max-seeds ({self.max_seeds}) must be at least --reuse-seeds ({self.seeds})"
            )
        if not 0.0 < self.confidence < 1.0:
            problems.append(f"--reuse-confidence must lie in (0, 1), got {self.confidence}")
        if problems:
            raise pytest.UsageError("reusespec gate: " + "; ".join(problems))


@dataclass
class SpecSettings:
    """The gate settings of one spec: the run's, overridden by its markers."""

    severity: str
    verdicts: str
    seeds: int
    max_seeds: int
    tolerance_all: Tolerance | None = None
    tolerances: dict[str, Tolerance] = field(default_factory=dict)

    def tolerance(self, metric: str) -> Tolerance:
        return self.tolerances.get(metric) or self.tolerance_all or default_tolerance(metric)


def spec_settings(item: pytest.Item, run: GateSettings) -> SpecSettings:
    settings = SpecSettings("block", run.verdicts, run.seeds, run.max_seeds)
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
    return settings


@dataclass
class SeedRun:
    """One execution of a spec: its seed, the scores it recorded, and how it ended."""

    seed: int
    records: list[ScoreRecord]
    error: BaseException | None = None


def _is_assertion(exc: BaseException | None) -> bool:
    return isinstance(exc, AssertionError)


def _threshold_failure(run: SeedRun) -> bool:
    """An assert failed on a recorded comparison (rather than on something else)."""
    return _is_assertion(run.error) and any(r.passed is False for r in run.records)


def _record_verdict(
    records: list[ScoreRecord], threshold: float, op: str, confidence: float
) -> tuple[Verdict, str]:
    """Verdict of one compared score from its per-seed records, and a line that explains it."""
    first = records[0]
    where = f"{first.backbone} on {first.task}" + (f" over {len(records)} seeds" if len(records) > 1 else "")
    interval = interval_for(records, confidence)
    if interval is None:
        value = sum(r.value for r in records) / len(records)
        outcome = Verdict.PASS if satisfies(value, op, threshold) else Verdict.FAIL
        return (
            outcome,
            f"{where}: {outcome.name}: {first.metric} {value:.4g} {op} {threshold:.4g} "
            "(no interval: compared as a point)",
        )
    message = verdict_message(interval, threshold, op, metric=first.metric)
    return verdict(interval, threshold, op), f"{where}: {message}"


def threshold_verdict(
    runs: list[SeedRun], aggregated: list[ScoreRecord], mode: str, confidence: float
) -> tuple[Verdict, list[str]]:
    """The spec's verdict on its thresholds (the rule of this module's docstring)."""
    if len(runs) == 1:
        run = runs[0]
        failed = run.error is not None
        if mode == "off":
            return (Verdict.FAIL if failed else Verdict.PASS), []
        relied = [r for r in run.records if r.threshold is not None and r.op and r.passed is (not failed)]
        judged = [_record_verdict([r], float(r.threshold or 0.0), str(r.op), confidence) for r in relied]
        outcomes = [v for v, _ in judged]
        lines = [line for _, line in judged]
        if failed:
            return (Verdict.FAIL if Verdict.FAIL in outcomes else Verdict.INCONCLUSIVE), lines
        return (Verdict.INCONCLUSIVE if Verdict.INCONCLUSIVE in outcomes else Verdict.PASS), lines
    lines = []
    overall = Verdict.PASS
    for position, record in enumerate(aggregated):
        if record.threshold is None or record.op is None:
            continue
        if mode == "off":
            outcome = Verdict.PASS if record.passed else Verdict.FAIL
            line = (
                f"{outcome.name}: mean {record.metric} of {record.backbone} on {record.task} over "
                f"{len(runs)} seeds {record.value:.4g} {record.op} {record.threshold:.4g}"
            )
        else:
            outcome, line = _record_verdict(
                [run.records[position] for run in runs], record.threshold, record.op, confidence
            )
        lines.append(line)
        overall = max(overall, outcome, key=_WORST.__getitem__)
    return overall, lines


class GatePlugin:
    """Per-process gate state; on the controller also the gate results of every spec."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings = GateSettings.from_config(config)
        self.is_worker = hasattr(config, "workerinput")
        self.results: dict[str, dict[str, Any]] = {}
        self.written: list[str] = []
        self._subject: str | None = None
        self.baseline: Baseline | None = None
        for marker in (
            "reuse_severity(level): block (default) fails the run, warn reports only, track only records",
            "reuse_tolerance(abs_or_pct=None, *, abs=None, rel=None, **per_metric): regression tolerance "
            "against the baseline, e.g. reuse_tolerance(accuracy=0.02, latency_ms='50%')",
            "reuse_seeds(n, max_seeds=None): replay the spec over n seeds (more, up to max_seeds, while "
            "its verdict is inconclusive)",
            "reuse_verdicts(mode='interval'): confidence-aware verdicts for this spec",
        ):
            config.addinivalue_line("markers", marker)
        if self.settings.baseline is not None:
            try:
                self.baseline = Baseline.load(self.settings.baseline)
            except BaselineError as exc:
                raise pytest.UsageError(str(exc)) from None
            problems = check_run_compatible(self.baseline.receipt, self.run_receipt(compatibility_only=True))
            if problems:
                raise pytest.UsageError(
                    f"reusespec: refusing to compare with the baseline {self.settings.baseline}: "
                    + "; ".join(problems)
                    + ". A baseline only compares like with like: save a new one with "
                    "--reuse-save-baseline on the reference checkpoint with these settings."
                )

    @property
    def reuse(self) -> ReusePlugin:
        return _plugin(self.config)

    # -- receipts ------------------------------------------------------------------------

    def run_receipt(self, compatibility_only: bool = False) -> dict[str, Any]:
        """What the run's scores depend on: libraries, seeds, and (for the report) more."""
        receipt: dict[str, Any] = {
            "libraries": library_versions(),
            "seed": self.reuse.settings.seed,
            "seeds": self.settings.seeds,
        }
        if compatibility_only:
            return receipt
        import platform
        import sys

        devices = sorted({str(r.get("receipt", {}).get("device")) for r in self.results.values()} - {"None"})
        receipt.update(
            {
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "devices": devices,
                "verdicts": self.settings.verdicts,
                "confidence": self.settings.confidence,
                "max_seeds": self.settings.max_seeds,
                **self._git(),
            }
        )
        backbones: dict[str, Any] = {}
        tasks: dict[str, Any] = {}
        for result in self.results.values():
            backbones.update(result.get("receipt", {}).get("backbones", {}))
            tasks.update(result.get("receipt", {}).get("tasks", {}))
        receipt["backbones"], receipt["tasks"] = backbones, tasks
        return receipt

    def _git(self) -> dict[str, Any]:
        if not hasattr(self, "_git_state"):
            self._git_state = git_state(Path(self.config.rootpath))
        return self._git_state

    @staticmethod
    def spec_receipt(session: ReuseSession) -> dict[str, Any]:
        backbones = {
            role: {
                "name": bb.name,
                "fingerprint": bb.fingerprint,
                "transform": bb.input_spec.key(),
                "input": _describe_input(bb.input_spec),
            }
            for role, bb in session.used_backbones.items()
        }
        tasks = {
            f"{name}@{seed}": {
                "task": name,
                "seed": seed,
                "fingerprint": task.fingerprint,
                "test": task.test.fingerprint,
            }
            for (name, seed), task in session.used_tasks.items()
        }
        return {"backbones": backbones, "tasks": tasks, "device": str(session.device)}

    # -- backbone swap ---------------------------------------------------------------------

    def _alias(self, spec: str) -> str:
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
        from reusespec.standard_suite import SuiteConfig, standard_checks

        suite = SuiteConfig.from_settings(
            self.settings.backbone,
            config.getoption("reuse_suite_task") or [],
            lambda name: _setting(config, name),
        )
        new = [
            StandardSuiteItem.from_parent(
                session, name=check.name, nodeid=f"reusespec-standard-suite::{check.name}", check=check
            )
            for check in standard_checks(suite)
        ]
        if config.args_source != pytest.Config.ArgsSource.ARGS and items:
            # No paths given: the standard suite is the whole run (the user's specs are not it).
            config.hook.pytest_deselected(items=list(items))
            items.clear()
        items.extend(new)

    # -- running a spec ----------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        records = item.stash.get(_records_key, None)
        if records is None:
            return (yield)
        session = self.reuse.session
        if self.settings.swaps or self.settings.subject_swap:
            session.backbone_alias = self._alias
        self._subject = None
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
            if not _threshold_failure(SeedRun(seed, list(records), exc)):
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
        result: dict[str, Any] = {
            "severity": settings.severity,
            "verdicts": settings.verdicts,
            "lines": [],
            "comparisons": [],
        }
        crash = first.error is not None and not _is_assertion(first.error)
        judgeable = first.error is None or _threshold_failure(first)
        runs = [first]
        aggregated = list(first.records)
        outcome = Verdict.FAIL if first.error is not None else Verdict.PASS
        if judgeable:
            auto = settings.verdicts == "interval" and settings.max_seeds > settings.seeds
            # With a seed budget the first look already needs two seeds: one seed shows the
            # test-set noise only, and a verdict on it would ignore the noise seeds were asked for.
            initial = max(2, settings.seeds) if auto else settings.seeds
            looks = settings.max_seeds - initial + 1 if auto else 1
            confidence = 1.0 - (1.0 - self.settings.confidence) / looks
            result["confidence"] = confidence
            while len(runs) < initial:
                runs.append(self._replay(item, records, session, first.seed + len(runs)))
            while True:
                if len(runs) > 1:
                    aggregated = aggregate_records(
                        [r.records for r in runs], [r.seed for r in runs], self.settings.confidence
                    )
                outcome, lines = threshold_verdict(runs, aggregated, settings.verdicts, confidence)
                if outcome is not Verdict.INCONCLUSIVE or not auto or len(runs) >= settings.max_seeds:
                    break
                runs.append(self._replay(item, records, session, first.seed + len(runs)))
            result["lines"] = lines
            records[:] = aggregated
        result["seeds"] = [r.seed for r in runs]
        result["threshold_verdict"] = outcome.value
        own_failure = outcome is Verdict.FAIL and first.error is not None and len(runs) == 1
        result["receipt"] = self.spec_receipt(session)
        roles = self._name_swapped(records, session)
        scores = [
            {**r.as_dict(), "role": role, "examples": r.examples}
            for r, role in zip(records, roles, strict=True)
        ]
        if self.baseline is not None and not crash:
            against_baseline = self._compare(item, settings, result, scores)
            own_failure = own_failure and against_baseline is Verdict.PASS
            outcome = max(outcome, against_baseline, key=_WORST.__getitem__)
        keep = self.settings.save_baseline is not None
        result["scores"] = [stored_score(s, s["examples"] if keep else None) for s in scores]
        result["verdict"] = outcome.value
        result["crashed"] = crash
        result["own_failure_only"] = own_failure and not result["lines"]
        result["status"] = (
            "error" if crash else _status(outcome, settings.severity, self.settings.inconclusive)
        )
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

    def _compare(
        self, item: pytest.Item, settings: SpecSettings, result: dict[str, Any], scores: list[dict[str, Any]]
    ) -> Verdict:
        assert self.baseline is not None
        base = self.baseline.spec(item.nodeid)
        if base is None:
            result["baseline"] = "no baseline for this spec"
            return Verdict.PASS
        problems = check_spec_compatible(base.get("receipt", {}), result["receipt"])
        if problems:
            result["baseline"] = "refused"
            result["lines"].append(
                "baseline refused: " + "; ".join(problems) + " (save a new baseline with these settings)"
            )
            return Verdict.FAIL
        result["baseline"] = "compared"
        overall = Verdict.PASS
        comparisons: list[Comparison] = []
        for old, new in match_scores(base.get("scores", []), scores):
            if old is None or new is None or not _finite(old.get("value")):
                continue
            comparison = compare_score(
                old,
                new,
                settings.tolerance(str(new["metric"])),
                current_examples=new.get("examples"),
                interval_verdicts=settings.verdicts == "interval",
                confidence=self.settings.confidence,
            )
            comparisons.append(comparison)
            overall = max(overall, comparison.verdict, key=_WORST.__getitem__)
        result["comparisons"] = [c.as_dict() for c in comparisons]
        result["lines"].extend(c.message for c in comparisons if c.verdict is not Verdict.PASS)
        return overall

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
        from reusespec.report import build_report, environment

        document = build_report(
            list(self.reuse.outcomes.values()), environment({"seed": self.reuse.settings.seed})
        )
        self.extend_report(document)
        return document

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker:
            return
        if self.settings.save_baseline is not None:
            baseline = Baseline(receipt=self.run_receipt())
            for nodeid, result in self.results.items():
                baseline.specs[nodeid] = {
                    "outcome": result["status"],
                    "receipt": result.get("receipt", {}),
                    "scores": result.get("scores", []),
                }
            baseline.save(self.settings.save_baseline)
            self.written.append(
                f"reusespec baseline ({len(baseline.specs)} specs) written to {self.settings.save_baseline}"
            )
        if self.settings.markdown is not None or self.settings.html is not None:
            from reusespec.render import render_html, render_markdown, write_text_atomic

            document = self.report_document()
            if self.settings.markdown is not None:
                write_text_atomic(self.settings.markdown, render_markdown(document))
                self.written.append(f"reusespec Markdown summary written to {self.settings.markdown}")
            if self.settings.html is not None:
                write_text_atomic(self.settings.html, render_html(document))
                self.written.append(f"reusespec HTML report written to {self.settings.html}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        # A plain failure of a spec's own assert is pytest's to show; the gate lists what it decided.
        notable = {
            k: r
            for k, r in self.results.items()
            if r["status"] != "passed" and (r["status"] != "failed" or r["lines"])
        }
        lines = []
        for nodeid, result in sorted(notable.items()):
            lines.append(f"{result['status'].upper():<13} {nodeid}")
            lines.extend(f"    {line}" for line in result["lines"])
        if self.baseline is not None:
            comparisons = [c for r in self.results.values() for c in r.get("comparisons", [])]
            worse = sum(1 for c in comparisons if c["verdict"] != "pass")
            refused = sum(1 for r in self.results.values() if r.get("baseline") == "refused")
            lines.append(
                f"baseline {self.settings.baseline}: {len(comparisons)} scores compared, {worse} not within "
                f"tolerance, {refused} specs refused"
            )
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


def _status(outcome: Verdict, severity: str, inconclusive: str) -> str:
    if outcome is Verdict.PASS:
        return "passed"
    if severity == "track":
        return "tracked"
    if severity == "warn":
        return "warned"
    return "inconclusive" if outcome is Verdict.INCONCLUSIVE else "failed"


def _is_spec_failure(exc: BaseException) -> bool:
    """An exception the gate may judge: assertion failures and errors, not skips/xfails/exits."""
    if isinstance(exc, pytest.skip.Exception | pytest.xfail.Exception):
        return False
    return isinstance(exc, Exception | pytest.fail.Exception)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _describe_input(spec: Any) -> str:
    if spec.modality != "image":
        return str(spec.describe())
    size = "x".join(str(s) for s in spec.size)
    mean = ",".join(f"{m:.3g}" for m in spec.mean)
    std = ",".join(f"{s:.3g}" for s in spec.std)
    resize = f" resize={spec.resize}" if spec.resize else ""
    return f"{spec.channels}x{size}{resize} mean=({mean}) std=({std}) {spec.interpolation}"


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


def git_state(root: Path) -> dict[str, Any]:
    """The commit of the repository at ``root`` and whether it has local changes (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


class StandardSuiteItem(pytest.Item):
    """One check of the zero-code standard suite (``--reuse-backbone SPEC``)."""

    # Marks the item as a reuse spec for the report (the plugin recognises specs by these).
    fixturenames = ("reuse",)

    def __init__(self, *, check: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self._records: list[ScoreRecord] = []

    def setup(self) -> None:
        self._records = []
        self.stash[_records_key] = self._records
        from reusespec.plugin_facade import PytestReuse

        self._reuse = PytestReuse(_plugin(self.config).session, self._records)

    def runtest(self) -> None:
        self.check.run(self._reuse)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"reusespec standard suite: {self.check.description}"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, AssertionError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)


def active_gate(config: pytest.Config) -> GatePlugin | None:
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    return plugin if isinstance(plugin, GatePlugin) else None


def register(config: pytest.Config) -> None:
    """Called from :func:`reusespec.plugin.pytest_configure`."""
    config.pluginmanager.register(GatePlugin(config), PLUGIN_NAME)


__all__ = [
    "GateFailure",
    "GatePlugin",
    "GateSettings",
    "Inconclusive",
    "ReuseGateWarning",
    "SeedRun",
    "StandardSuiteItem",
    "active_gate",
    "add_gate_options",
    "git_state",
    "register",
    "spec_settings",
    "threshold_verdict",
]
