"""Scores over seeds: ``seeds=`` on facade calls, the aggregation, and calibration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reusespec.across_seeds import aggregate_records, interval_for
from reusespec.errors import ReuseSpecError
from reusespec.metric_ranges import clip_interval
from reusespec.results import ProbeResult, ScoreRecord
from reusespec.stats import seeds_ci

pytestmark = pytest.mark.usefixtures("one_thread")


def _constructed(accuracy_wrong: int, n: int = 200, offset: int = 0) -> ProbeResult:
    predictions = np.zeros(n, dtype=np.int64)
    predictions[(np.arange(accuracy_wrong) + offset) % n] = 1
    return ProbeResult(
        backbone="b",
        task="t",
        metrics={"accuracy": 1 - accuracy_wrong / n, "macro_f1": 0.5},
        seconds=0.1,
        cache_hit=True,
        l2=0.0,
        val_accuracy=0.0,
        sizes={"test": n},
        test_labels=np.zeros(n, dtype=np.int64),
        test_predictions=predictions,
    )


@given(st.lists(st.tuples(st.integers(5, 60), st.integers(0, 199)), min_size=2, max_size=5))
def test_an_aggregate_is_the_mean_with_an_interval_no_narrower_than_the_seeds_alone(
    runs: list[tuple[int, int]],
) -> None:
    results = [_constructed(wrong, offset=offset) for wrong, offset in runs]
    accuracy = aggregate_records([r.records for r in results], list(range(len(runs))))[0]
    values = [float(r.accuracy) for r in results]
    assert accuracy.value == pytest.approx(np.mean(values))
    assert accuracy.ci_low is not None and accuracy.ci_high is not None
    assert accuracy.ci_low <= accuracy.value <= accuracy.ci_high
    seeds_low, seeds_high = clip_interval("accuracy", seeds_ci(values).low, seeds_ci(values).high)
    assert accuracy.ci_high - accuracy.ci_low >= seeds_high - seeds_low - 1e-12  # both within [0, 1]
    assert accuracy.extra["seed_values"] == pytest.approx(values)


def test_seeds_must_make_the_same_scores() -> None:
    other = ScoreRecord("b", "other task", "head-only", "accuracy", 0.5)
    with pytest.raises(ReuseSpecError, match="same calls whatever the seed"):
        aggregate_records([_constructed(10).records, [other]], [0, 1])


def test_a_score_without_uncertainty_has_no_interval() -> None:
    assert interval_for([ScoreRecord("b", "input", "complexity", "params", 23_733.0)]) is None


def test_seeds_on_a_probe_call_average_the_seeds(warm_cache: Path) -> None:
    from reusespec.session import ReuseConfig, ReuseSession

    reuse = ReuseSession(ReuseConfig(cache_dir=warm_cache, device="cpu")).reuse()
    result: Any = reuse.probe("zoo:digits-cnn", "sklearn-digits", seeds=2, l2_grid=(1e-3,))
    per_seed = [float(r.accuracy) for r in result.per_seed]
    assert result.seeds == [0, 1]
    assert float(result.accuracy) == pytest.approx(np.mean(per_seed))
    assert result.accuracy >= 0.5  # the comparison lands on the aggregate the report shows
    (kept,) = [r for r in reuse.records if r.metric == "accuracy"]
    assert kept.threshold == 0.5 and kept.passed and kept.extra["seed_values"] == per_seed
    assert kept.ci_low is not None and kept.ci_low <= kept.value <= (kept.ci_high or 0)
    assert result.l2 == result.per_seed[0].l2  # everything else is the first seed's


def test_seeds_on_a_shift_call_average_each_seed_own_shift(warm_cache: Path) -> None:
    from reusespec.session import ReuseConfig, ReuseSession

    reuse = ReuseSession(ReuseConfig(cache_dir=warm_cache, device="cpu")).reuse()
    result: Any = reuse.shift(
        "zoo:digits-cnn", "sklearn-digits", corruption="gaussian_noise", severity=5, seeds=2
    )
    assert result.seeds == [0, 1]
    # each seed's result is the one shift(seed=s) gives (its own split, head and noise)
    one = [
        reuse.shift("zoo:digits-cnn", "sklearn-digits", corruption="gaussian_noise", severity=5, seed=s)
        for s in (0, 1)
    ]
    assert [float(r.shifted_accuracy) for r in result.per_seed] == [float(r.shifted_accuracy) for r in one]
    assert float(result.shifted_accuracy) == pytest.approx(np.mean([float(r.shifted_accuracy) for r in one]))
    kept = next(r for r in reuse.records if r.metric == "shifted_accuracy")  # the aggregate, kept first
    assert kept.extra["seed_values"] == [float(r.shifted_accuracy) for r in one]


SEEDED = """
import numpy as np
from reusespec.results import ProbeResult

PER_SEED = {0: 0.78, 1: 0.83, 2: 0.84}

def test_seeded(reuse):
    n, accuracy = 400, PER_SEED[reuse.session.config.seed]
    wrong = n - round(accuracy * n)
    predictions = np.zeros(n, dtype=np.int64)
    predictions[:wrong] = 1
    result = ProbeResult(
        backbone="constructed", task="toy", metrics={"accuracy": accuracy, "macro_f1": 0.5}, seconds=0.0,
        cache_hit=True, l2=0.0, val_accuracy=0.0, sizes={"test": n},
        test_labels=np.zeros(n, dtype=np.int64), test_predictions=predictions,
    )
    reuse.records.extend(result.records)
    assert result.accuracy >= 0.80
"""


def test_calibration_measures_spread_and_false_failures(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reusespec.cli import calibrate_main as main

    pytester.makepyfile(test_seeded=SEEDED)
    out = pytester.path / "calibration.json"
    monkeypatch.chdir(pytester.path)
    assert main(["--seeds", "3", "--rate", "0.25", "--out", str(out), "test_seeded.py"]) == 0
    (entry,) = json.loads(out.read_text())["specs"].values()
    (accuracy,) = [s for s in entry["scores"].values() if s["metric"] == "accuracy"]
    assert accuracy["values"] == pytest.approx([0.78, 0.83, 0.84])
    assert accuracy["std"] == pytest.approx(np.std([0.78, 0.83, 0.84], ddof=1))
    assert accuracy["threshold"] == pytest.approx(0.80) and accuracy["suggested_op"] == ">="
    assert accuracy["suggested_threshold"] == pytest.approx(0.78)  # rank floor(0.25 * 4) = 1: the lowest
    assert entry["point_failures"] == 1  # seed 0 fails a plain assert
    assert entry["interval_failures"] == 0  # its interval straddles 0.80: not a failure, inconclusive
    assert entry["inconclusive"] >= 1
