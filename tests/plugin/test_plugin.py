"""The pytest plugin as users meet it: specs run by pytest (pytester), on the demo zoo.

Every run uses ``warm_cache`` (zoo checkpoints prebuilt, no features), so no test retrains the
zoo, and cheap tasks (``mnist5k:5-9``, ``sklearn-digits``), so extraction takes about a second.
Runs are few and each is checked for several things, because each costs seconds.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision

from reusespec.devices import select_device

SPECS = """
    def test_transfers(reuse):
        r = reuse.probe("zoo:digits-cnn", "mnist5k:5-9")
        assert r.accuracy >= 0.5

    def test_random_backbone_misses_the_bar(reuse):
        r = reuse.probe("zoo:digits-cnn-random", "mnist5k:5-9")
        assert r.accuracy >= 0.99

    def test_raises_after_scoring(reuse):
        reuse.probe("zoo:digits-cnn", "sklearn-digits")
        raise RuntimeError("broke after scoring")

    def test_runs_after_the_error(reuse):
        r = reuse.probe("zoo:digits-cnn", "sklearn-digits")
        assert r.macro_f1 >= 0.5

    def test_missing_weights(reuse):
        reuse.probe("torchvision:resnet18", "mnist5k:5-9")

    def test_missing_data(reuse):
        reuse.probe("zoo:digits-cnn", "cifar100")

    def test_not_a_spec():
        assert True
"""
PROBE_METRICS = {"accuracy", "macro_f1", "top5_accuracy"}
PROGRESS = "[reusespec]"


def _table(lines: list[str]) -> list[dict[str, str]]:
    """The rows of the 'reusespec scores' summary table, read by the columns of its dash line."""
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"=+ reusespec scores =+", line))
    header, dashes = lines[start + 1], lines[start + 2]
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", dashes)]
    names = [header[a:b].strip() for a, b in spans]
    rows = []
    for line in lines[start + 3 :]:
        if not line.strip() or line.startswith(("=", "reusespec report")):
            break
        rows.append({name: line[a:b].strip() for name, (a, b) in zip(names, spans, strict=True)})
    return rows


def _row(rows: list[dict[str, str]], spec: str, metric: str) -> dict[str, str]:
    (row,) = [r for r in rows if r["spec"] == spec and r["metric"] == metric]
    return row


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The in-process runs fit tiny heads; on a busy machine threads waiting on each other cost 10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def empty_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A TORCH_HOME without any downloaded weights."""
    home = tmp_path / "torch-home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def test_specs_run_end_to_end(
    pytester: pytest.Pytester, warm_cache: Path, empty_torch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pass, fail, error midway, skip: outcomes, failure text, skip reasons, table and JSON report.

    Then a second, quiet run on the same cache, configured through an ini file, hits the cache.
    """
    cache = pytester.path / "reuse-cache"
    shutil.move(warm_cache, cache)
    data_dir = pytester.mkdir("empty-data")
    report_dir = pytester.mkdir("reports")
    report_path = report_dir / "reuse.json"
    spec_file = pytester.makepyfile(test_specs=textwrap.dedent(SPECS))

    result = pytester.runpytest(
        "--reuse-cache-dir",
        "reuse-cache",  # relative to where pytest is started
        "--reuse-data-dir",
        str(data_dir),
        "--reuse-report",
        str(report_path),
        "-rs",
    )
    result.assert_outcomes(passed=3, failed=2, skipped=2)
    out = result.outlines
    report = json.loads(report_path.read_text())
    specs = {s["nodeid"].split("::")[-1]: s for s in report["specs"]}

    # The failure shows the score, the threshold and the result it came from.
    scores = specs["test_random_backbone_misses_the_bar"]["scores"]
    failed_accuracy = next(s for s in scores if s["metric"] == "accuracy")
    value = failed_accuracy["value"]
    result.stdout.fnmatch_lines(
        [
            f"E       assert {value!r} >= 0.99",
            f"E        +  where {value!r} = ProbeResult(zoo:digits-cnn-random on mnist5k:5-9: "
            f"accuracy={value:.4f}, *).accuracy",
        ]
    )
    result.stdout.fnmatch_lines(["E       RuntimeError: broke after scoring"])

    # Skips name the spec, where the file was looked for and how to provide it.
    weights_skip = next(line for line in out if line.startswith("SKIPPED") and "resnet18" in line)
    assert f"{spec_file.name}:" in weights_skip and "plugin.py" not in weights_skip
    assert str(empty_torch_home / "hub" / "checkpoints") in weights_skip
    assert "TORCH_HOME" in weights_skip and "--reuse-allow-download" in weights_skip
    data_skip = next(line for line in out if line.startswith("SKIPPED") and "cifar100" in line)
    assert f"{spec_file.name}:" in data_skip
    assert str(data_dir) in data_skip and "--reuse-data-dir" in data_skip

    # Progress on a cold cache: each split extracted once (the second sklearn-digits probe hits).
    extracted = [line for line in out if line.startswith(f"{PROGRESS} extracted")]
    assert any("zoo:digits-cnn on mnist5k:5-9 [train]" in line for line in extracted)
    assert sum("zoo:digits-cnn on sklearn-digits [test]" in line for line in extracted) == 1

    # The table: one row per score of every spec that computed any, errors included.
    rows = _table(out)
    scored = ["test_random_backbone_misses_the_bar", "test_raises_after_scoring", "test_runs_after_the_error"]
    assert {r["spec"] for r in rows} == {"test_transfers", *scored}
    assert len(rows) == 4 * len(PROBE_METRICS)
    miss = _row(rows, "test_random_backbone_misses_the_bar", "accuracy")
    assert miss["backbone"] == "zoo:digits-cnn-random" and miss["task"] == "mnist5k:5-9"
    assert miss["strategy"] == "head-only" and miss["outcome"] == "failed" and miss["cache"] == "miss"
    assert miss["threshold"] == ">= 0.9900"
    assert miss["margin"].startswith("-") and float(miss["margin"]) == pytest.approx(value - 0.99, abs=1e-4)
    assert float(miss["value"]) == pytest.approx(value, abs=1e-4)
    assert float(miss["secs"]) > 0
    assert _row(rows, "test_transfers", "accuracy")["outcome"] == "passed"
    assert _row(rows, "test_transfers", "macro_f1")["threshold"] == "-"
    assert _row(rows, "test_raises_after_scoring", "accuracy")["cache"] == "miss"
    assert _row(rows, "test_runs_after_the_error", "accuracy")["cache"] == "hit"

    _check_report(report, report_dir)
    _quiet_second_run_from_ini(pytester, monkeypatch)


def _check_report(report: dict[str, Any], report_dir: Path) -> None:
    assert report["schema"] == "reusespec-report" and report["version"] == 1
    env = report["environment"]
    assert env["torch"] == torch.__version__ and env["torchvision"] == torchvision.__version__
    assert env["seed"] == 0 and env["device"] == "auto"
    assert env["device_used"] == str(select_device("auto"))  # a serial run: this process's device
    assert report["summary"] == {
        "specs": 6,  # test_not_a_spec uses no reusespec fixture
        "passed": 2,
        "failed": 2,
        "skipped": 2,
        "error": 0,
        "scores": 4 * len(PROBE_METRICS),
    }
    specs = {s["nodeid"].split("::")[-1]: s for s in report["specs"]}
    assert "test_not_a_spec" not in specs
    assert {name: s["outcome"] for name, s in specs.items()} == {
        "test_transfers": "passed",
        "test_random_backbone_misses_the_bar": "failed",
        "test_raises_after_scoring": "failed",
        "test_runs_after_the_error": "passed",
        "test_missing_weights": "skipped",
        "test_missing_data": "skipped",
    }
    assert "assert" in specs["test_random_backbone_misses_the_bar"]["message"]
    assert "0.99" in specs["test_random_backbone_misses_the_bar"]["message"]
    assert "broke after scoring" in specs["test_raises_after_scoring"]["message"]
    assert "looked for" in specs["test_missing_weights"]["message"]
    assert "cifar-100-python" in specs["test_missing_data"]["message"]
    assert specs["test_missing_data"]["scores"] == []

    # Scores computed before the error are kept.
    errored = specs["test_raises_after_scoring"]["scores"]
    assert {s["metric"] for s in errored} == PROBE_METRICS
    for spec in specs.values():
        for score in spec["scores"]:
            assert {"value", "threshold", "op", "margin", "cache_hit", "passed"} <= set(score)
            if score["metric"] == "accuracy":
                assert score["ci_low"] <= score["value"] <= score["ci_high"]
            if score["threshold"] is None:
                assert score["op"] is None and score["margin"] is None
    missed = next(s for s in specs["test_random_backbone_misses_the_bar"]["scores"] if s["op"])
    assert (missed["op"], missed["threshold"], missed["passed"]) == (">=", 0.99, False)
    assert missed["margin"] == pytest.approx(missed["value"] - 0.99) and missed["margin"] < 0

    # Written atomically: no temporary file is left next to the report.
    assert [p.name for p in report_dir.iterdir() if p.name.startswith("reuse.json")] == ["reuse.json"]


def _quiet_second_run_from_ini(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """``reuse_cache_dir`` in the ini file, relative to it, from a subfolder, under ``-q``."""
    pytester.makeini("[pytest]\nreuse_cache_dir = reuse-cache\n")
    sub = pytester.mkdir("specs")
    (sub / "test_again.py").write_text(
        textwrap.dedent(
            """
            def test_warm(reuse):
                assert reuse.probe("zoo:digits-cnn", "mnist5k:5-9").accuracy >= 0.5

            def test_cold(reuse):
                assert reuse.probe("zoo:digits-cnn-random", "sklearn-digits").accuracy >= 0.1
            """
        )
    )
    monkeypatch.chdir(sub)
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=2)
    assert not any(PROGRESS in line for line in result.outlines), "progress is not shown under -q"
    rows = _table(result.outlines)
    assert {r["cache"] for r in rows if r["spec"] == "test_warm"} == {"hit"}
    assert {r["cache"] for r in rows if r["spec"] == "test_cold"} == {"miss"}
    assert not (sub / "reuse-cache").exists()


def test_core_library_imports_without_pytest() -> None:
    code = "import sys, reusespec, reusespec.session; sys.exit('pytest' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"the core imported pytest:\n{done.stderr}"


def test_collecting_specs_does_not_import_torch(tmp_path: Path) -> None:
    # The xdist controller only collects, schedules and reports: importing torch, torchvision
    # and scikit-learn there would add seconds to every parallel run for nothing.
    spec = tmp_path / "test_spec.py"
    spec.write_text(
        "def test_probe(reuse):\n    assert reuse.probe('zoo:digits-cnn', 'mnist5k:5-9').accuracy > 0.5\n"
    )
    code = (
        "import sys, pytest\n"
        f"code = pytest.main(['--co', '-q', '-p', 'no:cacheprovider', {str(spec)!r}])\n"
        "heavy = sorted({'torch', 'torchvision', 'sklearn', 'scipy.stats'} & set(sys.modules))\n"
        "print('heavy:', heavy)\n"
        "sys.exit(int(code) or bool(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 test collected" in done.stdout


def test_report_environment_names_the_versions_without_importing_torch() -> None:
    code = (
        "import json, sys\n"
        "from reusespec.reporting.document import environment\n"
        "env = environment()\n"
        "print(json.dumps([env['torch'], env['torchvision'], 'torch' in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [torch.__version__, torchvision.__version__, False]


def test_damaged_cache_entries_are_counted_in_the_summary_and_the_report(
    pytester: pytest.Pytester, warm_cache: Path
) -> None:
    """A truncated zoo checkpoint is rebuilt, and the run says so (terminal and JSON), never silently."""
    (checkpoint,) = (warm_cache / "zoo").glob("digits-cnn-random-*.safetensors")
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    pytester.makepyfile(
        test_specs="""
        def test_random_twin(reuse):
            assert reuse.probe("zoo:digits-cnn-random", "sklearn-digits").accuracy >= 0.5
        """
    )
    report = pytester.path / "report.json"
    result = pytester.runpytest(
        "-p", "no:xdist", f"--reuse-cache-dir={warm_cache}", f"--reuse-report={report}"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*damaged cache entries discarded and rebuilt: zoo checkpoints 1*"])
    document = json.loads(report.read_text())
    assert document["environment"]["cache_repairs"] == {"zoo checkpoints": 1}


def test_a_report_or_baseline_that_cannot_be_written_fails_the_run_with_the_cause(
    pytester: pytest.Pytester, warm_cache: Path
) -> None:
    """No plugin traceback and no green run when the report or baseline is not there to read."""
    pytester.makepyfile(
        test_specs="""
        def test_probe(reuse):
            assert reuse.probe("zoo:digits-cnn", "sklearn-digits").accuracy >= 0.5
        """
    )
    blocker = pytester.path / "not-a-folder"
    blocker.write_text("a file where the report's folder should be")
    result = pytester.runpytest(
        "-p",
        "no:xdist",
        f"--reuse-cache-dir={warm_cache}",
        f"--reuse-report={blocker / 'report.json'}",
        f"--reuse-save-baseline={blocker / 'baseline.json'}",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*reusespec report NOT written*not-a-folder*"])
    result.stdout.fnmatch_lines(["*reusespec baseline NOT written*not-a-folder*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_rank_agreement_with_missing_weights_skips_with_the_remedy(
    pytester: pytest.Pytester, warm_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing registry resource inside rank_agreement is a skip with its reason, as in every other call."""
    monkeypatch.setenv("TORCH_HOME", str(pytester.path / "empty-torch-home"))
    pytester.makepyfile(
        test_specs="""
        def test_agreement(reuse):
            backbones = ["zoo:digits-cnn", "torchvision:resnet18:IMAGENET1K_V1"]
            assert reuse.rank_agreement(backbones, "sklearn-digits").weighted_kendall_tau >= 0
        """
    )
    result = pytester.runpytest("-p", "no:xdist", "-rs", f"--reuse-cache-dir={warm_cache}")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*resnet18*"])
