"""Option values are checked when given: a bad one is a usage error naming the option (exit code 4)."""

from __future__ import annotations

import pytest

SPEC = "def test_nothing():\n    pass\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--reuse-seed", "abc"], "argument --reuse-seed: expected a whole number >= 0, got 'abc'"),
        (["--reuse-seeds", "0"], "--reuse-seeds: expected a whole number >= 1, got 0"),
        (["--reuse-seed-count", "-2"], "--reuse-seeds: expected a whole number >= 1, got -2"),
        (["--reuse-batch-size", "x"], "argument --reuse-batch-size: expected a whole number >= 1, got 'x'"),
        (["--reuse-verdicts", "maybe"], "--reuse-verdicts: expected one of off, interval; got 'maybe'"),
        (["--reuse-inconclusive", "ignore"], "argument --reuse-inconclusive: expected one of block, warn"),
        (["--reuse-confidence", "95"], "--reuse-confidence: expected a number strictly between 0 and 1"),
        (["--reuse-max-seeds", "many"], "argument --reuse-max-seeds: expected a whole number >= 1"),
    ],
)
def test_a_bad_option_value_is_a_usage_error(
    pytester: pytest.Pytester, args: list[str], expected: str
) -> None:
    pytester.makepyfile(SPEC)
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stderr.str()
    assert expected in output.replace("--reuse-seed-count/--reuse-seeds", "--reuse-seeds")
    assert "Traceback" not in output and "INTERNALERROR" not in output + result.stdout.str()


def test_a_bad_ini_value_is_a_usage_error_naming_the_ini_value(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nreuse_batch_size = lots\n")
    pytester.makepyfile(SPEC)
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ini value reuse_batch_size = 'lots': expected a whole number >= 1" in result.stderr.str()


def test_the_older_seed_count_spelling_still_works(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SPEC)
    for spelling in ("--reuse-seeds", "--reuse-seed-count"):
        result = pytester.runpytest_subprocess(spelling, "3")
        assert result.ret == pytest.ExitCode.OK
        result.stdout.fnmatch_lines(["reusespec gate: seeds=3"])
    help_text = pytester.runpytest_subprocess("--help").stdout.str()
    assert "--reuse-seed-count" in help_text and "older spelling" in help_text
