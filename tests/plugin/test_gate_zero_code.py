"""Zero-code checks of a checkpoint: the standard suite, and swapping the backbone of specs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reusespec.standard_suite import SuiteConfig, SuiteError, parse_shift, standard_checks

pytestmark = pytest.mark.usefixtures("one_thread")


def _candidate(cache: Path, target: Path) -> Path:
    """A release candidate as a user has it: a safetensors file (here the zoo's digits-cnn)."""
    from reusespec.backbones.zoo import checkpoint_path

    return Path(shutil.copyfile(checkpoint_path("digits-cnn", cache), target))


def test_standard_suite_runs_on_a_checkpoint_file_without_spec_files(
    pytester: pytest.Pytester, warm_cache: Path
) -> None:
    candidate = _candidate(warm_cache, pytester.path / "candidate.safetensors")
    pytester.makepyfile(test_users_own="def test_unrelated():\n    assert False\n")  # not part of the check
    report = pytester.path / "report.json"
    result = pytester.runpytest(
        "-p", "no:cacheprovider",
        f"--reuse-cache-dir={warm_cache}",
        "--reuse-backbone", f"file:{candidate}",
        "--reuse-suite-task", "sklearn-digits",
        "--reuse-report", str(report),
        "-v",
    )  # fmt: skip
    result.assert_outcomes(passed=3, deselected=1)
    result.stdout.fnmatch_lines(
        [
            "*reusespec-standard-suite::head-only?sklearn-digits? PASSED*",
            "*reusespec-standard-suite::budget PASSED*",
            "*reusespec-standard-suite::shift?gaussian_noise@3? PASSED*",
        ]
    )
    specs = {s["nodeid"]: s for s in json.loads(report.read_text())["specs"]}
    head_only = specs["reusespec-standard-suite::head-only[sklearn-digits]"]
    accuracy = next(s for s in head_only["scores"] if s["metric"] == "accuracy")
    assert accuracy["backbone"] == f"file:{candidate}"
    assert accuracy["threshold"] == pytest.approx(0.1) and accuracy["op"] == ">"  # beats chance, 10 classes
    shift = specs["reusespec-standard-suite::shift[gaussian_noise@3]"]
    assert {s["metric"] for s in shift["scores"]} >= {"shifted_accuracy", "relative_drop"}
    budget = specs["reusespec-standard-suite::budget"]
    assert {s["metric"] for s in budget["scores"]} >= {"params", "gmacs", "checkpoint_mb"}


def test_limits_from_the_ini_file_fail_the_suite(pytester: pytest.Pytester, warm_cache: Path) -> None:
    candidate = _candidate(warm_cache, pytester.path / "candidate.safetensors")
    pytester.makeini(
        """
        [pytest]
        reuse_suite_tasks = sklearn-digits
        reuse_suite_shift = none
        reuse_suite_max_params = 1000
        """
    )
    result = pytester.runpytest(
        "-p", "no:cacheprovider", f"--reuse-cache-dir={warm_cache}", "--reuse-backbone", f"file:{candidate}"
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*has 23,733 parameters, over the budget of 1,000*"])


def test_swap_runs_existing_specs_on_the_candidate(pytester: pytest.Pytester, warm_cache: Path) -> None:
    candidate = _candidate(warm_cache, pytester.path / "candidate.safetensors")
    pytester.makepyfile(
        test_specs="""
        def test_twins(reuse):
            pretrained = reuse.probe("zoo:digits-cnn", "sklearn-digits", l2_grid=(1e-3,))
            other = reuse.probe("zoo:digits-cnn-random", "sklearn-digits", l2_grid=(1e-3,))
            assert pretrained.accuracy >= 0.5 and other.accuracy >= 0.5
        """
    )
    report = pytester.path / "report.json"
    result = pytester.runpytest(
        "-p", "no:cacheprovider",
        f"--reuse-cache-dir={warm_cache}",
        "--reuse-swap-backbone", f"file:{candidate}",  # no OLD=: the spec's first backbone
        "--reuse-report", str(report),
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    (spec,) = json.loads(report.read_text())["specs"]
    backbones = [s["backbone"] for s in spec["scores"] if s["metric"] == "accuracy"]
    assert backbones == [f"file:{candidate}", "zoo:digits-cnn-random"]
    receipt = spec["gate"]["receipt"]["backbones"]
    assert receipt["zoo:digits-cnn"]["name"] == f"file:{candidate}"
    assert receipt["zoo:digits-cnn-random"]["name"] == "zoo:digits-cnn-random"
    # a byte-identical copy of the zoo checkpoint: the same weights, so the same fingerprint
    from reusespec.session import ReuseConfig, ReuseSession

    zoo = ReuseSession(ReuseConfig(cache_dir=warm_cache, device="cpu")).backbone("zoo:digits-cnn")
    assert receipt["zoo:digits-cnn"]["fingerprint"] == zoo.fingerprint


def test_suite_settings() -> None:
    assert parse_shift("contrast@5") == ("contrast", 5)
    assert parse_shift("none") is None
    with pytest.raises(SuiteError, match="CORRUPTION@SEVERITY"):
        parse_shift("contrast@9")
    config = SuiteConfig.from_settings(
        "zoo:x", [], {"reuse_suite_tasks": ["a", "b"], "reuse_suite_shift": "none"}.get
    )
    assert [c.name for c in standard_checks(config)] == ["head-only[a]", "head-only[b]", "budget"]
