"""The release gate's verdicts, seeds and severities, on constructed scores (no model runs).

Specs here build a ProbeResult with an exact accuracy on n test examples, so the bootstrap
interval, and with it the verdict, is known: at n = 400, accuracy 0.90 lies wholly above 0.80,
0.70 wholly below, and 0.79 or 0.81 straddle it.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from reusespec.across_seeds import interval_for
from reusespec.results import ProbeResult
from reusespec.stats import Verdict, verdict

CONFTEST = """
import numpy as np
import pytest
from reusespec.results import ProbeResult


@pytest.fixture
def constructed(reuse):
    def make(accuracy, n=400, shift=0):
        wrong = n - round(accuracy * n)
        labels = np.zeros(n, dtype=np.int64)
        predictions = np.zeros(n, dtype=np.int64)
        predictions[(np.arange(wrong) + shift * wrong) % n] = 1  # shift: errors on other examples
        result = ProbeResult(
            backbone="constructed", task="toy", metrics={"accuracy": (n - wrong) / n, "macro_f1": 0.5},
            seconds=0.0, cache_hit=True, l2=0.0, val_accuracy=0.0, sizes={"test": n},
            test_labels=labels, test_predictions=predictions,
        )
        reuse.records.extend(result.records)
        return result
    return make
"""

SPECS = """
import pytest

def test_clear_pass(constructed):
    assert constructed(0.90).accuracy >= 0.80

def test_clear_fail(constructed):
    assert constructed(0.70).accuracy >= 0.80

def test_straddle_pass(constructed):
    assert constructed(0.81).accuracy >= 0.80

def test_straddle_fail(constructed):
    assert constructed(0.79).accuracy >= 0.80

def test_not_a_score(constructed):
    constructed(0.90)
    assert "best" == "worst"
"""


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, dict[str, Any]]]:
    report = pytester.path / "report.json"
    result = pytester.runpytest("-p", "no:cacheprovider", "--reuse-report", str(report), *args)
    document = json.loads(report.read_text())
    return result, {spec["nodeid"].split("::")[-1]: spec for spec in document["specs"]}


def _status(specs: dict[str, dict[str, Any]], name: str) -> str:
    return str(specs[name]["gate"]["status"])


@pytest.fixture
def specs(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_specs=SPECS)
    return pytester


def test_the_constructed_intervals_are_what_the_cases_claim() -> None:
    import numpy as np

    def record(accuracy: float) -> Any:
        wrong = 400 - round(accuracy * 400)
        predictions = np.zeros(400, dtype=np.int64)
        predictions[:wrong] = 1
        result = ProbeResult(
            backbone="b",
            task="t",
            metrics={"accuracy": 1 - wrong / 400, "macro_f1": 0.5},
            seconds=0.0,
            cache_hit=True,
            l2=0.0,
            val_accuracy=0.0,
            sizes={"test": 400},
            test_labels=np.zeros(400, dtype=np.int64),
            test_predictions=predictions,
        )
        return result.records[0]

    def judged(accuracy: float) -> Verdict:
        interval = interval_for([record(accuracy)])
        assert interval is not None
        return verdict(interval, 0.80, ">=")

    assert judged(0.90) is Verdict.PASS
    assert judged(0.70) is Verdict.FAIL
    assert judged(0.81) is Verdict.INCONCLUSIVE
    assert judged(0.79) is Verdict.INCONCLUSIVE


def test_interval_verdicts_give_each_of_the_three_outcomes(specs: pytest.Pytester) -> None:
    result, by_name = _run(specs, "--reuse-verdicts", "interval")
    assert _status(by_name, "test_clear_pass") == "passed"
    assert _status(by_name, "test_clear_fail") == "failed"
    assert _status(by_name, "test_straddle_pass") == "inconclusive"  # a pass that straddles
    assert _status(by_name, "test_straddle_fail") == "inconclusive"  # a failure that straddles
    assert _status(by_name, "test_not_a_score") == "failed"  # not a score: intervals cannot excuse it
    outcomes = result.parseoutcomes()
    assert outcomes.get("inconclusive") == 2 and outcomes.get("failed") == 2 and outcomes.get("passed") == 1
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # inconclusive blocks by default
    result.stdout.fnmatch_lines(
        ["*test_clear_fail*", "*FAIL: accuracy 0.7 *wholly violates accuracy >= 0.8*"]
    )
    result.stdout.fnmatch_lines(["*INCONCLUSIVE: accuracy 0.81 *straddles accuracy >= 0.8*"])
    assert by_name["test_straddle_pass"]["outcome"] == "inconclusive"  # the summary table says so too


def test_without_verdicts_the_assert_decides(specs: pytest.Pytester) -> None:
    result, by_name = _run(specs, "-k", "straddle")
    assert _status(by_name, "test_straddle_pass") == "passed"
    assert _status(by_name, "test_straddle_fail") == "failed"
    result.stdout.fnmatch_lines(["*assert 0.79 >= 0.8*"])  # pytest's own assertion message, unchanged


def test_inconclusive_can_be_told_to_warn(specs: pytest.Pytester) -> None:
    result, by_name = _run(
        specs, "-k", "straddle", "--reuse-verdicts", "interval", "--reuse-inconclusive", "warn"
    )
    assert result.ret == pytest.ExitCode.OK
    assert _status(by_name, "test_straddle_fail") == "inconclusive"
    assert result.parseoutcomes().get("inconclusive") == 2
    result.stdout.fnmatch_lines(["*ReuseGateWarning*INCONCLUSIVE*"])


def test_severity_warn_and_track_do_not_fail_the_run(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_severity="""
        import pytest

        @pytest.mark.reuse_severity("warn")
        def test_warned(constructed):
            assert constructed(0.70).accuracy >= 0.80

        @pytest.mark.reuse_severity("track")
        def test_tracked(constructed):
            assert constructed(0.70).accuracy >= 0.80

        @pytest.mark.reuse_severity("track")
        def test_tracked_crash(constructed):
            raise RuntimeError("a crash is an error whatever the severity")
        """
    )
    result, by_name = _run(pytester)
    assert _status(by_name, "test_warned") == "warned"
    assert _status(by_name, "test_tracked") == "tracked"
    assert _status(by_name, "test_tracked_crash") == "error"
    outcomes = result.parseoutcomes()
    assert outcomes.get("warned") == 1 and outcomes.get("tracked") == 1 and outcomes.get("failed") == 1
    result.stdout.fnmatch_lines(["*ReuseGateWarning: reusespec gate: FAIL (warned)*"])
    assert "(tracked)" not in result.stdout.str()  # track records, it does not warn


SEEDED = """
import pytest

# accuracy per seed: seed 0 alone fails ">= 0.80", the mean of seeds 0-2 (0.8167) passes
PER_SEED = {0: 0.78, 1: 0.83, 2: 0.84}

def test_mean_over_seeds(constructed, reuse):
    assert constructed(PER_SEED[reuse.session.config.seed]).accuracy >= 0.80

def test_resolves_with_a_second_seed(constructed, reuse):
    # 0.845 on 400 examples straddles 0.80 at one seed; errors on other examples per seed
    # make the mean over two seeds certain
    assert constructed(0.845, shift=reuse.session.config.seed).accuracy >= 0.80

def test_never_resolves(constructed, reuse):
    assert constructed(0.80, shift=reuse.session.config.seed).accuracy >= 0.80

def test_fails_at_once(constructed, reuse):
    assert constructed(0.60, shift=reuse.session.config.seed).accuracy >= 0.80
"""


def test_seeds_replay_the_spec_and_the_mean_decides(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_seeded=SEEDED)
    _, single = _run(pytester, "-k", "mean_over_seeds")
    assert _status(single, "test_mean_over_seeds") == "failed"
    _, by_name = _run(pytester, "-k", "mean_over_seeds", "--reuse-seeds", "3")
    spec = by_name["test_mean_over_seeds"]
    assert spec["gate"]["status"] == "passed"
    assert spec["gate"]["seeds"] == [0, 1, 2]
    accuracy = next(s for s in spec["scores"] if s["metric"] == "accuracy")
    assert accuracy["value"] == pytest.approx((0.78 + 0.83 + 0.84) / 3)
    assert accuracy["extra"]["seed_values"] == pytest.approx([0.78, 0.83, 0.84])
    assert accuracy["ci_low"] < accuracy["value"] < accuracy["ci_high"]


def test_auto_seeding_stops_as_soon_as_the_verdict_is_conclusive(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_seeded=SEEDED)
    result, by_name = _run(
        pytester, "-k", "not mean_over_seeds", "--reuse-verdicts", "interval", "--reuse-max-seeds", "4"
    )
    resolved = by_name["test_resolves_with_a_second_seed"]["gate"]
    assert (resolved["status"], resolved["seeds"]) == ("passed", [0, 1])
    assert resolved["confidence"] == pytest.approx(1 - 0.05 / 3)  # Bonferroni over looks at 2, 3, 4 seeds
    never = by_name["test_never_resolves"]["gate"]
    assert (never["status"], never["seeds"]) == ("inconclusive", [0, 1, 2, 3])  # the budget is spent
    at_once = by_name["test_fails_at_once"]["gate"]
    assert (at_once["status"], at_once["seeds"]) == ("failed", [0, 1])  # conclusive at the first look
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_scores_reach_junit_xml_and_verdicts_travel_under_xdist(specs: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    junit = specs.path / "junit.xml"
    result, by_name = _run(specs, "-n", "1", "--reuse-verdicts", "interval", "--junitxml", str(junit))
    assert _status(by_name, "test_straddle_pass") == "inconclusive"  # decided on a worker, seen here
    assert result.parseoutcomes().get("inconclusive") == 2
    # the spec's own assert, then why the gate decided, in the failure report from the worker
    result.stdout.fnmatch_lines(["*assert 0.7 >= 0.8*", "*- reusespec gate -*", "*wholly violates*"])
    cases = {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == set(by_name)
    for name, spec in by_name.items():
        properties = {p.get("name"): str(p.get("value")) for p in cases[name].iter("property")}
        for score in spec["scores"]:
            key = f"reusespec:{score['backbone']}|{score['task']}|{score['strategy']}|{score['metric']}"
            assert float(properties[key]) == pytest.approx(score["value"])
        assert properties["reusespec:status"] == spec["gate"]["status"]


def test_the_json_report_carries_a_receipt(specs: pytest.Pytester) -> None:
    _, by_name = _run(specs, "-k", "clear_pass")
    document = json.loads(Path(specs.path / "report.json").read_text())
    receipt = document["receipt"]
    assert receipt["seed"] == 0 and receipt["seeds"] == 1
    assert {"torch", "numpy", "reusespec"} <= set(receipt["libraries"])
    assert receipt["devices"] == ["cpu"] or receipt["devices"]
    assert "git_commit" in receipt  # None outside a git repository, tolerated
    assert by_name["test_clear_pass"]["gate"]["receipt"]["device"]
