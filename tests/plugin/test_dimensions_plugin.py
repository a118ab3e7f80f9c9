"""Profile and shift specs run as users run them (pytester): their scores and pictures in the report.

One run, checked for many things, because each probe costs seconds on a shared CPU. The tasks
are few-shot (``?shots=10``) so that the probes fit fast; test splits keep their full size.
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import mean
from typing import Any

import pytest
from PIL import Image

from reusespec.reporting.pictures import matrix_from_report

pytestmark = pytest.mark.usefixtures("one_thread")

BACKBONES = ["zoo:digits-cnn", "zoo:digits-cnn-random"]
TASKS = ["sklearn-digits?shots=10", "mnist5k:5-9?shots=10"]
SHIFT_TASK = "mnist5k:5-9?shots=10"
SPECS = f"""
BACKBONES = {BACKBONES!r}
TASKS = {TASKS!r}

def test_profile(reuse):
    matrix = reuse.profile(BACKBONES, TASKS)
    trained = matrix["zoo:digits-cnn"]
    assert trained.min_accuracy >= 0.3 and trained.mean_accuracy >= 0.4

def test_noise(reuse):
    s = reuse.shift("zoo:digits-cnn", {SHIFT_TASK!r}, corruption="gaussian_noise", severity=3)
    assert s.relative_drop <= 0.95

def test_suite(reuse):
    suite = reuse.shift_suite("zoo:digits-cnn", {SHIFT_TASK!r}, corruptions=("gaussian_noise", "contrast"),
                              severities=(1, 3))
    assert suite.mean_accuracy >= 0.05
"""


def _by_metric(scores: list[dict[str, Any]], **match: str) -> dict[str, dict[str, Any]]:
    return {s["metric"]: s for s in scores if all(s[k] == v for k, v in match.items())}


def test_profile_and_shift_specs_report_scores_and_pictures(
    pytester: pytest.Pytester, warm_cache: Path
) -> None:
    pytester.makepyfile(test_dimensions=SPECS)
    report = pytester.path / "out" / "run.json"

    result = pytester.runpytest("--reuse-cache-dir", str(warm_cache), "--reuse-report", str(report))

    result.assert_outcomes(passed=3)
    doc = json.loads(report.read_text())
    scores = {spec["nodeid"].split("::")[-1]: spec["scores"] for spec in doc["specs"]}

    # profile: each task's probe accuracy, and mean/min over them per backbone
    per_task_by_backbone = {}
    for backbone in BACKBONES:
        rows = {
            s["task"]: s["value"]
            for s in scores["test_profile"]
            if s["backbone"] == backbone and s["metric"] == "accuracy"
        }
        assert set(rows) == set(TASKS)
        aggregates = _by_metric(scores["test_profile"], backbone=backbone, strategy="profile")
        assert aggregates["mean_accuracy"]["value"] == pytest.approx(mean(rows.values()))
        assert aggregates["min_accuracy"]["value"] == pytest.approx(min(rows.values()))
        assert aggregates["mean_accuracy"]["extra"]["per_task"] == pytest.approx(rows)
        assert aggregates["min_accuracy"]["extra"]["worst_task"] == min(rows, key=rows.__getitem__)
        per_task_by_backbone[backbone] = rows
    trained = _by_metric(scores["test_profile"], backbone="zoo:digits-cnn", strategy="profile")
    assert (trained["min_accuracy"]["op"], trained["min_accuracy"]["threshold"]) == (">=", 0.3)
    assert trained["min_accuracy"]["passed"] is True
    matrix = matrix_from_report(doc)
    assert set(matrix) == set(BACKBONES)
    for backbone, rows in per_task_by_backbone.items():
        assert matrix[backbone] == pytest.approx(rows)

    # one corruption: clean and shifted accuracy, their absolute and relative drop
    shift = _by_metric(scores["test_noise"])
    assert {s["task"] for s in scores["test_noise"]} == {f"{SHIFT_TASK} ~ gaussian_noise@3"}
    clean, shifted = shift["clean_accuracy"]["value"], shift["shifted_accuracy"]["value"]
    assert 0 < shifted < clean  # noise at severity 3 costs the digits probe something
    assert shift["absolute_drop"]["value"] == pytest.approx(clean - shifted)
    assert shift["relative_drop"]["value"] == pytest.approx((clean - shifted) / clean)
    assert (shift["relative_drop"]["op"], shift["relative_drop"]["threshold"]) == ("<=", 0.95)

    # the suite: its table, and means that agree with it and with the single shift (same seed)
    suite = _by_metric(scores["test_suite"])
    table = suite["mean_corrupted_accuracy"]["extra"]["table"]
    assert {name: set(row) for name, row in table.items()} == {
        "gaussian_noise": {"1", "3"},
        "contrast": {"1", "3"},
    }
    cells = [a for row in table.values() for a in row.values()]
    assert suite["mean_corrupted_accuracy"]["value"] == pytest.approx(mean(cells))
    assert suite["mean_corrupted_accuracy"]["extra"]["clean_accuracy"] == pytest.approx(clean)
    assert suite["mean_relative_drop"]["value"] == pytest.approx((clean - mean(cells)) / clean)
    assert table["gaussian_noise"]["3"] == pytest.approx(shifted)
    assert table["gaussian_noise"]["1"] >= table["gaussian_noise"]["3"]  # milder noise hurts less

    # the summary table shows them, and the pictures lie next to the report
    result.stdout.fnmatch_lines(
        [
            "*reusespec scores*",
            "test_noise*relative_drop*",
            "test_profile*mean_accuracy*",
            "test_suite*mean_corrupted*",
        ]
    )
    pictures = sorted(report.parent.glob("*.png"))
    assert [p.name for p in pictures] == [
        "run-matrix.png",
        "run-shift-zoo_digits-cnn-mnist5k_5-9_shots_10.png",
    ]
    for picture in pictures:
        result.stdout.fnmatch_lines([f"reusespec picture written to *{picture.name}"])
        with Image.open(picture) as image:
            assert image.format == "PNG" and image.width >= 400 and image.height >= 250
