"""The Markdown and HTML reports and calibration read the typed report model.

A report given as a :class:`RunReport` and as the JSON document it writes renders the same; the
HTML template escapes every text that comes from a spec; the template ships with the package.
"""

from __future__ import annotations

import html
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reusespec.atomic import AtomicWriteError
from reusespec.gate.calibration import summarise
from reusespec.reporting.document import SpecOutcome, build_report, write_json_atomic
from reusespec.reporting.model import RunReport
from reusespec.reporting.render import render_html, render_markdown, score_rows, write_text_atomic
from reusespec.results import ScoreRecord

HOSTILE = "<script>alert('x')</script> & \"q\""


def document(nodeid: str = "t.py::test_probe", message: str = "") -> dict[str, Any]:
    accuracy = ScoreRecord(
        "bb", "digits", "head-only", "accuracy", 0.93, 0.5, True, 0.9, ">=", True, 0.9, 0.95
    )
    logme = ScoreRecord("bb", "digits", "full", "logme", 123.4)
    doc = build_report(
        [
            SpecOutcome(nodeid, "passed", 0.5, "", [accuracy, logme]),
            SpecOutcome("t.py::test_broken", "failed", 0.1, message or "assert 1 == 2"),
        ],
        {"seed": 7, "torch": "2.14.1"},
    )
    (probe,) = [spec for spec in doc["specs"] if spec["nodeid"] == nodeid]
    probe["gate"] = {
        "status": "passed", "verdict": "pass", "threshold_verdict": "pass", "severity": "block",
        "verdicts": "interval", "seeds": [0, 1], "lines": [], "crashed": False,
        "own_failure_only": False, "receipt": {}, "roles": ["bb"], "confidence": 0.95,
        "baseline": "compared",
        "comparisons": [
            {"backbone": "bb", "task": "digits", "strategy": "head-only", "metric": "accuracy",
             "baseline": 0.95, "delta": -0.02, "verdict": "regressed"},
        ],
    }  # fmt: skip
    doc["receipt"] = {"seed": 7, "seeds": 2, "git_commit": "abc", "devices": ["cpu"]}
    return json.loads(json.dumps(doc))


def test_a_typed_report_and_its_document_render_the_same() -> None:
    doc = document()
    report = RunReport.from_json(doc)
    assert report.to_json() == doc
    assert render_markdown(report) == render_markdown(doc)
    assert render_html(report) == render_html(doc)


def test_score_rows_are_typed_and_carry_the_comparison_and_the_seed_count() -> None:
    first, second = score_rows(document())
    assert first.score.metric == "accuracy" and first.status == "passed" and first.seeds == 2
    assert first.comparison is not None and first.comparison["verdict"] == "regressed"
    assert first.verdict == "pass"  # its interval [0.9, 0.95] does not reach below >= 0.9
    assert second.score.metric == "logme" and second.comparison is None and second.verdict == "-"


def test_the_markdown_shows_the_reasons_and_the_receipt() -> None:
    markdown = render_markdown(document())
    assert "(2 seeds)" in markdown and "0.9500 (regressed)" in markdown and "-0.0200" in markdown
    assert "**t.py::test_broken** (failed)" in markdown and "  - assert 1 == 2" in markdown
    assert "- git commit: abc" in markdown and "- seed: 7; seeds per spec: 2" in markdown


def test_the_html_escapes_what_specs_write() -> None:
    page = render_html(document(nodeid=f"t.py::test_probe[{HOSTILE}]", message=HOSTILE))
    assert "<script>" not in page
    assert html.escape(HOSTILE) in page
    assert page.startswith("<!DOCTYPE html>\n") and page.endswith("</body></html>\n")
    assert page.count("<tr class='passed'>") == 2  # one row per score of the passed spec


@given(nodeid=st.text(min_size=1, max_size=30), message=st.text(max_size=30))
def test_any_text_reaches_the_html_escaped(nodeid: str, message: str) -> None:
    doc = document(message=message)
    (probe,) = [spec for spec in doc["specs"] if spec["nodeid"] == "t.py::test_probe"]
    probe["nodeid"], probe["scores"] = nodeid, []  # no chart: fast, and the text only appears in headings
    page = render_html(doc)
    assert f"<h3>✅ {html.escape(nodeid)} (passed)</h3>" in page
    if message:
        assert html.escape(message) in page


def test_the_template_ships_with_the_package() -> None:
    template = files("reusespec.reporting") / "templates" / "report.html.j2"
    assert template.is_file() and "{{ title }}" in template.read_text(encoding="utf-8")


def test_calibration_reads_typed_reports_as_it_reads_documents() -> None:
    docs = [document(), document()]
    docs[1]["receipt"]["seed"] = 8
    docs[1]["specs"][1]["scores"][0]["value"] = 0.91  # specs are sorted: test_broken, test_probe
    from_documents = summarise(docs, 0.05)
    assert summarise([RunReport.from_json(d) for d in docs], 0.05) == from_documents
    row = from_documents["specs"]["t.py::test_probe"]["scores"]["bb|digits|head-only|accuracy"]
    assert row["values"] == [0.93, 0.91] and row["seeds"] == [7, 8]
    assert from_documents["specs"]["t.py::test_broken"]["point_failures"] == 0  # outcome failed, no score


def test_report_writers_go_through_the_atomic_helper(tmp_path: Path) -> None:
    path = write_text_atomic(tmp_path / "deep" / "report.md", "# hi\n")
    assert path.read_text() == "# hi\n" and [p.name for p in path.parent.iterdir()] == ["report.md"]
    with pytest.raises(AtomicWriteError, match="cannot write"):
        write_text_atomic(tmp_path / "deep", "x")  # a directory is in the way
    assert [p.name for p in (tmp_path / "deep").iterdir()] == ["report.md"]  # no temporary file left
    json_path = write_json_atomic(tmp_path / "r.json", {"b": 1, "a": [1, 2]})
    assert json_path.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'  # sorted, indent 2
