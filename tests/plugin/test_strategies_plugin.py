"""Fine-tuning, ranking and budget specs run as users run them: through pytest, under pytester."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _scores(report_path: Path) -> dict[str, list[dict]]:
    doc = json.loads(report_path.read_text())
    return {spec["nodeid"].split("::")[-1]: spec["scores"] for spec in doc["specs"]}


def test_ranking_agreement_spec_on_the_demo_zoo(pytester: pytest.Pytester, warm_cache: Path) -> None:
    pytester.makepyfile(
        test_rank="""
        def test_logme_prefers_pretrained(reuse):
            pair = ["zoo:digits-cnn", "zoo:digits-cnn-random"]
            ranking = reuse.rank(pair, "sklearn-digits", method="hscore")
            assert ranking.best in ("zoo:digits-cnn", "zoo:digits-cnn-random")

        def test_scores_agree_with_probing(reuse):
            agreement = reuse.rank_agreement(["zoo:digits-cnn", "zoo:digits-cnn-random"], "sklearn-digits",
                                             method="logme")
            assert agreement.weighted_kendall_tau >= -1.0
        """
    )
    report = pytester.path / "report.json"
    result = pytester.runpytest("--reuse-cache-dir", str(warm_cache), "--reuse-report", str(report))
    result.assert_outcomes(passed=2)
    scores = _scores(report)
    ranked = {s["backbone"]: s["value"] for s in scores["test_logme_prefers_pretrained"]}
    assert set(ranked) == {"zoo:digits-cnn", "zoo:digits-cnn-random"}
    agreement = {s["metric"]: s for s in scores["test_scores_agree_with_probing"]}
    tau = agreement["weighted_kendall_tau"]
    assert tau["threshold"] == -1.0 and tau["op"] == ">="
    assert set(tau["extra"]["accuracies"]) == {"zoo:digits-cnn", "zoo:digits-cnn-random"}
    assert tau["extra"]["scoring_seconds"] >= 0 and tau["extra"]["probing_seconds"] > 0
    result.stdout.fnmatch_lines(["*reusespec scores*", "*weighted_kendall_tau*"])


def test_divergence_fails_its_spec_clearly_and_spares_the_others(
    pytester: pytest.Pytester, warm_cache: Path
) -> None:
    pytester.makepyfile(
        test_ft="""
        def test_diverges(reuse):
            reuse.finetune("zoo:digits-cnn", "sklearn-digits", strategy="full", epochs=2,
                           lr_head=1e6, lr_backbone=1e6)

        def test_partial_still_runs(reuse):
            r = reuse.finetune("zoo:digits-cnn", "sklearn-digits", strategy="partial", unfreeze=1, epochs=1)
            assert r.accuracy >= 0.5
        """
    )
    report = pytester.path / "report.json"
    result = pytester.runpytest("--reuse-cache-dir", str(warm_cache), "--reuse-report", str(report))
    result.assert_outcomes(passed=1, failed=1)
    message = next(line for line in result.outlines if "TrainingDivergedError:" in line)
    assert "step" in message and "lr_head" in message
    scores = _scores(report)
    partial = {s["metric"]: s for s in scores["test_partial_still_runs"]}
    assert partial["accuracy"]["strategy"] == "partial"
    assert partial["accuracy"]["extra"]["trainable_params"] > 0


def test_budget_spec_reports_counts(pytester: pytest.Pytester, warm_cache: Path) -> None:
    pytester.makepyfile(
        test_budget="""
        def test_budget(reuse):
            c = reuse.complexity("zoo:digits-cnn", latency=False, memory=False)
            assert c.params <= 10
        """
    )
    report = pytester.path / "report.json"
    result = pytester.runpytest("--reuse-cache-dir", str(warm_cache), "--reuse-report", str(report))
    result.assert_outcomes(failed=1)
    params = {s["metric"]: s for s in _scores(report)["test_budget"]}["params"]
    assert params["threshold"] == 10 and params["passed"] is False and params["margin"] < 0
