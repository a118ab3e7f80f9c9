"""The gate engine (reusespec.gate) on its own: verdict rules, the seed loop, statuses, baselines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reusespec.errors import GateSettingsError, ReuseSpecError
from reusespec.gate.decision import compare_with_baseline, judge_over_seeds
from reusespec.gate.rules import SeedRun, Severity, Status, status_for, threshold_verdict, worst
from reusespec.gate.sequential import decide_with_seeds, plan_seeds, run_sequential
from reusespec.gate.settings import GateSettings, SpecSettings, parse_swaps
from reusespec.results import ScoreRecord
from reusespec.stats import Verdict

FEW = settings(max_examples=40, deadline=None)
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def compared(value: float, low: float, high: float, threshold: float) -> ScoreRecord:
    """A score with a recorded interval, compared as in ``assert score >= threshold``."""
    return ScoreRecord(
        "bb", "task", "head-only", "accuracy", value, ci_low=low, ci_high=high,
        threshold=threshold, op=">=", passed=value >= threshold,
    )  # fmt: skip


@FEW
@given(data=st.data(), threshold=unit)
def test_an_interval_wholly_above_its_threshold_is_never_fail(data: st.DataObject, threshold: float) -> None:
    low = data.draw(st.floats(min_value=threshold, max_value=1.0))
    value = data.draw(st.floats(min_value=low, max_value=1.0))
    high = data.draw(st.floats(min_value=value, max_value=1.0))
    record = compared(value, low, high, threshold)
    outcome, lines = threshold_verdict([SeedRun(0, [record])], [record], "interval", 0.95)
    assert outcome is Verdict.PASS and "PASS" in lines[0]


@FEW
@given(data=st.data(), threshold=st.floats(min_value=0.01, max_value=1.0))
def test_an_interval_wholly_below_a_failed_threshold_is_fail(data: st.DataObject, threshold: float) -> None:
    high = data.draw(st.floats(min_value=0.0, max_value=threshold, exclude_max=True))
    value = data.draw(st.floats(min_value=0.0, max_value=high))
    low = data.draw(st.floats(min_value=0.0, max_value=value))
    record = compared(value, low, high, threshold)
    run = SeedRun(0, [record], AssertionError("assert accuracy >= threshold"))
    outcome, _ = threshold_verdict([run], [record], "interval", 0.95)
    assert outcome is Verdict.FAIL


def test_a_straddling_interval_is_inconclusive_whichever_side_the_value_is() -> None:
    above = compared(0.81, 0.77, 0.85, 0.80)
    below = compared(0.79, 0.75, 0.83, 0.80)
    assert threshold_verdict([SeedRun(0, [above])], [above], "interval", 0.95)[0] is Verdict.INCONCLUSIVE
    failed = SeedRun(0, [below], AssertionError())
    assert threshold_verdict([failed], [below], "interval", 0.95)[0] is Verdict.INCONCLUSIVE


def test_without_interval_verdicts_the_assert_decides() -> None:
    record = compared(0.81, 0.77, 0.85, 0.80)
    assert threshold_verdict([SeedRun(0, [record])], [record], "off", 0.95) == (Verdict.PASS, [])
    failed = SeedRun(0, [record], AssertionError())
    assert threshold_verdict([failed], [record], "off", 0.95) == (Verdict.FAIL, [])


@FEW
@given(st.lists(st.sampled_from(list(Verdict))))
def test_worst_is_fail_over_inconclusive_over_pass(verdicts: list[Verdict]) -> None:
    expected = next((v for v in (Verdict.FAIL, Verdict.INCONCLUSIVE) if v in verdicts), Verdict.PASS)
    assert worst(verdicts) is expected


@pytest.mark.parametrize(
    ("outcome", "severity", "status"),
    [
        (Verdict.PASS, "track", Status.PASSED),
        (Verdict.FAIL, "block", Status.FAILED),
        (Verdict.INCONCLUSIVE, "block", Status.INCONCLUSIVE),
        (Verdict.FAIL, "warn", Status.WARNED),
        (Verdict.INCONCLUSIVE, "warn", Status.WARNED),
        (Verdict.FAIL, Severity.TRACK, Status.TRACKED),
    ],
)
def test_severity_decides_the_status_of_a_spec_that_did_not_pass(
    outcome: Verdict, severity: str, status: Status
) -> None:
    assert status_for(outcome, severity) is status


def test_the_sequential_loop_stops_at_the_first_conclusive_look_and_at_the_budget() -> None:
    plan = plan_seeds(2, 5, 0.95)
    assert plan.looks == 4 and plan.per_look_confidence == pytest.approx(1 - 0.05 / 4)
    runs: list[int] = []
    verdicts = iter([Verdict.INCONCLUSIVE, Verdict.PASS])
    assert run_sequential(plan, runs, lambda i: i, lambda r: (next(verdicts), len(r))) == (Verdict.PASS, 3)
    assert runs == [0, 1, 2]
    runs = []
    outcome, _ = run_sequential(plan, runs, lambda i: i, lambda r: (Verdict.INCONCLUSIVE, None))
    assert outcome is Verdict.INCONCLUSIVE and runs == [0, 1, 2, 3, 4]


def test_decide_with_seeds_and_the_spec_replay_share_one_loop() -> None:
    values = [0.80, 0.95, 0.70, 0.90, 0.85, 0.88]
    decision = decide_with_seeds(lambda s: values[s], 0.5, ">=", initial_seeds=2, max_seeds=6)

    def run(seed: int) -> SeedRun:
        record = ScoreRecord("bb", "task", "head-only", "accuracy", values[seed], threshold=0.5, op=">=")
        record.passed = True
        return SeedRun(seed, [record])

    spec = SpecSettings("block", "interval", seeds=1, max_seeds=6)
    judgement = judge_over_seeds(run(0), run, spec, 0.95)
    assert judgement.seeds == list(decision.seeds)
    assert judgement.verdict is decision.verdict
    assert judgement.confidence == pytest.approx(decision.per_look_confidence)
    assert judgement.records[0].value == pytest.approx(sum(decision.values) / decision.n_seeds)


def test_a_spec_that_crashed_is_not_replayed() -> None:
    replayed: list[int] = []

    def replay(seed: int) -> SeedRun:
        replayed.append(seed)
        return SeedRun(seed, [])

    first = SeedRun(0, [], RuntimeError("no such file"))
    judgement = judge_over_seeds(first, replay, SpecSettings("block", "interval", 3, 3), 0.95)
    assert judgement.crashed and judgement.verdict is Verdict.FAIL and replayed == []


def score(value: float) -> dict[str, object]:
    """An accuracy the spec asserted (``>= 0.5``): the scores a baseline gates by default."""
    return {
        "backbone": "bb", "task": "t", "strategy": "head-only", "metric": "accuracy", "value": value,
        "threshold": 0.5, "op": ">=",
    }  # fmt: skip


def test_a_baseline_compares_like_with_like() -> None:
    spec = SpecSettings("block", "off", 1, 1)
    assert compare_with_baseline(None, {}, [score(0.9)], spec, 0.95).state == "no baseline for this spec"
    base = {"receipt": {}, "scores": [score(0.90)]}
    worse = compare_with_baseline(base, {}, [score(0.80)], spec, 0.95)
    assert worse.verdict is Verdict.FAIL and worse.state == "compared" and "REGRESSED" in worse.lines[0]
    same = compare_with_baseline(base, {}, [score(0.895)], spec, 0.95)  # within the 0.01 default
    assert same.verdict is Verdict.PASS and same.lines == []
    task = {"task": "t", "seed": 0, "fingerprint": "a" * 16, "test": "x"}
    refused = compare_with_baseline(
        {"receipt": {"tasks": {"t@0": task}}, "scores": [score(0.9)]},
        {"tasks": {"t@0": {**task, "fingerprint": "b" * 16}}},
        [score(0.9)],
        spec,
        0.95,
    )
    assert refused.verdict is Verdict.FAIL and refused.state == "refused"


def test_swaps_and_settings_say_what_is_wrong() -> None:
    assert parse_swaps(["zoo:a=zoo:b", "zoo:c"]) == ({"zoo:a": "zoo:b"}, "zoo:c")
    with pytest.raises(GateSettingsError, match="OLD=NEW"):
        parse_swaps(["=zoo:b"])
    with pytest.raises(ReuseSpecError, match="--reuse-max-seeds"):
        GateSettings(seeds=3, max_seeds=2).check()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    receipt=_JSON,
    specs=_JSON | st.dictionaries(st.text(max_size=5), _JSON | st.fixed_dictionaries({"scores": _JSON})),
)
def test_a_baseline_of_any_shape_loads_and_compares_or_fails_with_a_baseline_error(
    tmp_path_factory: pytest.TempPathFactory, receipt: object, specs: object
) -> None:
    """Fuzzed baseline documents with the right schema: a BaselineError naming the file, never a crash."""
    import json

    from reusespec.errors import BaselineError
    from reusespec.gate.baseline import SCHEMA, SCHEMA_VERSION, Baseline, check_spec_compatible
    from reusespec.gate.decision import pairs_to_gate

    path = tmp_path_factory.mktemp("baseline") / "baseline.json"
    document = {"schema": SCHEMA, "version": SCHEMA_VERSION, "receipt": receipt, "specs": specs}
    path.write_text(json.dumps(document))
    try:
        baseline = Baseline.load(path)
    except BaselineError as exc:
        assert str(path) in str(exc)
        return
    for nodeid in baseline.specs:  # what loads must be usable by the gate
        spec = baseline.spec(nodeid)
        assert spec is not None
        assert isinstance(spec.get("scores", []), list)
        check_spec_compatible(spec.get("receipt", {}), {"tasks": {}, "backbones": {}})
        current = {
            "backbone": "zoo:x",
            "task": "t",
            "strategy": "head-only",
            "metric": "accuracy",
            "value": 0.5,
        }
        pairs_to_gate(spec.get("scores", []), [current])
