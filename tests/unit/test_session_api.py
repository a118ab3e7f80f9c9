"""The core facade without pytest's plugin: every call returns Metrics and records its scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reusespec import ReuseConfig, ReuseSession
from reusespec.errors import TaskError
from reusespec.outcomes import ProfileMatrix


@pytest.fixture
def reuse(warm_cache: Path):
    return ReuseSession(ReuseConfig(cache_dir=warm_cache, device="cpu")).reuse()


def test_every_result_records_its_scores_and_comparisons(reuse) -> None:
    result = reuse.probe("zoo:digits-cnn", "sklearn-digits")
    assert [r.metric for r in reuse.records] == ["accuracy", "macro_f1", "top5_accuracy"]
    assert result.accuracy >= 0.5
    record = reuse.records[0]
    assert (record.threshold, record.op, record.passed) == (0.5, ">=", True)
    assert record.ci_low is not None and record.ci_low <= record.value <= record.ci_high


def test_shift_under_corruption_is_deterministic_and_drops(reuse) -> None:
    first = reuse.shift("zoo:digits-cnn", "mnist5k:5-9", corruption="gaussian_noise", severity=5)
    again = reuse.shift("zoo:digits-cnn", "mnist5k:5-9", corruption="gaussian_noise", severity=5)
    mild = reuse.shift("zoo:digits-cnn", "mnist5k:5-9", corruption="gaussian_noise", severity=1)
    assert float(first.shifted_accuracy) == float(again.shifted_accuracy)
    assert float(first.clean_accuracy) == float(mild.clean_accuracy)
    assert first.shifted_accuracy < mild.shifted_accuracy <= mild.clean_accuracy + 0.02
    assert first.relative_drop == pytest.approx(
        (first.clean_accuracy - first.shifted_accuracy) / first.clean_accuracy
    )


def test_cross_dataset_shift_needs_the_same_label_space(reuse) -> None:
    with pytest.raises(TaskError, match="classes differ"):
        reuse.shift("zoo:digits-cnn", "mnist5k:5-9", target="sklearn-digits")
    result = reuse.shift("zoo:digits-cnn", "mnist5k", target="sklearn-digits")
    assert 0.0 <= result.shifted_accuracy <= 1.0


def test_shift_needs_exactly_one_kind_of_shift(reuse) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        reuse.shift("zoo:digits-cnn", "mnist5k")


def test_profile_aggregates_per_task_scores(reuse) -> None:
    tasks = ["sklearn-digits", "mnist5k:5-9"]
    profile = reuse.profile("zoo:digits-cnn", tasks)
    accuracies = [float(profile.accuracies[t]) for t in tasks]
    assert float(profile.mean_accuracy) == pytest.approx(np.mean(accuracies))
    assert float(profile.min_accuracy) == min(accuracies)
    assert profile.worst_task == tasks[int(np.argmin(accuracies))]
    matrix = reuse.profile(["zoo:digits-cnn", "zoo:digits-cnn-random"], tasks)
    assert isinstance(matrix, ProfileMatrix)
    assert set(matrix.matrix) == {"zoo:digits-cnn", "zoo:digits-cnn-random"}
    assert matrix.matrix["zoo:digits-cnn"] == {t: a for t, a in zip(tasks, accuracies, strict=True)}


def test_complexity_of_torchvision_needs_no_weights(reuse, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    import torchvision

    c = reuse.complexity("torchvision:mobilenet_v3_small", latency=False, memory=False)
    meta = torchvision.models.MobileNet_V3_Small_Weights.DEFAULT.meta
    assert int(c.params) == meta["num_params"]
    assert float(c.gmacs) == pytest.approx(meta["_ops"], abs=0.0006)
    assert c.records[0].extra["weights_loaded"] is False


def test_rank_orders_by_score_and_agreement_compares_with_probing(reuse) -> None:
    backbones = ["zoo:digits-cnn", "zoo:digits-cnn-random"]
    ranking = reuse.rank(backbones, "mnist5k:5-9", method="logme")
    assert ranking.order[0] == ranking.best
    assert float(ranking[ranking.best]) >= float(ranking[ranking.order[-1]])
    agreement = reuse.rank_agreement(backbones, "mnist5k:5-9", method="logme")
    accuracies = agreement.accuracies
    same_order = (accuracies[backbones[0]] > accuracies[backbones[1]]) == (ranking.best == backbones[0])
    assert float(agreement.spearman) == pytest.approx(1.0 if same_order else -1.0)


def test_source_head_scores_need_a_source_head(reuse) -> None:
    ranking = reuse.rank(["zoo:digits-cnn"], "sklearn-digits", method="leep")
    assert float(ranking["zoo:digits-cnn"]) <= 0.0  # LEEP is a mean log-likelihood


def test_finetune_through_the_facade_records_the_curve(reuse) -> None:
    out = reuse.finetune("zoo:digits-cnn", "sklearn-digits", strategy="partial", unfreeze=1, epochs=2)
    assert len(out.curve) == 2 and out.trainable_params < out.total_params
    record = out.records[0]
    assert record.strategy == "partial" and record.extra["epochs_run"] == 2
    assert record.extra["final_val_accuracy"] == out.curve[-1]["val_accuracy"]
