"""Strict JSON (NaN and Inf as null plus a flag) and intervals clipped to their metric's range."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reusespec.metric_ranges import clip_interval, metric_range
from reusespec.strict_json import dumps_strict, strict

_number = st.floats(allow_nan=True, allow_infinity=True)
_json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | _number | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"bare {name} in the document")


def test_a_nan_score_becomes_null_with_the_field_named() -> None:
    score = {
        "metric": "accuracy",
        "value": float("nan"),
        "threshold": 0.9,
        "seed_values": [0.9, float("inf")],
    }
    document = json.loads(dumps_strict({"scores": [score]}), parse_constant=_reject_constant)
    (stored,) = document["scores"]
    assert stored["value"] is None and stored["threshold"] == 0.9
    assert stored["non_finite"] == {"value": "nan", "seed_values[1]": "inf"}
    assert stored["seed_values"] == [0.9, None]


def test_a_bare_non_finite_number_becomes_a_flagged_null() -> None:
    assert strict(float("-inf")) == {"value": None, "non_finite": "-inf"}
    assert strict([1.0, float("nan")]) == [1.0, {"value": None, "non_finite": "nan"}]


@settings(max_examples=60, deadline=None)
@given(_json_like)
def test_every_document_becomes_strict_json_and_finite_values_survive(document: Any) -> None:
    text = dumps_strict(document)  # allow_nan=False: raises on any non-finite number left
    loaded = json.loads(text, parse_constant=_reject_constant)
    if isinstance(document, float) and math.isfinite(document):
        assert loaded == document
    if isinstance(document, dict):
        for key, value in document.items():
            if isinstance(value, float) and not math.isfinite(value):
                assert loaded[str(key)] is None and str(key) in loaded["non_finite"]
            elif (isinstance(value, int | str | bool) or value is None) and key != "non_finite":
                assert loaded[str(key)] == value


def test_intervals_leave_no_range_of_their_metric() -> None:
    assert clip_interval("accuracy", 0.8595, 1.0735) == (0.8595, 1.0)
    assert clip_interval("latency_ms", -0.11, 0.56) == (0.0, 0.56)
    assert clip_interval("logme", -5.0, 5.0) == (-5.0, 5.0)  # unbounded scores stay as they are


@settings(max_examples=60, deadline=None)
@given(
    metric=st.sampled_from(["accuracy", "macro_f1", "latency_ms", "spearman", "relative_drop", "logme"]),
    low=st.floats(-10, 10),
    width=st.floats(0, 10),
)
def test_a_clipped_interval_is_ordered_inside_the_range_and_within_the_original(
    metric: str, low: float, width: float
) -> None:
    high = low + width
    lowest, highest = metric_range(metric)
    clipped_low, clipped_high = clip_interval(metric, low, high)
    assert lowest <= clipped_low <= clipped_high <= highest
    if lowest <= low and high <= highest:
        assert (clipped_low, clipped_high) == (low, high)
    else:
        assert clipped_high - clipped_low <= width + 1e-12


def test_nan_bounds_are_not_invented_into_numbers() -> None:
    low, high = clip_interval("accuracy", float("nan"), 1.2)
    assert math.isnan(low) and high == pytest.approx(1.0)


def test_seed_intervals_of_scores_stay_in_their_range() -> None:
    from reusespec.across_seeds import aggregate_records
    from reusespec.results import ScoreRecord

    def run(metric: str, values: list[float]) -> ScoreRecord:
        per_seed = [[ScoreRecord("zoo:a", "t", "head-only", metric, v)] for v in values]
        (aggregated,) = aggregate_records(per_seed, list(range(len(values))))
        return aggregated

    accuracy = run("accuracy", [0.93, 0.99, 1.0])  # Student t over 3 seeds reaches past 1
    assert accuracy.ci_high == 1.0 and accuracy.ci_low is not None and 0.0 <= accuracy.ci_low < accuracy.value
    latency = run("latency_ms", [0.05, 0.4, 0.2])
    assert latency.ci_low == 0.0 and latency.ci_high is not None and latency.ci_high > latency.value
