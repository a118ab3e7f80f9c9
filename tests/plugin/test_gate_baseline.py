"""Baselines end to end: save, compare unchanged, a degraded backbone, incompatible baselines.

Real probes of the demo zoo on scikit-learn digits (one L2 strength, so each probe is quick);
the degraded checkpoint is digits-cnn with 56 of the 64 filters of its last conv zeroed, a
``file:`` safetensors written next to the test.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reusespec.gate.baseline import (
    Tolerance,
    check_run_compatible,
    check_spec_compatible,
    compare_score,
    decode_array,
    encode_array,
    labels_digest,
    parse_tolerance,
)
from reusespec.stats import Verdict

pytestmark = pytest.mark.usefixtures("one_thread")

SPECS = """
import pytest

BACKBONE = "zoo:digits-cnn"

def test_transfers(reuse):
    assert reuse.probe(BACKBONE, "sklearn-digits", l2_grid=(1e-3,)).accuracy >= 0.80

@pytest.mark.reuse_tolerance(abs=0.5)  # every score of this spec
def test_lenient(reuse):
    assert reuse.probe(BACKBONE, "sklearn-digits", l2_grid=(1e-3,)).accuracy >= 0.50

def test_budget(reuse):
    c = reuse.complexity(BACKBONE, latency=False, memory=False)
    assert c.params <= 50_000
"""


def _degraded_checkpoint(cache: Path, target: Path) -> Path:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from reusespec.backbones.zoo import checkpoint_path

    source = checkpoint_path("digits-cnn", cache)
    with safe_open(str(source), framework="pt") as f:
        metadata = f.metadata()
    state = load_file(str(source))
    weight = state["features.2.0.weight"].clone()
    weight[8:] = 0.0  # an over-pruned release candidate: 8 of 64 filters left
    state["features.2.0.weight"] = weight
    save_file(state, str(target), metadata=metadata)
    return target


def _specs_by_name(path: Path) -> dict[str, dict[str, Any]]:
    return {s["nodeid"].split("::")[-1]: s for s in json.loads(path.read_text())["specs"]}


def test_baseline_round_trip_and_ci_reports(pytester: pytest.Pytester, warm_cache: Path) -> None:
    pytester.makepyfile(test_specs=SPECS)
    common = ("-p", "no:cacheprovider", f"--reuse-cache-dir={warm_cache}")
    baseline, junit = pytester.path / "baseline.json", pytester.path / "junit.xml"
    markdown, page, report = (
        pytester.path / "summary.md",
        pytester.path / "report.html",
        pytester.path / "r.json",
    )

    saved = pytester.runpytest(
        *common,
        "--reuse-save-baseline", str(baseline),
        "--junitxml", str(junit),
        "--reuse-markdown", str(markdown),
        "--reuse-html", str(page),
        "--reuse-report", str(report),
    )  # fmt: skip
    saved.assert_outcomes(passed=3)
    specs = _specs_by_name(report)
    stored = json.loads(baseline.read_text())
    assert len(stored["specs"]) == 3
    transfers = next(v for k, v in stored["specs"].items() if k.endswith("test_specs.py::test_transfers"))
    accuracy = next(s for s in transfers["scores"] if s["metric"] == "accuracy")
    assert decode_array(accuracy["predictions"]).shape == (
        specs["test_transfers"]["scores"][0]["extra"]["n_test"],
    )

    # every score of every spec is in the JUnit XML, the Markdown and the HTML
    cases = {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}
    md, html = markdown.read_text(), page.read_text()
    for name, spec in specs.items():
        properties = {p.get("name"): str(p.get("value")) for p in cases[name].iter("property")}
        assert name in md and name in html
        for score in spec["scores"]:
            key = f"reusespec:{score['backbone']}|{score['task']}|{score['strategy']}|{score['metric']}"
            assert float(properties[key]) == pytest.approx(score["value"])
            shown = f"{score['value']:,.0f}" if score["value"] >= 1e4 else f"{score['value']:.4f}"
            assert shown in md and shown in html, (name, score["metric"], shown)
    assert "<svg" in html and "<link" not in html  # charts inline, styles inline
    assert re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html) is None  # nothing fetched
    assert "Reproducibility receipt" in md
    from reusespec.cli import main as reusespec_command

    again = pytester.path / "again.md"
    assert (
        reusespec_command(["render", str(report), "--markdown", str(again)]) == 0
    )  # the same summary, from the JSON report
    assert again.read_text() == md

    unchanged = pytester.runpytest(*common, "--reuse-baseline", str(baseline), "--reuse-report", str(report))
    unchanged.assert_outcomes(passed=3)
    comparisons = _specs_by_name(report)["test_transfers"]["gate"]["comparisons"]
    paired = next(c for c in comparisons if c["metric"] == "accuracy")
    assert paired["delta"] == 0.0 and paired["verdict"] == "pass" and "McNemar" in paired["test"]

    degraded = _degraded_checkpoint(warm_cache, pytester.path / "candidate.safetensors")
    swapped = pytester.runpytest(
        *common,
        "--reuse-baseline", str(baseline),
        "--reuse-swap-backbone", f"zoo:digits-cnn=file:{degraded}",
        "--reuse-report", str(report),
    )  # fmt: skip
    swapped.assert_outcomes(passed=2, failed=1)  # the lenient tolerance and the unchanged budget pass
    by_name = _specs_by_name(report)
    regression = next(
        c for c in by_name["test_transfers"]["gate"]["comparisons"] if c["metric"] == "accuracy"
    )
    assert regression["verdict"] == "fail" and regression["delta"] < -0.05
    assert regression["p_value"] < 0.001  # McNemar: far beyond test-set noise
    swapped.stdout.fnmatch_lines(
        [
            "*REGRESSED: accuracy of file:*candidate.safetensors on sklearn-digits (head-only): baseline 0.9*"
            "current 0.8*, delta -0.1*, allowed -0.0100 (abs 0.01; higher is better); test: paired on 359 "
            "identical test examples: McNemar*",
        ]
    )
    assert by_name["test_transfers"]["scores"][0]["backbone"] == f"file:{degraded}"
    lenient = by_name["test_lenient"]["gate"]["comparisons"]
    assert {c["tolerance"] for c in lenient} == {"abs 0.5"} and {c["verdict"] for c in lenient} == {"pass"}


def test_incompatible_baselines_are_refused(pytester: pytest.Pytester, warm_cache: Path) -> None:
    pytester.makepyfile(test_specs=SPECS)
    common = ("-p", "no:cacheprovider", f"--reuse-cache-dir={warm_cache}", "-k", "transfers")
    baseline = pytester.path / "baseline.json"
    pytester.runpytest(*common, "--reuse-save-baseline", str(baseline)).assert_outcomes(passed=1)

    other_seed = pytester.runpytest(*common, "--reuse-baseline", str(baseline), "--reuse-seed", "1")
    assert other_seed.ret == pytest.ExitCode.USAGE_ERROR
    other_seed.stderr.fnmatch_lines(
        ["*refusing to compare with the baseline*--reuse-seed 0, this run with 1*"]
    )

    stored = json.loads(baseline.read_text())
    (transfers,) = stored["specs"].values()
    for task in transfers["receipt"]["tasks"].values():
        task["fingerprint"] = "0" * 32  # as if the data or the split had changed since
    baseline.write_text(json.dumps(stored))
    other_split = pytester.runpytest(*common, "--reuse-baseline", str(baseline))
    other_split.assert_outcomes(failed=1)
    other_split.stdout.fnmatch_lines(["*baseline refused: task 'sklearn-digits' (seed 0) has a different*"])

    stored["receipt"]["libraries"]["torch"] = "1.0.0"
    baseline.write_text(json.dumps(stored))
    other_torch = pytester.runpytest(*common, "--reuse-baseline", str(baseline))
    assert other_torch.ret == pytest.ExitCode.USAGE_ERROR
    other_torch.stderr.fnmatch_lines(["*torch 1.0.0 made the baseline, this run has*"])


# -- the pieces, without pytest runs -----------------------------------------------------------


@given(st.lists(st.integers(0, 70_000), min_size=0, max_size=300))
def test_predictions_round_trip_compactly(values: list[int]) -> None:
    array = np.asarray(values, dtype=np.int64)
    assert np.array_equal(decode_array(encode_array(array)), array)


def test_tolerance_forms() -> None:
    assert parse_tolerance(0.02) == Tolerance(abs=0.02)
    assert parse_tolerance("5%") == Tolerance(rel=0.05)
    assert parse_tolerance({"abs": 0.01, "rel": 0.1}).allowed(0.5) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="percentage"):
        parse_tolerance("a lot")


def _score(
    value: float, predictions: np.ndarray | None = None, labels: np.ndarray | None = None
) -> dict[str, Any]:
    score: dict[str, Any] = {"backbone": "b", "task": "t", "strategy": "head-only", "metric": "accuracy"}
    score.update(value=value, op=">=")
    if predictions is not None and labels is not None:
        score["predictions"], score["labels_digest"] = encode_array(predictions), labels_digest(labels)
    return score


def test_paired_interval_verdicts_tell_noise_from_regression() -> None:
    rng = np.random.default_rng(0)
    labels = np.zeros(2000, dtype=np.int64)
    base = (rng.random(2000) > 0.85).astype(np.int64)  # 85% right
    same_quality = base.copy()
    same_quality[np.flatnonzero(base == 0)[:30]] = 1  # 30 new errors ...
    same_quality[np.flatnonzero(base == 1)[:30]] = 0  # ... and 30 fixes: the same accuracy
    worse = base.copy()
    worse[np.flatnonzero(base == 0)[:200]] = 1  # 200 more errors: 10 points worse
    old = _score(float((base == 0).mean()), base, labels)

    def judge(predictions: np.ndarray, tolerance: float) -> Verdict:
        new = _score(float((predictions == 0).mean()))
        return compare_score(
            old, new, Tolerance(abs=tolerance), current_examples=(labels, predictions), interval_verdicts=True
        ).verdict

    assert judge(worse, 0.01) is Verdict.FAIL
    assert judge(base, 0.01) is Verdict.PASS
    assert judge(same_quality, 0.005) is Verdict.INCONCLUSIVE  # 60 changes: cannot tell at 0.5 points
    assert judge(same_quality, 0.05) is Verdict.PASS


def test_compatibility_rules() -> None:
    receipt = {"libraries": {"torch": "2.14.1+cpu", "numpy": "2.4.6"}, "seed": 0, "seeds": 1}
    assert (
        check_run_compatible(receipt, {**receipt, "libraries": {"torch": "2.14.3", "numpy": "2.4.0"}}) == []
    )
    assert check_run_compatible(receipt, {**receipt, "seeds": 3}) == [
        "the baseline ran with --reuse-seeds 1, this run with 3"
    ]
    spec = {
        "tasks": {"t@0": {"task": "t", "seed": 0, "fingerprint": "a", "test": "x"}},
        "backbones": {"b": {"transform": "k", "input": "1x28x28"}},
    }
    new_backbone = {**spec, "backbones": {"b": {"transform": "k", "fingerprint": "other weights"}}}
    assert check_spec_compatible(spec, new_backbone) == []  # a new checkpoint is what a gate compares
    other_transform = {**spec, "backbones": {"b": {"transform": "other", "input": "3x224x224"}}}
    assert "preprocesses its input differently" in check_spec_compatible(spec, other_transform)[0]
    other_test = {"tasks": {"t@0": {"task": "t", "seed": 0, "fingerprint": "b", "test": "y"}}}
    assert "different test split" in check_spec_compatible(spec, other_test)[0]
