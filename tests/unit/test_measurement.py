"""Measured costs as measurements: the median's interval, noise, latency verdicts, machine fingerprints."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from torch import nn

from reusespec.complexity import measure_complexity
from reusespec.machine import MachineFingerprint, comparable, machine_fingerprint
from reusespec.measurement import Measurement, latency_verdict, median_interval, summarize, too_noisy
from reusespec.stats import StatsError, Verdict


def _measurement(samples: list[float], load: float = 0.1, cores: int = 2) -> Measurement:
    return summarize(samples, warmup=3, load_before=load, load_after=load, cores=cores)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.01, 1e3), min_size=1, max_size=60), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_the_median_interval_holds_the_median_and_reaches_its_coverage(
    samples: list[float], confidence: float
) -> None:
    low, high, coverage = median_interval(samples, confidence)
    ordered = sorted(samples)
    median = (ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) / 2
    assert low <= median <= high
    assert low in samples and high in samples
    n = len(samples)
    # The binomial coverage of ranks (l, n - l + 1), computed by scipy, is what the function says.
    rank = sorted(samples).index(low) + 1 if samples.count(low) == 1 else None
    if rank is not None:
        expected = 1.0 - 2.0 * scipy_stats.binom.cdf(rank - 1, n, 0.5)
        assert coverage == pytest.approx(expected)
    if n >= 9 and confidence <= 0.95:
        assert coverage >= confidence


def test_the_interval_of_twenty_runs_is_the_sixth_and_fifteenth() -> None:
    low, high, coverage = median_interval([float(v) for v in range(1, 21)])
    assert (low, high) == (6.0, 15.0) and coverage == pytest.approx(0.9586, abs=1e-4)


def test_the_median_interval_covers_the_true_median_about_as_often_as_it_says() -> None:
    rng = random.Random(0)
    covered = 0
    for _ in range(400):
        samples = [rng.lognormvariate(0.0, 0.5) for _ in range(20)]  # true median exp(0) = 1
        low, high, _ = median_interval(samples)
        covered += low <= 1.0 <= high
    assert covered / 400 >= 0.93


def test_non_finite_samples_are_refused() -> None:
    with pytest.raises(StatsError, match="finite"):
        median_interval([1.0, math.nan])


def test_a_busy_or_interrupted_machine_is_named_as_too_noisy() -> None:
    quiet = _measurement([1.0, 1.01, 0.99, 1.02, 1.0, 0.98, 1.01, 1.0], load=0.5)
    assert too_noisy(quiet) is None
    assert "load average" in str(too_noisy(_measurement([1.0] * 8, load=5.0)))
    assert "spread" in str(too_noisy(_measurement([0.2, 0.2, 0.2, 34.0, 35.0, 60.0, 0.2, 40.0])))


def test_a_slow_latency_on_a_busy_machine_is_inconclusive_but_a_fast_one_passes() -> None:
    busy_slow = _measurement([34.0, 35.0, 36.0, 34.5, 35.5, 34.8], load=4.0)
    outcome, line = latency_verdict(busy_slow, 1.0, "<=")
    assert outcome is Verdict.INCONCLUSIVE and "too noisy" in line and "load average" in line
    busy_fast = _measurement([0.2, 0.21, 0.2, 0.22, 0.2, 0.21], load=4.0)
    assert latency_verdict(busy_fast, 1.0, "<=")[0] is Verdict.PASS
    quiet_slow = _measurement([34.0, 35.0, 36.0, 34.5, 35.5, 34.8], load=0.2)
    assert latency_verdict(quiet_slow, 1.0, "<=")[0] is Verdict.FAIL
    straddling = _measurement([0.8, 0.9, 1.0, 1.1, 1.2, 1.05, 0.95], load=0.2)
    assert latency_verdict(straddling, 1.0, "<=")[0] is Verdict.INCONCLUSIVE


@settings(max_examples=40, deadline=None)
@given(
    samples=st.lists(st.floats(0.01, 100), min_size=3, max_size=30),
    threshold=st.floats(0.01, 100),
    load=st.floats(0, 8),
)
def test_noise_never_turns_a_verdict_into_a_fail(samples: list[float], threshold: float, load: float) -> None:
    noisy = _measurement(samples, load=load)
    quiet = _measurement(samples, load=0.0)
    outcome, _ = latency_verdict(noisy, threshold, "<=")
    quiet_outcome, _ = latency_verdict(quiet, threshold, "<=")
    if outcome is Verdict.FAIL:
        assert quiet_outcome is Verdict.FAIL
    if quiet_outcome is Verdict.PASS:
        assert outcome is Verdict.PASS  # a fast result stays a pass however busy the machine


def test_complexity_carries_its_latency_and_memory_measurements() -> None:
    result = measure_complexity(nn.Linear(16, 4), (16,), latency_repeats=9, warmup=2)
    assert result.latency is not None and result.memory is not None
    assert result.latency.repeats == 9 and result.latency.warmup == 2
    assert result.latency.low <= result.latency_ms == result.latency.median <= result.latency.high
    assert result.memory.unit == "MiB" and result.peak_memory_mb == result.memory.median
    assert result.latency.load_before >= 0 and result.latency.cores >= 1
    assert result.as_dict()["latency"]["median"] == result.latency_ms


def test_fingerprints_compare_field_by_field_with_the_reason() -> None:
    here = machine_fingerprint("cpu")
    assert MachineFingerprint.from_dict(here.as_dict()) == here
    assert comparable(here.as_dict(), here.as_dict()) == (True, "")
    other = {**here.as_dict(), "cpu": "Some Other CPU", "threads": here.threads + 1}
    ok, reason = comparable(here.as_dict(), other)
    assert not ok and "CPU model" in reason and "Some Other CPU" in reason and "torch threads" in reason
    ok, reason = comparable(None, here.as_dict())
    assert not ok and "baseline" in reason
