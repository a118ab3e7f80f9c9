"""Seed-spread tolerances: the allowance's calibration, its invariants, and where it applies."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reusespec.errors import BaselineError
from reusespec.gate.baseline import Baseline, Tolerance, stored_score
from reusespec.gate.decision import compare_with_baseline
from reusespec.gate.settings import SpecSettings
from reusespec.gate.spread import (
    SPREAD_ALPHA,
    SeedSpread,
    noise_allowance,
    spread_of,
    spreads_over_runs,
    widen,
)
from reusespec.results import ScoreRecord
from reusespec.stats import Verdict

values = st.lists(st.floats(-10, 10, allow_nan=False), min_size=2, max_size=30)


def test_a_healthy_candidate_fails_at_the_promised_rate_in_simulation() -> None:
    # Independent of the formula: draw a baseline, its spread seeds and a candidate from one
    # normal distribution (an equal-quality checkpoint) and count how often the candidate is
    # worse than the baseline by more than the allowance.
    rng = np.random.default_rng(0)
    trials, seeds = 400_000, 10
    draws = rng.normal(0.7, 0.03, size=(trials, seeds + 2))
    baseline, spread_values, candidate = draws[:, 0], draws[:, 1 : seeds + 1], draws[:, seeds + 1]
    per_unit_sd = noise_allowance(SeedSpread(1.0, seeds))  # the allowance is linear in sd (below)
    allowed = per_unit_sd * spread_values.std(axis=1, ddof=1)
    rate = float(np.mean(baseline - candidate > allowed))
    margin = 3 * math.sqrt(SPREAD_ALPHA / trials)  # three standard errors of the count
    assert SPREAD_ALPHA - margin <= rate <= SPREAD_ALPHA + margin  # calibrated, not merely safe


@settings(max_examples=60, deadline=None)
@given(values, st.floats(-5, 5), st.floats(0.01, 100), st.randoms(use_true_random=False))
def test_the_spread_depends_on_the_values_scale_only(
    seed_values: list[float], shift: float, scale: float, rnd: Any
) -> None:
    spread = SeedSpread.from_values(seed_values)
    assert spread is not None and spread.seeds == len(seed_values)
    shuffled = list(seed_values)
    rnd.shuffle(shuffled)
    moved = SeedSpread.from_values([shift + scale * v for v in shuffled])
    assert moved is not None
    assert moved.sd == pytest.approx(scale * spread.sd, rel=1e-6, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.floats(1e-4, 1.0), st.integers(2, 50), values, st.integers(1, 9))
def test_the_allowance_grows_with_the_spread_and_a_mean_has_less(
    sd: float, n: int, seed_values: list[float], k: int
) -> None:
    allowance = noise_allowance(SeedSpread(sd, n))
    assert allowance > 0
    assert noise_allowance(SeedSpread(2 * sd, n)) == pytest.approx(2 * allowance)
    assert noise_allowance(SeedSpread(sd, n + 1)) < allowance  # a better estimate of the spread
    single, mean = SeedSpread.from_values(seed_values), SeedSpread.from_values(seed_values, averaged=k * k)
    assert single is not None and mean is not None
    assert mean.sd == pytest.approx(single.sd / k)  # the sd of a mean of k*k draws


def test_fewer_than_two_values_have_no_spread() -> None:
    assert SeedSpread.from_values([0.9]) is None
    assert SeedSpread.from_values([0.9, math.nan]) is None
    assert spread_of({"value": 0.9}) is None
    assert spread_of({"spread": {"sd": 0.01, "seeds": 1}}) is None
    with pytest.raises(ValueError, match="2 seeds"):
        noise_allowance(SeedSpread(0.01, 1))


def test_widen_keeps_a_tolerance_the_spread_does_not_need_and_says_why_it_widens() -> None:
    one_point = Tolerance(abs=0.01)
    assert widen(one_point, 0.9, SeedSpread(0.0005, 11)) is one_point
    assert widen(one_point, 0.9, None) is one_point
    wide = widen(one_point, 0.9, SeedSpread(0.02, 11))
    assert wide.abs == pytest.approx(noise_allowance(SeedSpread(0.02, 11)))
    assert "abs 0.01 widened" in wide.describe() and "sd 0.02 over 11 seeds" in wide.describe()


def _score(value: float, **extra: Any) -> dict[str, Any]:
    return {
        "backbone": "zoo:a",
        "role": "zoo:a",
        "task": "t",
        "strategy": "head-only",
        "metric": "accuracy",
        "value": value,
        "op": ">=",
        "threshold": 0.5,
        **extra,
    }


@pytest.mark.parametrize(
    ("drop", "spread", "verdict"),
    [
        (0.03, None, Verdict.FAIL),  # one point is inside this score's noise
        (0.03, {"sd": 0.02, "seeds": 11}, Verdict.PASS),  # the spread allows it
        (0.30, {"sd": 0.02, "seeds": 11}, Verdict.FAIL),  # a real regression still fails
        (0.005, {"sd": 0.0001, "seeds": 11}, Verdict.PASS),  # a tiny spread keeps the default
        (0.02, {"sd": 0.0001, "seeds": 11}, Verdict.FAIL),
    ],
)
def test_the_baseline_spread_decides_what_a_drop_means(
    drop: float, spread: dict[str, Any] | None, verdict: Verdict
) -> None:
    base = {"receipt": {}, "scores": [_score(0.80, **({"spread": spread} if spread else {}))]}
    judged = compare_with_baseline(base, {}, [_score(0.80 - drop)], SpecSettings("block", "off", 1, 1), 0.95)
    assert judged.verdict is verdict
    if spread is not None and verdict is Verdict.FAIL and drop > 0.1:
        assert "widened" in judged.comparisons[0].message


def test_a_mean_over_seeds_keeps_its_spread_in_the_baseline() -> None:
    score = _score(0.8, extra={"seed_values": [0.78, 0.80, 0.82]})
    stored = stored_score(score, None)
    assert stored["spread"] == {"sd": pytest.approx(0.02 / math.sqrt(3)), "seeds": 3}
    # the candidate's mean of 3 seeds is allowed t * sd * sqrt(2 / 3), sd being one seed's spread
    judged = compare_with_baseline(
        {"receipt": {}, "scores": [stored]},
        {},
        [_score(0.75, extra={"seed_values": [0.74, 0.75, 0.76]})],
        SpecSettings("block", "off", 1, 1),
        0.95,
    )
    assert judged.comparisons[0].allowed == pytest.approx(noise_allowance(SeedSpread(0.02 / math.sqrt(3), 3)))


def _record(metric: str, value: float, backbone: str = "zoo:a") -> ScoreRecord:
    return ScoreRecord(backbone=backbone, task="t", strategy="head-only", metric=metric, value=value)


def test_spreads_match_scores_by_identity_and_order() -> None:
    judged = [_record("accuracy", 0.9), _record("accuracy", 0.5), _record("macro_f1", 0.8, "zoo:b")]
    reruns = [
        [_record("macro_f1", 0.7, "zoo:b"), _record("accuracy", 0.8), _record("accuracy", 0.5)],
        [_record("accuracy", 0.85)],  # a rerun that recorded less
    ]
    first, second, third = spreads_over_runs(judged, reruns)
    assert first == SeedSpread.from_values([0.8, 0.85])  # the reruns only: not the judged 0.9
    assert second is None  # one rerun recorded it: no spread
    assert third is None


def test_a_score_judged_over_seeds_takes_its_spread_from_the_reruns() -> None:
    mean = _record("accuracy", 0.85)
    mean.extra["seed_values"] = [0.9, 0.8]  # the gate's mean of two runs
    (spread,) = spreads_over_runs(
        [mean], [[_record("accuracy", 0.7)], [_record("accuracy", 0.75)]], averaged=2
    )
    assert spread == SeedSpread.from_values([0.7, 0.75], averaged=2)
    (own,) = spreads_over_runs([mean], [], averaged=2)  # no reruns: the mean's own seeds
    assert own == SeedSpread.from_values([0.9, 0.8], averaged=2)


@pytest.mark.parametrize("spread", [[], {"sd": "wide", "seeds": 3}, {"sd": -1.0, "seeds": 3}, {"sd": 0.1}])
def test_a_malformed_spread_in_a_baseline_is_refused(tmp_path: Any, spread: Any) -> None:
    path = tmp_path / "baseline.json"
    Baseline(receipt={}, specs={"t.py::test": {"scores": [_score(0.8, spread=spread)]}}).save(path)
    with pytest.raises(BaselineError, match="spread of score 0"):
        Baseline.load(path)
