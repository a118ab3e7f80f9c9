"""Shifted scores carry their shift as fields (shift, corruption, severity), and pictures read them."""

from __future__ import annotations

from typing import Any

from reusespec.reporting.pictures import severity_curves_from_report
from reusespec.results import ScoreRecord


def shifted(metric: str, value: float, task: str, shift: str | None, **fields: Any) -> dict[str, Any]:
    label = task if shift is None else f"{task} ~ {shift}"
    return ScoreRecord("bb", label, "head-only", metric, value, shift=shift, **fields).as_dict()


def test_only_shifted_scores_carry_shift_fields() -> None:
    plain = ScoreRecord("bb", "digits", "head-only", "accuracy", 0.9).as_dict()
    assert not {"shift", "corruption", "severity"} & set(plain)
    record = ScoreRecord("bb", "digits ~ fog@2", "head-only", "shifted_accuracy", 0.7, shift="fog@2")
    record.corruption, record.severity = "fog", 2
    assert record.as_dict()["severity"] == 2 and record.shifted_task == "digits"
    assert ScoreRecord.from_dict(record.as_dict()) == record


def test_curves_come_from_the_fields_not_from_the_label() -> None:
    # A corruption name the old label pattern could not parse (a hyphen): the fields carry it.
    scores = [
        shifted("clean_accuracy", 0.9, "digits", "my-blur@1", corruption="my-blur", severity=1),
        shifted("shifted_accuracy", 0.8, "digits", "my-blur@1", corruption="my-blur", severity=1),
        shifted("shifted_accuracy", 0.6, "digits", "my-blur@3", corruption="my-blur", severity=3),
        shifted("shifted_accuracy", 0.5, "digits", "target mnist", corruption=None),
    ]
    (curve,) = severity_curves_from_report({"specs": [{"nodeid": "t", "scores": scores}]})
    assert (curve.task, curve.corruption, curve.accuracy, curve.clean_accuracy) == (
        "digits",
        "my-blur",
        {1: 0.8, 3: 0.6},
        0.9,
    )


def test_reports_written_before_the_fields_are_still_read() -> None:
    old = [
        {"backbone": "bb", "task": "digits ~ fog@2", "metric": "shifted_accuracy", "value": 0.7},
        {"backbone": "bb", "task": "digits ~ fog@4", "metric": "shifted_accuracy", "value": 0.5},
    ]
    (curve,) = severity_curves_from_report({"specs": [{"nodeid": "t", "scores": old}]})
    assert (curve.task, curve.corruption, curve.accuracy) == ("digits", "fog", {2: 0.7, 4: 0.5})
