"""The report (reusespec.reporting.document) and the scores it is built from (reusespec.results.Score)."""

from __future__ import annotations

import json
import operator
import os
import pickle
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reusespec.reporting.document import (
    COLUMNS,
    OUTCOMES,
    SCHEMA,
    SCHEMA_VERSION,
    SpecOutcome,
    build_report,
    format_table,
    table_rows,
    write_json_atomic,
)
from reusespec.results import Score, ScoreRecord

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
NUMERIC_COLUMNS = {"value", "margin", "secs"}
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


def _record(value: float = 0.9, metric: str = "accuracy", **kwargs: Any) -> ScoreRecord:
    return ScoreRecord("zoo:digits-cnn", "mnist5k:5-9", "head-only", metric, value, **kwargs)


def _metric(value: float = 0.9) -> tuple[Score, ScoreRecord]:
    record = _record(value)
    return Score(value, record), record


# -- Score: comparisons record threshold, operator and verdict --------------------------------


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("threshold", [0.8, 0.9, 0.95])
def test_each_comparison_records_threshold_operator_and_verdict(op: str, threshold: float) -> None:
    metric, record = _metric(0.9)
    outcome = OPS[op](0.9, threshold)
    assert OPS[op](metric, threshold) is outcome  # compared in an assert: recorded as a threshold
    assert (record.threshold, record.op, record.passed) == (threshold, op, outcome)


@pytest.mark.parametrize(
    ("compare", "recorded_op"),
    [
        (lambda m: m >= 0.5, ">="),
        (lambda m: m > 0.5, ">"),
        (lambda m: m <= 0.95, "<="),
        (lambda m: m < 0.95, "<"),
    ],
)
def test_a_threshold_on_the_left_is_recorded_from_the_metrics_side(
    compare: Callable[[Score], bool], recorded_op: str
) -> None:
    metric, record = _metric(0.9)
    assert compare(metric) is True
    assert record.op == recorded_op and record.passed is True
    assert record.threshold in (0.5, 0.95)


def test_margin_is_positive_on_the_passing_side_for_either_direction() -> None:
    metric, record = _metric(0.9)
    assert metric >= 0.8
    assert record.margin == pytest.approx(0.1)
    assert not metric <= 0.8
    assert record.margin == pytest.approx(-0.1) and record.passed is False
    assert metric <= 0.95
    assert record.margin == pytest.approx(0.05)


def test_the_last_comparison_is_the_one_reported() -> None:
    metric, record = _metric(0.9)
    assert metric >= 0.5
    assert not metric >= 0.95
    assert (record.threshold, record.passed) == (0.95, False)


def test_comparing_two_metrics_records_on_the_left_one_only() -> None:
    left, left_record = _metric(0.9)
    right, right_record = _metric(0.7)
    assert left >= right
    assert (left_record.threshold, left_record.op, left_record.passed) == (0.7, ">=", True)
    assert (right_record.threshold, right_record.op) == (None, None)


def test_integer_and_numpy_thresholds_are_recorded_as_floats() -> None:
    metric, record = _metric(0.9)
    assert metric < 1
    assert record.threshold == 1.0 and isinstance(record.threshold, float)
    assert metric >= np.float32(0.5)
    assert record.threshold == pytest.approx(0.5) and type(record.threshold) is float


def test_bool_and_str_comparisons_record_nothing() -> None:
    metric, record = _metric(0.9)
    assert (metric >= True) is (0.9 >= True)  # compares as a float would
    assert (metric < False) is (0.9 < False)
    with pytest.raises(TypeError):
        _ = metric >= "0.5"
    assert metric == 0.9 and metric != 0.5  # equality is no threshold either
    assert (record.threshold, record.op, record.passed) == (None, None, None)


def test_a_metric_is_a_float_in_arithmetic_hashing_and_formatting() -> None:
    metric, _ = _metric(0.25)
    assert metric * 2 == 0.5 and hash(metric) == hash(0.25) and f"{metric:.2f}" == "0.25"
    lookup: dict[float, str] = {metric: "x"}
    assert lookup[0.25] == "x"


def test_a_metric_without_a_record_still_compares() -> None:
    assert Score(0.3) < 0.5 and not Score(0.3) >= 0.5


def test_a_metric_pickles_as_a_plain_float() -> None:
    metric, _ = _metric(0.875)
    restored = pickle.loads(pickle.dumps({"accuracy": [metric]}))["accuracy"][0]
    assert type(restored) is float and restored == 0.875


@given(value=finite, threshold=finite, op=st.sampled_from(list(OPS)))
def test_passed_agrees_with_the_operator_and_the_sign_of_the_margin(
    value: float, threshold: float, op: str
) -> None:
    metric, record = _metric(value)
    assert OPS[op](metric, threshold) is OPS[op](value, threshold)
    assert record.passed is OPS[op](value, threshold)
    assert record.margin is not None
    if op in (">=", "<="):
        assert record.passed == (record.margin >= 0)
    else:  # strict: sitting on the threshold is a zero margin and a failure
        assert record.passed == (record.margin > 0)
    assert abs(record.margin) == pytest.approx(abs(value - threshold))


def test_score_records_round_trip_through_dicts_and_ignore_unknown_keys() -> None:
    record = _record(0.9, threshold=0.8, op=">=", passed=True, ci_low=0.85, ci_high=0.93, extra={"l2": 0.1})
    data = record.as_dict()
    assert data["margin"] == pytest.approx(0.1)
    assert ScoreRecord.from_dict({**json.loads(json.dumps(data)), "added_later": 1}) == record
    assert _record().as_dict()["margin"] is None


# -- report: number formatting, table, document, writing ------------------------------------------


@given(value=finite)
def test_numbers_in_the_table_read_back_within_their_shown_precision(value: float) -> None:
    # Against a threshold of 0 under ">=" the margin is the value itself, shown signed.
    (row,) = table_rows([SpecOutcome("t.py::t", "passed", scores=[_record(value, threshold=0.0, op=">=")])])
    cells = dict(zip(COLUMNS, row, strict=True))
    for text in (cells["value"], cells["margin"]):
        decimals = len(text.partition(".")[2])
        assert abs(float(text.replace(",", "")) - value) <= 0.5 * 10.0**-decimals + 1e-9
        if abs(value) < 100:
            assert decimals == 4  # scores keep four decimals
        if abs(value) >= 1e4:
            assert "," in text and decimals == 0  # large counts are grouped
    assert cells["margin"][0] in "+-" and cells["value"][0] != "+"


def _outcomes() -> list[SpecOutcome]:
    long_task = "folder:/data/" + "x" * 80
    return [
        SpecOutcome(
            "specs/test_b.py::test_shift",
            "failed",
            2.0,
            "assert ...",
            [
                _record(0.9, threshold=0.99, op=">=", passed=False, seconds=1.5, cache_hit=False),
                _record(0.85, metric="macro_f1", seconds=1.5, cache_hit=False),
            ],
        ),
        SpecOutcome(
            "specs/test_a.py::test_transfer",
            "passed",
            1.0,
            "",
            [_record(12345.0, metric="params", seconds=0.25, cache_hit=True)],
        ),
        SpecOutcome("specs/test_a.py::test_cost", "passed", 0.1, "", [_record(0.5, cache_hit=None)]),
        SpecOutcome("specs/test_c.py::test_skip", "skipped", 0.0, "weights not found", []),
        SpecOutcome(
            "specs/test_c.py::test_folder", "error", 0.0, "boom", [ScoreRecord("b", long_task, "s", "m", 0.1)]
        ),
    ]


def _spans(separator: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"-+", separator)]


def test_table_has_a_row_per_score_sorted_by_spec() -> None:
    outcomes = _outcomes()
    rows = table_rows(outcomes)
    assert len(rows) == sum(len(o.scores) for o in outcomes)
    in_nodeid_order = sorted(outcomes, key=lambda o: o.nodeid)
    assert [r[0] for r in rows] == [o.nodeid.split("::")[-1] for o in in_nodeid_order for _ in o.scores]
    assert all(len(r) == len(COLUMNS) for r in rows)
    by_metric = {(r[0], r[4]): dict(zip(COLUMNS, r, strict=True)) for r in rows}
    failed = by_metric["test_shift", "accuracy"]
    assert failed["threshold"] == ">= 0.9900" and failed["margin"].startswith("-")
    assert failed["outcome"] == "failed" and failed["cache"] == "miss"
    assert by_metric["test_shift", "macro_f1"]["threshold"] == "-"
    assert by_metric["test_transfer", "params"]["cache"] == "hit"
    assert by_metric["test_cost", "accuracy"]["cache"] == "-"


def test_table_columns_line_up_and_numbers_are_right_aligned() -> None:
    lines = format_table(_outcomes(), max_width=30)
    header, separator, *body = lines
    spans = _spans(separator)
    assert len(spans) == len(COLUMNS) and len(body) == 5
    for line in [header, *body]:
        for column, (start, end) in zip(COLUMNS, spans, strict=True):
            cell = line[start:end]
            assert line[end : end + 2].strip() == "", "columns are two spaces apart"
            if cell.strip() and column in NUMERIC_COLUMNS:
                assert not cell.endswith(" ")
            elif cell.strip():
                assert not cell.startswith(" ")
    # Each column is as wide as its widest cell (or its header).
    for column, (start, end) in zip(COLUMNS, spans, strict=True):
        widest = max(len(line[start:end].strip()) for line in [header, *body])
        assert end - start == widest, column


@pytest.mark.parametrize("max_width", [30, 12, 4, 3, 1])
def test_long_cells_are_clipped_keeping_their_end(max_width: int) -> None:
    lines = format_table(_outcomes(), max_width=max_width)
    spans = _spans(lines[1])
    task_start, task_end = spans[COLUMNS.index("task")]
    cell = lines[-1][task_start:task_end].strip()  # the last spec, test_folder, has the long task
    assert cell.startswith("...") and "x" * 80 not in cell
    assert len(cell) <= max(max_width, 4)  # the ellipsis and at least one character
    assert ("folder:/data/" + "x" * 80).endswith(cell[3:])


def test_no_scores_no_table() -> None:
    assert format_table([]) == []
    assert format_table([SpecOutcome("t.py::test_skip", "skipped", 0.0, "why", [])]) == []


def test_report_document_counts_outcomes_and_scores() -> None:
    outcomes = _outcomes()
    env = {"torch": "x", "seed": 3}
    document = build_report(outcomes, env)
    assert document["schema"] == SCHEMA and document["version"] == SCHEMA_VERSION
    assert document["environment"] == env
    summary = document["summary"]
    assert summary["specs"] == len(outcomes)
    assert summary["scores"] == sum(len(o.scores) for o in outcomes)
    for outcome in OUTCOMES:  # present even when zero
        assert summary[outcome] == sum(o.outcome == outcome for o in outcomes)
    assert sum(summary[o] for o in OUTCOMES) == len(outcomes)
    nodeids = [s["nodeid"] for s in document["specs"]]
    assert nodeids == sorted(o.nodeid for o in outcomes)
    skipped = next(s for s in document["specs"] if s["outcome"] == "skipped")
    assert skipped["message"] == "weights not found" and skipped["scores"] == []
    assert json.loads(json.dumps(document)) == document


def test_empty_run_reports_zero_everywhere() -> None:
    summary = build_report([], {})["summary"]
    assert summary == {"specs": 0, "scores": 0, **dict.fromkeys(OUTCOMES, 0)}


@pytest.fixture
def usual_umask() -> Iterator[int]:
    previous = os.umask(0o022)
    yield 0o022
    os.umask(previous)


def test_report_is_written_whole_and_readable_by_others(tmp_path: Path, usual_umask: int) -> None:
    path = tmp_path / "out" / "report.json"
    document = build_report(_outcomes(), {"seed": 0})
    assert write_json_atomic(path, document) == path
    assert json.loads(path.read_text()) == document
    assert path.stat().st_mode & 0o777 == 0o666 & ~usual_umask
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]


def test_a_failed_write_leaves_the_previous_report_and_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_json_atomic(path, {"version": 1})
    circular: dict[str, Any] = {}
    circular["self"] = circular
    with pytest.raises(ValueError, match=r"[Cc]ircular"):
        write_json_atomic(path, circular)
    assert json.loads(path.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_values_json_cannot_represent_are_written_as_text(tmp_path: Path) -> None:
    path = write_json_atomic(tmp_path / "r.json", {"path": tmp_path})
    assert json.loads(path.read_text()) == {"path": str(tmp_path)}
