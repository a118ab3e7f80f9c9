"""Text specs through the pytest plugin: probe, rank, shift, profile and the JSON report, unchanged."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="pip install 'reusespec[text]'")

from tiny_text_models import WORDS, write_tiny_bert

SPECS = """
    BERT = "hf:{bert}"
    TASK = "csv:{csv}?text=review&label=mood"

    def test_probe(reuse):
        assert reuse.probe(BERT, TASK).accuracy >= 0.9

    def test_rank_and_shift(reuse):
        ranking = reuse.rank([BERT, BERT + "?pool=cls"], TASK)
        assert set(ranking.scores_by_backbone) == {{BERT, BERT + "?pool=cls"}}
        shifted = reuse.shift(BERT, TASK, corruption="word_dropout", severity=5)
        assert shifted.shifted_accuracy <= shifted.clean.accuracy + 0.2

    def test_profile_and_finetune(reuse):
        profile = reuse.profile(BERT, [TASK, TASK + "&shots=4"])
        assert len(profile.results) == 2
        assert reuse.finetune(BERT, TASK, strategy="partial", unfreeze=1, epochs=1).accuracy >= 0.0

    def test_image_backbone_on_texts_fails_clearly(reuse):
        reuse.probe("zoo:digits-cnn", TASK)
"""


def write_reviews(path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "mood"])
        for i in range(40):
            good = i % 2 == 0
            words = ["good", "film", "very"] if good else ["bad", "news", "sport"]
            writer.writerow(
                [" ".join([*words, WORDS[i % 7], WORDS[(i * 3) % 11]]) + f" {i}", "up" if good else "down"]
            )
    return path


def test_text_specs_run_through_the_plugin(pytester: pytest.Pytester, warm_cache: Path) -> None:
    bert = write_tiny_bert(pytester.path / "tiny-bert")
    reviews = write_reviews(pytester.path / "reviews.csv")
    pytester.makepyfile(test_text_specs=textwrap.dedent(SPECS.format(bert=bert, csv=reviews)))
    report = pytester.path / "reuse.json"
    result = pytester.runpytest_inprocess(
        "--reuse-cache-dir", str(warm_cache), "--reuse-report", str(report), "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        ["*ModalityMismatchError*task 'csv:*' yields texts but backbone 'zoo:digits-cnn'*"]
    )
    specs = {s["nodeid"].split("::")[-1]: s for s in json.loads(report.read_text())["specs"]}
    probe_scores = {s["metric"]: s["value"] for s in specs["test_probe"]["scores"]}
    assert probe_scores["accuracy"] >= 0.9
    assert specs["test_rank_and_shift"]["scores"] and specs["test_profile_and_finetune"]["scores"]
