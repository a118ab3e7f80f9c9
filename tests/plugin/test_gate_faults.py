"""A gate that blocks only real regressions and never passes by accident: each case as a user met it.

Each test reproduces one way the gate used to answer wrongly (a swap that silently missed, a skip
that passed a gate, a baseline that compared nothing, an interrupted run that replaced a
baseline, a crashed worker missing from the report, latency compared across machines, an ``if``
recorded as a threshold, intervals outside their range, NaN in the JSON report).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torchvision  # noqa: F401  (loaded before pytester's in-process runs, which unload what they import)

pytestmark = pytest.mark.usefixtures("one_thread")

PROBE = 'reuse.probe({backbone!r}, "sklearn-digits", l2_grid=(1e-3,))'
ONE_SPEC = (
    f"def test_transfers(reuse):\n    assert {PROBE.format(backbone='zoo:digits-cnn')}.accuracy >= 0.5\n"
)


def _strict_json(path: Path) -> dict[str, Any]:
    def refuse(name: str) -> None:
        raise AssertionError(f"bare {name} in {path}")

    document: dict[str, Any] = json.loads(path.read_text(), parse_constant=refuse)
    return document


def _specs(report: Path) -> dict[str, dict[str, Any]]:
    return {s["nodeid"].split("::")[-1]: s for s in _strict_json(report)["specs"]}


def _copy_checkpoint(cache: Path, target: Path, zero_filters: bool = False) -> Path:
    from safetensors.torch import load_file, save_file

    from reusespec.backbones.zoo import checkpoint_path

    state = load_file(str(checkpoint_path("digits-cnn", cache)))
    if zero_filters:  # an over-pruned candidate: 8 of the last conv's 64 filters left
        weight = state["features.2.0.weight"].clone()
        weight[8:] = 0.0
        state["features.2.0.weight"] = weight
    save_file(state, str(target))
    return target


def test_a_swap_with_arch_on_both_sides_compares_the_new_checkpoint(
    pytester: pytest.Pytester, warm_cache: Path
) -> None:
    old = f"file:{_copy_checkpoint(warm_cache, pytester.path / 'old.safetensors')}?arch=zoo:digits-cnn"
    new_path = _copy_checkpoint(warm_cache, pytester.path / "new.safetensors", zero_filters=True)
    new = f"file:{new_path}?arch=zoo:digits-cnn"
    pytester.makepyfile(
        test_specs=f"def test_transfers(reuse):\n    assert {PROBE.format(backbone=old)}.accuracy >= 0.5\n"
    )
    common = ("-p", "no:cacheprovider", f"--reuse-cache-dir={warm_cache}")
    baseline = pytester.path / "baseline.json"
    pytester.runpytest(*common, "--reuse-save-baseline", str(baseline)).assert_outcomes(passed=1)

    swapped = pytester.runpytest(
        *common, "--reuse-baseline", str(baseline), "--reuse-swap-backbone", f"{old}={new}"
    )
    swapped.assert_outcomes(failed=1)  # before: the value was split at "?arch=", nothing swapped, exit 0
    swapped.stdout.fnmatch_lines(
        [
            f"*swap {old}={new}*",
            "*REGRESSED: accuracy of file:*new.safetensors?arch=zoo:digits-cnn on sklearn-digits*",
        ]
    )


def test_a_swap_whose_old_no_spec_loads_is_a_usage_error(pytester: pytest.Pytester, warm_cache: Path) -> None:
    pytester.makepyfile(test_specs=ONE_SPEC)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", f"--reuse-cache-dir={warm_cache}",
        "--reuse-swap-backbone", "zoo:digits_cnn=zoo:digits-cnn-random",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*no selected spec loads 'zoo:digits_cnn'*did you mean 'zoo:digits-cnn'*"])


def test_a_missing_registry_resource_fails_a_gated_run_and_every_skip_is_listed(
    pytester: pytest.Pytester, warm_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))  # torchvision weights not on disk
    pytester.makepyfile(
        test_specs=f"""
def test_transfers(reuse):
    assert {PROBE.format(backbone="zoo:digits-cnn")}.accuracy >= 0.5

def test_resnet(reuse):
    assert {PROBE.format(backbone="torchvision:resnet18")}.accuracy >= 0.5
"""
    )
    common = ("-p", "no:cacheprovider", f"--reuse-cache-dir={warm_cache}")
    baseline = pytester.path / "baseline.json"
    plain = pytester.runpytest(*common, "--reuse-save-baseline", str(baseline))
    plain.assert_outcomes(passed=1, skipped=1)
    plain.stdout.fnmatch_lines(["*SKIPPED*test_resnet: weights *resnet18* are not on this machine*"])

    gated = pytester.runpytest(*common, "--reuse-baseline", str(baseline))
    gated.assert_outcomes(passed=1, failed=1)  # before: a skip, and the gate passed
    gated.stdout.fnmatch_lines(["*MissingResourceError*resnet18*--reuse-strict*"])
    pytester.runpytest(*common, "--reuse-baseline", str(baseline), "--reuse-no-strict").assert_outcomes(
        passed=1, skipped=1
    )
    pytester.runpytest(*common, "--reuse-strict").assert_outcomes(passed=1, failed=1)


def test_a_baseline_that_compares_nothing_is_an_error(pytester: pytest.Pytester, warm_cache: Path) -> None:
    pytester.makepyfile(test_specs=ONE_SPEC)
    common = ("-p", "no:cacheprovider", f"--reuse-cache-dir={warm_cache}")
    baseline = pytester.path / "baseline.json"
    pytester.runpytest(*common, "--reuse-save-baseline", str(baseline)).assert_outcomes(passed=1)
    stored = json.loads(baseline.read_text())
    for spec in stored["specs"].values():
        for score in spec["scores"]:
            score["value"] = None
    baseline.write_text(json.dumps(stored))

    result = pytester.runpytest(*common, "--reuse-baseline", str(baseline))
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # before: "0 scores compared", exit 0
    result.stdout.fnmatch_lines(["*0 scores compared*", "*ERROR: --reuse-baseline*no score was compared*"])


def test_a_baseline_gates_the_asserted_scores_and_tracks_the_others(
    pytester: pytest.Pytester, warm_cache: Path
) -> None:
    pytester.makepyfile(
        test_specs=f"""
import pytest

def test_transfers(reuse):
    assert {PROBE.format(backbone="zoo:digits-cnn")}.accuracy >= 0.5

@pytest.mark.reuse_gate("macro_f1")
def test_named(reuse):
    assert {PROBE.format(backbone="zoo:digits-cnn")}.accuracy >= 0.5
"""
    )
    common = ("-p", "no:cacheprovider", f"--reuse-cache-dir={warm_cache}")
    baseline, report = pytester.path / "baseline.json", pytester.path / "report.json"
    pytester.runpytest(*common, "--reuse-save-baseline", str(baseline)).assert_outcomes(passed=2)
    stored = json.loads(baseline.read_text())
    for spec in stored["specs"].values():
        for score in spec["scores"]:
            if score["metric"] == "macro_f1":
                score["value"] = 1.0  # the current macro-F1 now looks like a large regression
    baseline.write_text(json.dumps(stored))

    result = pytester.runpytest(*common, "--reuse-baseline", str(baseline), "--reuse-report", str(report))
    result.assert_outcomes(passed=1, failed=1)  # only the spec whose marker names macro_f1 fails
    specs = _specs(report)
    f1 = next(c for c in specs["test_transfers"]["gate"]["comparisons"] if c["metric"] == "macro_f1")
    assert f1["verdict"] == "fail" and "not asserted" in f1["tracked"]
    accuracy = next(c for c in specs["test_transfers"]["gate"]["comparisons"] if c["metric"] == "accuracy")
    assert accuracy["tracked"] is None and accuracy["verdict"] == "pass"
    assert specs["test_named"]["outcome"] == "failed"
    every = pytester.runpytest(*common, "--reuse-baseline", str(baseline), "--reuse-gate-scores", "all")
    every.assert_outcomes(failed=2)


SLOW_SPECS = """
import os, time
from pathlib import Path

def test_a(reuse):
    assert reuse.complexity("zoo:digits-cnn", latency=False, memory=False).params <= 50_000

def test_b(reuse):
    assert reuse.complexity("zoo:digits-cnn", latency=False, memory=False).params <= 50_000
    Path("b-started").touch()
    deadline = time.monotonic() + 120
    while not Path("release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # waits for the test driving this run, not for time to pass

def test_c(reuse):
    assert reuse.complexity("zoo:digits-cnn", latency=False, memory=False).params <= 50_000

def test_d(reuse):
    assert reuse.complexity("zoo:digits-cnn", latency=False, memory=False).params <= 50_000
"""


def test_an_interrupted_run_keeps_the_baseline_and_reports_itself_incomplete(
    pytester: pytest.Pytester, warm_cache: Path
) -> None:
    pytester.makepyfile(test_specs=SLOW_SPECS)
    baseline, report = pytester.path / "baseline.json", pytester.path / "report.json"
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        f"--reuse-cache-dir={warm_cache}",
    ]
    (pytester.path / "release").touch()
    done = subprocess.run(
        [*args, "--reuse-save-baseline", str(baseline)],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout
    before = baseline.read_bytes()
    assert len(json.loads(before)["specs"]) == 4

    (pytester.path / "release").unlink()
    (pytester.path / "b-started").unlink()
    run = subprocess.Popen(
        [*args, "--reuse-save-baseline", str(baseline), "--reuse-report", str(report)],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not (pytester.path / "b-started").exists():
        assert run.poll() is None and time.monotonic() < deadline, "test_b never started"
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)  # Ctrl-C in the middle of test_b
    output, _ = run.communicate(timeout=120)
    assert run.returncode == pytest.ExitCode.INTERRUPTED, output
    assert baseline.read_bytes() == before, output  # before: a 1-spec baseline replaced the 4-spec one
    assert "baseline NOT written" in output and "incomplete" in output
    document = _strict_json(report)
    assert document["complete"] is False and "interrupted" in document["incomplete_reason"]
    assert [n.split("::")[-1] for n in document["unfinished"]] == ["test_b", "test_c", "test_d"]


def test_a_killed_worker_fails_its_spec_in_the_report_which_is_incomplete(
    pytester: pytest.Pytester, warm_cache: Path
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_specs="""
import os, signal

def test_survives(reuse):
    assert reuse.complexity("zoo:digits-cnn", latency=False, memory=False).params <= 50_000

def test_killed(reuse):
    reuse.complexity("zoo:digits-cnn", latency=False, memory=False)
    os.kill(os.getpid(), signal.SIGKILL)
"""
    )
    baseline, report = pytester.path / "baseline.json", pytester.path / "report.json"
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-n", "2", f"--reuse-cache-dir={warm_cache}",
        "--reuse-report", str(report), "--reuse-save-baseline", str(baseline),
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    specs = _specs(report)  # before: test_killed was missing from the report
    assert specs["test_killed"]["outcome"] == "failed" and "crashed" in specs["test_killed"]["message"]
    document = _strict_json(report)
    assert document["complete"] is False and "crashed while running" in document["incomplete_reason"]
    assert not baseline.exists()
    result.stdout.fnmatch_lines(["*baseline NOT written*crashed*"])


def test_latency_is_gated_only_when_asserted_on_the_same_kind_of_machine(
    pytester: pytest.Pytester, warm_cache: Path
) -> None:
    pytester.makepyfile(
        test_specs="""
def test_asserted(reuse):
    assert reuse.complexity("zoo:digits-cnn", memory=False).latency_ms <= 10_000

def test_not_asserted(reuse):
    assert reuse.complexity("zoo:digits-cnn", memory=False).params <= 50_000
"""
    )
    common = ("-p", "no:cacheprovider", f"--reuse-cache-dir={warm_cache}")
    baseline, report = pytester.path / "baseline.json", pytester.path / "report.json"
    pytester.runpytest(*common, "--reuse-save-baseline", str(baseline)).assert_outcomes(passed=2)
    stored = json.loads(baseline.read_text())
    latencies = [
        s for spec in stored["specs"].values() for s in spec["scores"] if s["metric"] == "latency_ms"
    ]
    assert len(latencies) == 2 and all(s["machine"]["cores"] == os.cpu_count() for s in latencies)
    for score in latencies:
        score["value"] = 1e-9  # every current latency is now a "regression"
        score["machine"] = {**score["machine"], "cpu": "Another CPU"}
    baseline.write_text(json.dumps(stored))

    other_machine = pytester.runpytest(
        *common, "--reuse-baseline", str(baseline), "--reuse-report", str(report)
    )
    other_machine.assert_outcomes(passed=2)  # before: REGRESSED: latency_ms ... baseline 0.0000
    tracked = {
        n: next(c for c in s["gate"]["comparisons"] if c["metric"] == "latency_ms")
        for n, s in _specs(report).items()
    }
    assert "CPU model 'Another CPU' in the baseline" in tracked["test_asserted"]["tracked"]
    assert "not asserted" in tracked["test_not_asserted"]["tracked"]

    for score in latencies:
        score["machine"] = {**score["machine"], "cpu": tracked["test_asserted"]["tracked"].split("'")[3]}
    baseline.write_text(json.dumps(stored))
    same_machine = pytester.runpytest(
        *common, "--reuse-baseline", str(baseline), "--reuse-report", str(report)
    )
    assert same_machine.ret == pytest.ExitCode.TESTS_FAILED  # FAIL, or INCONCLUSIVE (blocks) when busy
    assert _specs(report)["test_not_asserted"]["outcome"] == "passed"  # its latency stays tracked
    gated = next(
        c for c in _specs(report)["test_asserted"]["gate"]["comparisons"] if c["metric"] == "latency_ms"
    )
    assert gated["tracked"] is None and gated["verdict"] in ("fail", "inconclusive")
    if gated["verdict"] == "inconclusive":  # a busy machine: said so, not a FAIL
        assert "too noisy" in gated["message"]


def test_a_comparison_outside_an_assert_is_tracked_not_a_threshold(
    pytester: pytest.Pytester, warm_cache: Path
) -> None:
    pytester.makepyfile(
        test_specs=f"""
def test_transfers(reuse):
    result = {PROBE.format(backbone="zoo:digits-cnn")}
    if result.accuracy >= 0.999:
        print("perfect")
    assert result.macro_f1 >= 0.5
"""
    )
    report = pytester.path / "report.json"
    result = pytester.runpytest(
        "-p", "no:cacheprovider", f"--reuse-cache-dir={warm_cache}", "--reuse-report", str(report)
    )
    result.assert_outcomes(passed=1)
    scores = {s["metric"]: s for s in _specs(report)["test_transfers"]["scores"]}
    accuracy = scores["accuracy"]  # before: threshold 0.999, passed false, a negative margin
    assert accuracy["threshold"] is None and accuracy["margin"] is None
    (tracked,) = accuracy["extra"]["tracked_comparisons"]
    assert tracked["op"] == ">=" and tracked["threshold"] == 0.999 and "an if statement" in tracked["where"]
    assert scores["macro_f1"]["threshold"] == 0.5
    result.stdout.fnmatch_lines(
        ["*TRACKED*test_transfers: accuracy*>= 0.999*an if statement*tracked, not judged*"]
    )


def test_intervals_stay_within_their_metric_range(pytester: pytest.Pytester, warm_cache: Path) -> None:
    pytester.makepyfile(
        test_specs="""
def test_source_digits(reuse):
    assert reuse.probe("zoo:digits-cnn", "mnist5k:0-4", l2_grid=(1e-3,)).accuracy >= 0.5
"""
    )
    report = pytester.path / "report.json"
    pytester.runpytest(
        "-p",
        "no:cacheprovider",
        f"--reuse-cache-dir={warm_cache}",
        "--reuse-seed-count",
        "3",
        "--reuse-report",
        str(report),
    ).assert_outcomes(passed=1)
    accuracy = next(s for s in _specs(report)["test_source_digits"]["scores"] if s["metric"] == "accuracy")
    assert 0.0 <= accuracy["ci_low"] <= accuracy["value"] <= accuracy["ci_high"] <= 1.0


def test_a_nan_comparison_writes_strict_json(pytester: pytest.Pytester, warm_cache: Path) -> None:
    pytester.makepyfile(
        test_specs=f"""
def test_nan(reuse):
    result = {PROBE.format(backbone="zoo:digits-cnn")}
    assert not (result.accuracy >= float("nan"))
"""
    )
    report = pytester.path / "report.json"
    pytester.runpytest(
        "-p", "no:cacheprovider", f"--reuse-cache-dir={warm_cache}", "--reuse-report", str(report)
    ).assert_outcomes(passed=1)
    accuracy = next(
        s for s in _specs(report)["test_nan"]["scores"] if s["metric"] == "accuracy"
    )  # before: bare NaN
    assert accuracy["threshold"] is None and accuracy["non_finite"] == {"threshold": "nan", "margin": "nan"}
