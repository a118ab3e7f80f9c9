"""The JSON report as typed objects: a run's specs, their scores and their gate decisions.

:meth:`RunReport.from_json` reads a report document (``--reuse-report``) and
:meth:`RunReport.to_json` writes the same document back, key for key, so readers (renderers,
calibration, CI scripts) can use attributes and enums instead of string keys.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reusespec.errors import ReuseSpecError
from reusespec.gate.rules import Status
from reusespec.results import ScoreRecord

__all__ = ["GateDecision", "Outcome", "ReportError", "RunReport", "SpecReport", "as_run_report"]

SCHEMA = "reusespec-report"


class ReportError(ReuseSpecError, ValueError):
    """A document that is not a reusespec JSON report."""


class Outcome(str, enum.Enum):
    """How pytest ended a spec (the gate's statuses refine passed and failed)."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    ERROR = "error"
    INCONCLUSIVE = "inconclusive"
    WARNED = "warned"
    TRACKED = "tracked"


# Keys a gate decision has only in some runs (judged specs; runs with a baseline).
_OPTIONAL_GATE_KEYS = ("confidence", "baseline")


@dataclass
class GateDecision:
    """The release gate's decision on one spec (the report's ``specs[].gate``)."""

    status: Status
    verdict: str
    threshold_verdict: str
    severity: str
    verdicts: str
    seeds: list[int]
    lines: list[str]
    comparisons: list[dict[str, Any]]
    crashed: bool
    own_failure_only: bool
    receipt: dict[str, Any]
    roles: list[str | None]
    confidence: float | None = None  # per look; absent when the spec could not be judged
    baseline: str | None = None  # compared, refused, or no baseline for this spec; absent without one

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GateDecision:
        return cls(
            status=Status(data["status"]),
            verdict=str(data["verdict"]),
            threshold_verdict=str(data["threshold_verdict"]),
            severity=str(data["severity"]),
            verdicts=str(data["verdicts"]),
            seeds=[int(s) for s in data.get("seeds", [])],
            lines=[str(line) for line in data.get("lines", [])],
            comparisons=[dict(c) for c in data.get("comparisons", [])],
            crashed=bool(data.get("crashed", False)),
            own_failure_only=bool(data.get("own_failure_only", False)),
            receipt=dict(data.get("receipt", {})),
            roles=list(data.get("roles", [])),
            confidence=data.get("confidence"),
            baseline=data.get("baseline"),
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": self.status.value,
            "verdict": self.verdict,
            "threshold_verdict": self.threshold_verdict,
            "severity": self.severity,
            "verdicts": self.verdicts,
            "seeds": self.seeds,
            "lines": self.lines,
            "comparisons": self.comparisons,
            "crashed": self.crashed,
            "own_failure_only": self.own_failure_only,
            "receipt": self.receipt,
            "roles": self.roles,
        }
        for key in _OPTIONAL_GATE_KEYS:
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data


@dataclass
class SpecReport:
    """One spec: its outcome, its scores and (with the gate active) the gate's decision."""

    nodeid: str
    outcome: Outcome
    duration: float = 0.0
    message: str = ""
    scores: list[ScoreRecord] = field(default_factory=list)
    gate: GateDecision | None = None

    @property
    def status(self) -> str:
        """The gate's status when it judged the spec, else pytest's outcome."""
        return self.gate.status.value if self.gate is not None else self.outcome.value

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SpecReport:
        gate = data.get("gate")
        return cls(
            nodeid=str(data["nodeid"]),
            outcome=Outcome(data["outcome"]),
            duration=float(data.get("duration", 0.0)),
            message=str(data.get("message", "")),
            scores=[ScoreRecord.from_dict(dict(s)) for s in data.get("scores", [])],
            gate=None if gate is None else GateDecision.from_json(gate),
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "nodeid": self.nodeid,
            "outcome": self.outcome.value,
            "duration": self.duration,
            "message": self.message,
            "scores": [s.as_dict() for s in self.scores],
        }
        if self.gate is not None:
            data["gate"] = self.gate.to_json()
        return data


@dataclass
class RunReport:
    """A whole run: environment, summary counts, specs, and the gate's receipt when it ran."""

    version: int
    created: str
    environment: dict[str, Any]
    summary: dict[str, int]
    specs: list[SpecReport]
    receipt: dict[str, Any] | None = None

    @property
    def seed(self) -> Any:
        """The run's seed: the gate's receipt, else the environment (None when neither has it)."""
        return (self.receipt or {}).get("seed", self.environment.get("seed"))

    def sorted_specs(self) -> list[SpecReport]:
        return sorted(self.specs, key=lambda spec: spec.nodeid)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunReport:
        if data.get("schema") != SCHEMA:
            raise ReportError(f"not a reusespec report (schema {data.get('schema')!r}, expected {SCHEMA!r})")
        return cls(
            version=int(data["version"]),
            created=str(data.get("created", "")),
            environment=dict(data.get("environment", {})),
            summary={str(k): int(v) for k, v in data.get("summary", {}).items()},
            specs=[SpecReport.from_json(s) for s in data.get("specs", [])],
            receipt=None if data.get("receipt") is None else dict(data["receipt"]),
        )

    @classmethod
    def load(cls, path: str | Path) -> RunReport:
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            if isinstance(exc, ReportError):
                raise
            raise ReportError(
                f"cannot read the report {path}: {exc}; write it again with --reuse-report"
            ) from None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": SCHEMA,
            "version": self.version,
            "created": self.created,
            "environment": self.environment,
            "summary": self.summary,
            "specs": [s.to_json() for s in self.specs],
        }
        if self.receipt is not None:
            data["receipt"] = self.receipt
        return data


def as_run_report(report: RunReport | Mapping[str, Any]) -> RunReport:
    """``report`` itself, or the report document read as a :class:`RunReport`."""
    return report if isinstance(report, RunReport) else RunReport.from_json(report)
