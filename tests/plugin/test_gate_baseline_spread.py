"""``--reuse-baseline-spread``: a baseline that knows each score's seed spread, end to end."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

# A constructed score whose value depends on the seed, as a few-shot probe's does (sd 2.6 points
# over seeds 0-5), and which a candidate moves by $DROP.
SEEDED = """
import os

import numpy as np
from reusespec.results import ProbeResult

PER_SEED = {0: 0.80, 1: 0.83, 2: 0.77, 3: 0.82, 4: 0.78, 5: 0.84}

def test_few_shot(reuse):
    n = 400
    accuracy = PER_SEED[reuse.session.config.seed] - float(os.environ.get("DROP", "0"))
    wrong = n - round(accuracy * n)
    predictions = np.zeros(n, dtype=np.int64)
    predictions[:wrong] = 1
    result = ProbeResult(
        backbone="constructed", task="toy", metrics={"accuracy": accuracy, "macro_f1": 0.5}, seconds=0.0,
        cache_hit=True, l2=0.0, val_accuracy=0.0, sizes={"test": n},
        test_labels=np.zeros(n, dtype=np.int64), test_predictions=predictions,
    )
    reuse.records.extend(result.records)
    assert result.accuracy >= 0.50
"""


def _save(pytester: pytest.Pytester, path: Path, *extra: str) -> pytest.RunResult:
    result = pytester.runpytest("-p", "no:cacheprovider", f"--reuse-save-baseline={path}", *extra)
    result.assert_outcomes(passed=1)
    return result


def test_a_baseline_with_its_spread_passes_a_healthy_drop_and_fails_a_real_one(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_seeded=SEEDED)
    plain, spread = pytester.path / "plain.json", pytester.path / "spread.json"
    _save(pytester, plain).stdout.fnmatch_lines(
        ["*written to*; no seed spread measured (with --reuse-baseline-spread N*"]
    )
    saved = _save(pytester, spread, "--reuse-baseline-spread=5")
    saved.stdout.fnmatch_lines(
        ["*measuring the seed spread with seed 5", "*with each score's seed spread over 5 more seeds"]
    )

    document = json.loads(spread.read_text())
    stored = document["specs"]["test_seeded.py::test_few_shot"]
    accuracy = next(s for s in stored["scores"] if s["metric"] == "accuracy")
    assert accuracy["value"] == pytest.approx(0.80)  # the spread seeds do not change the score
    assert accuracy["spread"]["seeds"] == 5  # the reruns at seeds 1-5; the baseline's own value is left out
    assert accuracy["spread"]["sd"] == pytest.approx(
        statistics.stdev([0.83, 0.77, 0.82, 0.78, 0.84]), abs=1e-3
    )
    assert document["receipt"]["seeds"] == 1  # still a one-seed baseline: one-seed runs compare with it
    assert (
        "spread" not in json.loads(plain.read_text())["specs"]["test_seeded.py::test_few_shot"]["scores"][0]
    )

    monkeypatch.setenv("DROP", "0.03")  # a retrained checkpoint of equal quality, at the same seed
    failed = pytester.runpytest("-p", "no:cacheprovider", f"--reuse-baseline={plain}")
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["*REGRESSED: accuracy of constructed*allowed -0.0100 (abs 0.01;*"])
    passed = pytester.runpytest("-p", "no:cacheprovider", f"--reuse-baseline={spread}")
    passed.assert_outcomes(passed=1)

    monkeypatch.setenv("DROP", "0.60")
    caught = pytester.runpytest("-p", "no:cacheprovider", f"--reuse-baseline={spread}")
    caught.assert_outcomes(failed=1)
    caught.stdout.fnmatch_lines(
        ["*REGRESSED: accuracy*abs 0.01 widened to 0.48* by the seed spread: sd 0.031* over 5 seeds*"]
    )


def test_the_spread_option_is_checked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_seeded=SEEDED)
    result = pytester.runpytest("-p", "no:cacheprovider", "--reuse-baseline-spread=-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--reuse-baseline-spread*whole number >= 0*"])
    pytester.makeini("[pytest]\nreuse_baseline_spread = many\n")
    result = pytester.runpytest("-p", "no:cacheprovider", f"--reuse-save-baseline={pytester.path / 'b.json'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*reuse_baseline_spread = 'many'*whole number*"])


AVERAGED = """
from reusespec.results import ScoreRecord

def per_seed(seed):
    return 0.70 + 0.01 * (seed % 7)

def test_averaged(reuse):
    first = reuse.session.config.seed
    draws = [per_seed(s) for s in range(first, first + 3)]  # as probe(..., seeds=3) does
    reuse.records.append(ScoreRecord(
        backbone="constructed", task="toy", strategy="head-only", metric="accuracy",
        value=sum(draws) / 3, extra={"seed_values": draws},
    ))
"""


def test_reruns_of_a_spec_that_averages_seeds_share_no_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_averaged=AVERAGED)
    path = pytester.path / "b.json"
    saved = _save(pytester, path, "--reuse-baseline-spread=2")
    saved.stdout.fnmatch_lines(["*seed spread with seed 3", "*seed spread with seed 6"])
    (score,) = json.loads(path.read_text())["specs"]["test_averaged.py::test_averaged"]["scores"]
    means = [sum(0.70 + 0.01 * (s % 7) for s in range(start, start + 3)) / 3 for start in (3, 6)]
    assert score["spread"]["seeds"] == 2
    assert score["spread"]["sd"] == pytest.approx(statistics.stdev(means))


PROBE = """
def test_transfers(reuse):
    assert reuse.probe("zoo:digits-cnn", "sklearn-digits", l2_grid=(1e-3,)).accuracy >= 0.5

def test_other_backbone(reuse):
    assert reuse.probe("zoo:digits-mlp", "sklearn-digits", l2_grid=(1e-3,)).accuracy >= 0.5
"""


def _reference(cache: Path, target: Path, seed: int) -> str:
    """digits-cnn with a little seeded noise on its last conv: another checkpoint of like quality."""
    import torch
    from safetensors.torch import load_file, save_file

    from reusespec.backbones.zoo import checkpoint_path

    state = load_file(str(checkpoint_path("digits-cnn", cache)))
    weight = state["features.2.0.weight"]
    noise = torch.randn(weight.shape, generator=torch.Generator().manual_seed(seed))
    state["features.2.0.weight"] = weight + 0.3 * float(weight.std()) * noise
    save_file(state, str(target))
    return f"file:{target}?arch=zoo:digits-cnn"


def test_reference_checkpoints_give_the_spread_of_the_specs_that_load_them(
    pytester: pytest.Pytester, warm_cache: Path
) -> None:
    from reusespec.session import ReuseConfig, ReuseSession

    pytester.makepyfile(test_reference_probe=PROBE)  # not test_probe: a module of the outer run
    references = [_reference(warm_cache, pytester.path / f"ref{i}.safetensors", i) for i in range(3)]
    path = pytester.path / "b.json"
    options = [f"--reuse-baseline-spread-backbone=zoo:digits-cnn={ref}" for ref in references]
    saved = pytester.runpytest(
        "-p", "no:cacheprovider", f"--reuse-cache-dir={warm_cache}", f"--reuse-save-baseline={path}", *options
    )
    saved.assert_outcomes(passed=2)
    saved.stdout.fnmatch_lines(["*with each score's spread over 3 reference checkpoints"])

    specs = json.loads(path.read_text())["specs"]
    (accuracy,) = [
        s for s in specs["test_reference_probe.py::test_transfers"]["scores"] if s["metric"] == "accuracy"
    ]
    assert (
        accuracy["role"] == "zoo:digits-cnn" and accuracy["backbone"] == "zoo:digits-cnn"
    )  # the baseline's own
    reuse = ReuseSession(ReuseConfig(cache_dir=warm_cache, device="cpu")).reuse()
    each = [float(reuse.probe(ref, "sklearn-digits", l2_grid=(1e-3,)).accuracy) for ref in references]
    assert accuracy["spread"] == {"sd": pytest.approx(statistics.stdev(each)), "seeds": 3}
    assert all("spread" not in s for s in specs["test_reference_probe.py::test_other_backbone"]["scores"])


def test_one_reference_checkpoint_is_not_a_spread(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_seeded=SEEDED)
    result = pytester.runpytest("-p", "no:cacheprovider", "--reuse-baseline-spread-backbone=zoo:a=zoo:b")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*at least two reference checkpoints*"])
    result = pytester.runpytest("-p", "no:cacheprovider", "--reuse-baseline-spread-backbone=zoo:b")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*give OLD=NEW*"])


def test_reference_checkpoints_for_a_backbone_no_spec_loads_are_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_seeded=SEEDED)
    references = [
        "--reuse-baseline-spread-backbone=zoo:digits-cnm=zoo:b",
        "--reuse-baseline-spread-backbone=zoo:digits-cnm=zoo:c",
    ]
    result = pytester.runpytest(
        "-p", "no:cacheprovider", f"--reuse-save-baseline={pytester.path / 'b.json'}", *references
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(
        ["*--reuse-baseline-spread-backbone zoo:digits-cnm=zoo:b: no selected spec loads 'zoo:digits-cnm'*"]
    )
