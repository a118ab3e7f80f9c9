"""The typed report model reads a JSON report and writes it back key for key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reusespec.errors import ReuseSpecError
from reusespec.gate.rules import Status
from reusespec.reporting.document import SpecOutcome, build_report, environment
from reusespec.reporting.model import Outcome, RunReport
from reusespec.results import ScoreRecord


def document() -> dict[str, object]:
    accuracy = ScoreRecord(
        "bb", "digits", "head-only", "accuracy", 0.93, 0.5, True, 0.9, ">=", True, 0.9, 0.95
    )
    shifted = ScoreRecord("bb", "digits ~ fog@2", "head-only", "shifted_accuracy", 0.7, shift="fog@2")
    shifted.corruption, shifted.severity = "fog", 2
    doc = build_report(
        [SpecOutcome("t.py::a", "passed", 0.5, "", [accuracy, shifted]), SpecOutcome("t.py::b", "skipped")],
        environment({"seed": 0}),
    )
    gate = {
        "status": "inconclusive", "verdict": "inconclusive", "threshold_verdict": "inconclusive",
        "severity": "block", "verdicts": "interval", "seeds": [0, 1], "lines": ["straddles"],
        "comparisons": [], "crashed": False, "own_failure_only": False, "receipt": {"device": "cpu"},
        "roles": ["bb", "bb"], "confidence": 0.95,
    }  # fmt: skip
    doc["specs"][0]["gate"] = gate  # type: ignore[index]
    doc["receipt"] = {"seed": 0, "seeds": 2}
    return json.loads(json.dumps(doc))


def test_a_report_reads_as_typed_objects_and_writes_back_unchanged() -> None:
    doc = document()
    report = RunReport.from_json(doc)
    first, second = report.specs
    assert first.outcome is Outcome.PASSED and second.outcome is Outcome.SKIPPED and second.gate is None
    assert first.gate is not None and first.gate.status is Status.INCONCLUSIVE and first.gate.baseline is None
    assert first.scores[1].corruption == "fog" and first.scores[1].severity == 2
    assert json.loads(json.dumps(report.to_json())) == doc


def test_a_file_that_is_no_report_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"schema": "reusespec-baseline"}))
    with pytest.raises(ReuseSpecError, match="not a reusespec report"):
        RunReport.load(path)
    path.write_text("{")
    with pytest.raises(ReuseSpecError, match="cannot read the report"):
        RunReport.load(path)
