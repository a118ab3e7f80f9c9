"""Pictures from a report: which numbers they read, and the PNG files they write.

Reports are built here the way the plugin builds them (ScoreRecords of SpecOutcomes through
``build_report``), so the pictures are tested against the real document layout, including
after a JSON round trip (severity keys become strings).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from statistics import mean
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from reusespec.reporting.document import SpecOutcome, build_report
from reusespec.reporting.pictures import (
    DPI,
    SeverityCurve,
    heatmap_figsize,
    heatmap_png,
    matrix_from_report,
    severity_curves_from_report,
    severity_curves_png,
    write_pictures,
)
from reusespec.results import ScoreRecord

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _record(
    backbone: str, task: str, metric: str, value: float, strategy: str = "head-only", extra: Any = None
) -> ScoreRecord:
    return ScoreRecord(backbone, task, strategy, metric, value, extra=extra or {})


def _cells(matrix: dict[str, dict[str, float]]) -> dict[tuple[str, str], float]:
    """The matrix flattened, for pytest.approx (which compares flat mappings only)."""
    return {(b, t): v for b, row in matrix.items() for t, v in row.items()}


def _doc(*specs: list[ScoreRecord]) -> dict[str, Any]:
    """A report with one spec per list of records, JSON round-tripped like a saved report."""
    outcomes = [SpecOutcome(f"test_specs.py::test_{i}", "passed", scores=s) for i, s in enumerate(specs)]
    return json.loads(json.dumps(build_report(outcomes, {})))


def _profile(backbone: str, per_task: dict[str, float], with_rows: bool = True) -> list[ScoreRecord]:
    """The records a profile spec leaves: each task's probe accuracy, then the aggregates."""
    rows = [_record(backbone, t, "accuracy", v) for t, v in per_task.items()] if with_rows else []
    label = f"profile({len(per_task)} tasks)"
    extra = {"per_task": per_task, "worst_task": min(per_task, key=per_task.__getitem__)}
    return [
        *rows,
        _record(backbone, label, "mean_accuracy", mean(per_task.values()), "profile", extra=extra),
        _record(backbone, label, "min_accuracy", min(per_task.values()), "profile", extra=extra),
    ]


def _shift(
    backbone: str, task: str, corruption: str, severity: int, clean: float, shifted: float
) -> list[ScoreRecord]:
    label = f"{task} ~ {corruption}@{severity}"
    return [
        _record(backbone, label, "clean_accuracy", clean),
        _record(backbone, label, "shifted_accuracy", shifted),
        _record(backbone, label, "absolute_drop", clean - shifted),
        _record(backbone, label, "relative_drop", (clean - shifted) / clean),
    ]


def _suite(backbone: str, task: str, table: dict[str, dict[int, float]], clean: float) -> list[ScoreRecord]:
    corrupted = mean(a for row in table.values() for a in row.values())
    extra = {"table": table, "clean_accuracy": clean}
    label = f"{task} ~ suite"
    return [
        _record(backbone, label, "mean_corrupted_accuracy", corrupted, extra=extra),
        _record(backbone, label, "mean_relative_drop", (clean - corrupted) / clean, extra=extra),
    ]


names = st.text(alphabet="abcdefghij:-_0123456789", min_size=1, max_size=12)
accuracies = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
matrices = st.dictionaries(
    names, st.dictionaries(names, accuracies, min_size=1, max_size=4), min_size=1, max_size=4
)


@given(matrices)
def test_matrix_holds_every_probe_accuracy_and_nothing_else(cells: dict[str, dict[str, float]]) -> None:
    specs = [
        [_record(b, t, "accuracy", v), _record(b, t, "macro_f1", 1 - v)]
        for b, row in cells.items()
        for t, v in row.items()
    ]
    specs.append(_shift("other-backbone", "shifted-task", "contrast", 2, 0.9, 0.5))
    specs.append([_record("complexity-only", "input 1x8x8", "params", 1234.0, "complexity")])

    assert _cells(matrix_from_report(_doc(*specs))) == pytest.approx(_cells(cells))


@given(matrices)
def test_profiles_alone_give_the_same_matrix(cells: dict[str, dict[str, float]]) -> None:
    from_profiles = _doc(*[_profile(b, row, with_rows=False) for b, row in cells.items()])
    from_rows_and_profiles = _doc(*[_profile(b, row) for b, row in cells.items()])

    assert _cells(matrix_from_report(from_profiles)) == pytest.approx(_cells(cells))
    assert _cells(matrix_from_report(from_rows_and_profiles)) == pytest.approx(_cells(cells))


def test_a_cell_measured_by_several_specs_holds_their_mean() -> None:
    doc = _doc(
        _profile("zoo:a", {"t1": 0.8, "t2": 0.6}),  # per_task and rows agree: counted once
        [_record("zoo:a", "t1", "accuracy", 0.9)],
    )
    assert _cells(matrix_from_report(doc)) == pytest.approx(_cells({"zoo:a": {"t1": 0.85, "t2": 0.6}}))


def test_each_strategy_has_its_own_matrix() -> None:
    doc = _doc(
        [_record("zoo:a", "t1", "accuracy", 0.7)],
        [_record("zoo:a", "t1", "accuracy", 0.95, "full"), _record("zoo:a", "t2", "accuracy", 0.9, "full")],
        # a fine-tuning profile: its per_task are fine-tuning accuracies, not head-only ones
        [
            _record("zoo:b", "t1", "accuracy", 0.5, "partial"),
            *_profile("zoo:b", {"t1": 0.5}, with_rows=False),
        ],
    )
    # one value per cell: passed through unchanged
    assert matrix_from_report(doc) == {"zoo:a": {"t1": 0.7}}
    assert matrix_from_report(doc, "full") == {"zoo:a": {"t1": 0.95, "t2": 0.9}}
    assert matrix_from_report(doc, "partial") == {"zoo:b": {"t1": 0.5}}


def test_severity_curves_join_suites_and_single_shifts() -> None:
    doc = _doc(
        _suite(
            "zoo:a", "digits", {"gaussian_noise": {1: 0.9, 3: 0.7}, "contrast": {1: 0.8, 3: 0.2}}, clean=0.95
        ),
        _shift("zoo:a", "digits", "gaussian_noise", 3, clean=0.93, shifted=0.6),  # another seed, say
        _shift("zoo:a", "digits", "gaussian_noise", 5, clean=0.93, shifted=0.4),
        _shift("zoo:b", "digits", "pixelate", 2, clean=0.5, shifted=0.3),
        # a cross-dataset shift has no severity: not a curve
        [_record("zoo:a", "digits ~ target other", "shifted_accuracy", 0.1)],
    )
    curves = {(c.backbone, c.task, c.corruption): c for c in severity_curves_from_report(doc)}

    assert set(curves) == {
        ("zoo:a", "digits", "contrast"),
        ("zoo:a", "digits", "gaussian_noise"),
        ("zoo:b", "digits", "pixelate"),
    }
    noise = curves["zoo:a", "digits", "gaussian_noise"]
    assert noise.severities == [1, 3, 5]
    assert noise.accuracy == pytest.approx({1: 0.9, 3: 0.65, 5: 0.4})
    assert noise.clean_accuracy == pytest.approx((0.95 + 0.93 + 0.93) / 3)
    assert curves["zoo:a", "digits", "contrast"].accuracy == pytest.approx({1: 0.8, 3: 0.2})
    assert curves["zoo:b", "digits", "pixelate"].clean_accuracy == pytest.approx(0.5)


def _png(path: Path) -> Image.Image:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = Image.open(path)
    image.load()
    assert image.format == "PNG"
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 10  # something was drawn
    return image


def _matrix(backbones: int, tasks: int) -> dict[str, dict[str, float]]:
    return {f"backbone-{b}": {f"task-{t}": (b + t) % 10 / 10 for t in range(tasks)} for b in range(backbones)}


def test_heatmap_is_a_png_with_room_for_every_cell(tmp_path: Path) -> None:
    small = _png(heatmap_png(_matrix(2, 2), tmp_path / "small.png"))
    wide = _png(heatmap_png(_matrix(2, 12), tmp_path / "wide.png"))
    tall = _png(heatmap_png(_matrix(9, 2), tmp_path / "tall.png"))

    assert wide.width > small.width and wide.height == small.height
    assert tall.height > small.height
    assert wide.width >= 12 * 60 and tall.height >= 9 * 30  # cells big enough for "0.123"
    # saved at the planned size: nothing cropped away
    w, h = heatmap_figsize([f"backbone-{b}" for b in range(2)], [f"task-{t}" for t in range(12)])
    assert wide.size == (round(w * DPI), round(h * DPI))


def test_heatmap_draws_missing_cells_and_refuses_an_empty_matrix(tmp_path: Path) -> None:
    sparse = {"zoo:a": {"t1": 0.5}, "zoo:b": {"t2": 0.9}}
    _png(heatmap_png(sparse, tmp_path / "sparse.png", title="Sparse"))
    with pytest.raises(ValueError, match="empty"):
        heatmap_png({}, tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


def test_severity_curves_png(tmp_path: Path) -> None:
    curves = [
        SeverityCurve("zoo:a", "digits", name, {s: 0.9 - 0.1 * s * (k + 1) / 3 for s in range(1, 6)}, 0.95)
        for k, name in enumerate(("gaussian_noise", "contrast", "pixelate"))
    ]
    one = _png(severity_curves_png(curves, tmp_path / "one.png"))
    mixed = [*curves, SeverityCurve("zoo:b", "digits", "contrast", {1: 0.5, 2: 0.2})]
    _png(severity_curves_png(mixed, tmp_path / "mixed.png"))
    assert one.width >= 600 and one.height >= 400
    with pytest.raises(ValueError, match="at least one curve"):
        severity_curves_png([], tmp_path / "none.png")


def test_write_pictures_next_to_the_report(tmp_path: Path) -> None:
    doc = _doc(
        _profile("zoo:digits-cnn", {"mnist5k:5-9": 0.93, "sklearn-digits": 0.97}),
        _profile("zoo:digits-cnn-random", {"mnist5k:5-9": 0.9, "sklearn-digits": 0.98}),
        _suite("zoo:digits-cnn", "mnist5k:5-9", {"contrast": {1: 0.8, 3: 0.2}}, clean=0.93),
        [_record("zoo:a", "t1", "accuracy", 0.95, "full"), _record("zoo:a", "t2", "accuracy", 0.9, "full")],
    )
    report = tmp_path / "out" / "run.json"
    report.parent.mkdir()

    written = write_pictures(doc, report)

    assert [p.name for p in written] == [
        "run-matrix.png",
        "run-matrix-full.png",
        "run-shift-zoo_digits-cnn-mnist5k_5-9.png",
    ]
    assert sorted(report.parent.iterdir()) == sorted(written)  # no temporary files left
    for path in written:
        _png(path)


def test_names_that_slug_alike_get_separate_files(tmp_path: Path) -> None:
    doc = _doc(
        _suite("zoo:a", "t", {"contrast": {1: 0.8, 2: 0.7}}, clean=0.9),
        _suite("zoo_a", "t", {"contrast": {1: 0.6, 2: 0.5}}, clean=0.9),
    )
    written = write_pictures(doc, tmp_path / "r.json")
    assert len(written) == 2 and len({p.name for p in written}) == 2


@pytest.mark.parametrize(
    "specs",
    [
        [],
        [[_record("zoo:a", "t1", "accuracy", 0.9)]],  # one cell: the table says it all
        [_shift("zoo:a", "t1", "contrast", 3, 0.9, 0.5)],  # one severity: a point, not a curve
        [[_record("zoo:a", "input 1x8x8", "params", 10.0, "complexity")]],
    ],
    ids=["empty", "one-probe", "one-shift", "complexity"],
)
def test_no_pictures_without_data(tmp_path: Path, specs: list[list[ScoreRecord]]) -> None:
    notes: list[str] = []
    assert write_pictures(_doc(*specs), tmp_path / "r.json", note=notes.append) == []
    assert list(tmp_path.iterdir()) == [] and notes == []


def test_without_matplotlib_pictures_are_skipped_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an uninstalled package looks like
    doc = _doc(_profile("zoo:a", {"t1": 0.5, "t2": 0.6}))
    notes: list[str] = []

    assert write_pictures(doc, tmp_path / "r.json", note=notes.append) == []
    assert list(tmp_path.iterdir()) == []
    (line,) = notes
    assert "matplotlib" in line and "reusespec[plots]" in line


def test_importing_pictures_does_not_import_matplotlib() -> None:
    code = "import sys, reusespec.reporting.pictures; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
