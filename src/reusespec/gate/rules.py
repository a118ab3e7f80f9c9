"""The gate's rules: verdicts on thresholds, severities and the status a spec ends with.

Pytest-free: the plugin (:mod:`reusespec.pytest_plugin.gate`) feeds these functions the records
a spec made under each seed and turns the decision into a pytest outcome. The rule, per spec:

* a spec whose asserts passed is PASS when the interval of every score it compared
  (successfully) lies wholly on the right side of its threshold, and INCONCLUSIVE when one
  straddles it;
* a spec that failed an assert on a recorded comparison is FAIL when the interval of a failed
  comparison lies wholly on the wrong side, and INCONCLUSIVE when every failed comparison
  straddles its threshold;
* any other failure (an exception, an assert on something that is not a score) fails as usual;
  scores without an interval (parameter counts, ...) are compared as points.

With several seeds each compared score is re-evaluated on its mean over the seeds, with the
interval of :func:`reusespec.across_seeds.interval_for`, and the spec's comparisons are all
required: FAIL if any is FAIL, else INCONCLUSIVE if any straddles, else PASS.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from reusespec.across_seeds import interval_for, satisfies
from reusespec.gate.tracking import measured_verdict, noise_of
from reusespec.results import ScoreRecord
from reusespec.stats import Verdict, verdict, verdict_message

__all__ = [
    "VERDICT_MODES",
    "SeedRun",
    "Severity",
    "Status",
    "is_threshold_failure",
    "record_verdict",
    "status_for",
    "threshold_verdict",
    "worst",
]

VERDICT_MODES = ("off", "interval")
_RANK = {Verdict.PASS: 0, Verdict.INCONCLUSIVE: 1, Verdict.FAIL: 2}


class Severity(str, enum.Enum):
    """What a spec's FAIL does: fail the test (block), pass with a warning (warn), record only (track)."""

    BLOCK = "block"
    WARN = "warn"
    TRACK = "track"


class Status(str, enum.Enum):
    """How a spec ends once the gate has decided (the JSON report's ``gate.status``)."""

    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    WARNED = "warned"
    TRACKED = "tracked"
    ERROR = "error"


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """FAIL over INCONCLUSIVE over PASS (PASS for none)."""
    return max(verdicts, key=_RANK.__getitem__, default=Verdict.PASS)


@dataclass
class SeedRun:
    """One execution of a spec: its seed, the scores it recorded, and how it ended."""

    seed: int
    records: list[ScoreRecord]
    error: BaseException | None = None

    @property
    def assertion_failed(self) -> bool:
        return isinstance(self.error, AssertionError)

    @property
    def crashed(self) -> bool:
        """Ended in an exception that is not an assertion: no verdict can excuse it."""
        return self.error is not None and not self.assertion_failed


def is_threshold_failure(run: SeedRun) -> bool:
    """An assert failed on a recorded comparison (rather than on something else)."""
    return run.assertion_failed and any(r.passed is False for r in run.records)


def record_verdict(
    records: list[ScoreRecord], threshold: float, op: str, confidence: float
) -> tuple[Verdict, str]:
    """Verdict of one compared score from its per-seed records, and a line that explains it."""
    first = records[0]
    where = f"{first.backbone} on {first.task}" + (f" over {len(records)} seeds" if len(records) > 1 else "")
    measured = measured_verdict(first.extra, first.metric, threshold, op) if len(records) == 1 else None
    if measured is not None:  # a latency or memory measurement: its own interval, and the machine's noise
        return measured[0], f"{where}: {measured[1]}"
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
        noisy = _noisy_measured_failures(run)
        if noisy:  # only measured costs failed, on a machine too noisy to tell: not a FAIL
            return Verdict.INCONCLUSIVE, noisy
        if mode == "off":
            return (Verdict.FAIL if failed else Verdict.PASS), []
        relied = [r for r in run.records if r.threshold is not None and r.op and r.passed is (not failed)]
        judged = [record_verdict([r], float(r.threshold or 0.0), str(r.op), confidence) for r in relied]
        outcomes = [v for v, _ in judged]
        lines = [line for _, line in judged]
        if failed:
            return (Verdict.FAIL if Verdict.FAIL in outcomes else Verdict.INCONCLUSIVE), lines
        return (Verdict.INCONCLUSIVE if Verdict.INCONCLUSIVE in outcomes else Verdict.PASS), lines
    lines = []
    outcomes = []
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
            outcome, line = record_verdict(
                [run.records[position] for run in runs], record.threshold, record.op, confidence
            )
        lines.append(line)
        outcomes.append(outcome)
    return worst(outcomes), lines


def _noisy_measured_failures(run: SeedRun) -> list[str]:
    """Lines for a run whose failed asserts were all on latencies measured on a machine too noisy to
    decide (else []): contention could have made them slow, so they are INCONCLUSIVE, not FAIL."""
    failed = [r for r in run.records if r.passed is False and r.threshold is not None and r.op]
    if not run.assertion_failed or not failed:
        return []
    lines = []
    for record in failed:
        measured = measured_verdict(
            record.extra, record.metric, float(record.threshold or 0.0), str(record.op)
        )
        too_busy = noise_of({"metric": record.metric, "extra": record.extra}) is not None
        if measured is None or measured[0] is not Verdict.INCONCLUSIVE or not too_busy:
            return []
        lines.append(f"{record.backbone} on {record.task}: {measured[1]}")
    return lines


def status_for(outcome: Verdict, severity: Severity | str) -> Status:
    """The status of a spec that did not crash, from its overall verdict and severity.

    ``--reuse-inconclusive`` does not change the status, only what it does to the test: an
    INCONCLUSIVE spec fails the test under ``block`` and passes with a warning under ``warn``.
    """
    if outcome is Verdict.PASS:
        return Status.PASSED
    severity = Severity(severity)
    if severity is Severity.TRACK:
        return Status.TRACKED
    if severity is Severity.WARN:
        return Status.WARNED
    return Status.INCONCLUSIVE if outcome is Verdict.INCONCLUSIVE else Status.FAILED
