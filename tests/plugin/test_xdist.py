"""Parallel runs under pytest-xdist: backbone groups, one report, one extraction per feature set.

xdist runs are expensive here (every worker imports torch), so there are three: a grouping run
with cheap specs, and the same small demo suite run serially and over two ``--tx`` gateways.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reusespec.pytest_plugin.xdist import group_name, is_backbone_string

pytest.importorskip("xdist")

GROUPING_SPECS = """
    import pytest

    DIGITS = "zoo:digits-cnn"


    def note(*backbones):
        return backbones  # specs here only name backbones; grouping is read from the source


    def test_literal(reuse):
        note("zoo:digits-cnn")


    def test_first_literal_wins(reuse):
        '''Compares with "zoo:digits-cnn-random" (a docstring is not read).'''
        note("mnist5k:5-9", "zoo:digits-cnn", "zoo:digits-cnn-random")


    def test_module_constant(reuse):
        note(DIGITS)


    @pytest.mark.parametrize("task", ["mnist5k:5-9", "sklearn-digits"])
    @pytest.mark.parametrize("backbone", ["zoo:digits-cnn", "zoo:digits-mlp"])
    def test_parametrized(reuse, backbone, task):
        note(backbone, "zoo:digits-cnn-random")


    @pytest.mark.reuse_backbone("zoo:digits-mlp")
    def test_marker():
        note(*["zoo:digits-" + name for name in ("mlp",)])


    def test_random_twin(reuse):
        note("zoo:digits-cnn-random")


    def test_random_twin_again(reuse):
        note("zoo:digits-cnn-random", "zoo:digits-cnn")


    @pytest.mark.xdist_group("mine")
    def test_own_group(reuse):
        note("zoo:digits-cnn")


    def test_no_backbone(reuse):
        note("mnist5k", "mnist5k:parity")


    def test_not_a_spec():
        note("file:///tmp/report.html")  # no reuse fixture: not grouped
"""

EXPECTED_GROUPS = {
    "test_literal": "zoo:digits-cnn",
    "test_first_literal_wins": "zoo:digits-cnn",
    "test_module_constant": "zoo:digits-cnn",
    "test_parametrized[zoo:digits-cnn-mnist5k:5-9]": "zoo:digits-cnn",
    "test_parametrized[zoo:digits-cnn-sklearn-digits]": "zoo:digits-cnn",
    "test_parametrized[zoo:digits-mlp-mnist5k:5-9]": "zoo:digits-mlp",
    "test_parametrized[zoo:digits-mlp-sklearn-digits]": "zoo:digits-mlp",
    "test_marker": "zoo:digits-mlp",
    "test_random_twin": "zoo:digits-cnn-random",
    "test_random_twin_again": "zoo:digits-cnn-random",
    "test_own_group": "mine",
    "test_no_backbone": None,
    "test_not_a_spec": None,
}


def test_loadgroup_keeps_the_specs_of_a_backbone_on_one_worker(
    pytester: pytest.Pytester, tmp_path: Path, zoo_cache: Path
) -> None:
    # The zoo the specs name, prebuilt: workers train what the specs mention before running them.
    shutil.copytree(zoo_cache / "zoo", tmp_path / "cache" / "zoo", ignore=shutil.ignore_patterns("*.lock"))
    pytester.makepyfile(test_grouping=textwrap.dedent(GROUPING_SPECS))
    recorder = pytester.inline_run(
        "-n",
        "2",
        "--dist",
        "loadgroup",
        "--reuse-cache-dir",
        str(tmp_path / "cache"),
        "-p",
        "no:cacheprovider",
    )
    reports = [r for r in recorder.getreports("pytest_runtest_logreport") if r.when == "call"]
    assert all(r.passed for r in reports), [r.nodeid for r in reports if not r.passed]
    groups: dict[str, str | None] = {}
    workers: dict[str | None, set[str]] = {}
    for report in reports:
        name = report.nodeid.split("::", 1)[1]
        base, _, group = name.partition("@")  # xdist appends the group to the node id
        groups[base] = group or None
        workers.setdefault(group or None, set()).add(report.node.gateway.id)
    assert groups == EXPECTED_GROUPS
    assert all(len(ids) == 1 for group, ids in workers.items() if group is not None), workers


@given(st.text(min_size=1, max_size=30))
def test_group_names_survive_xdists_node_id_suffix(rest: str) -> None:
    backbone = f"file:{rest}"
    nodeid = f"test_x.py::test_spec[{rest}]@{group_name(backbone)}"
    # xdist's loadgroup scheduler reads the group after the last '@', when it follows the last ']'.
    assert nodeid.rfind("@") > nodeid.rfind("]")
    assert nodeid.split("@")[-1] == group_name(backbone)
    assert group_name(backbone).startswith("file:")


def test_backbone_strings_are_registered_schemes_without_spaces() -> None:
    for text in ("zoo:digits-cnn", "torchvision:resnet18:none", "file:/w/model.pt?arch=zoo:digits-cnn"):
        assert is_backbone_string(text)
    for other in ("mnist5k:5-9", "sklearn-digits", "zoo:", "pkg.models:factory", "zoo: digits", 3):
        assert not is_backbone_string(other)


DEMO_SPECS = """
    def test_unseen_digits(reuse):
        assert reuse.probe("zoo:digits-cnn", "mnist5k:5-9?shots=20").accuracy >= 0.8


    def test_parity_reuses_the_same_features(reuse):
        assert reuse.probe("zoo:digits-cnn", "mnist5k:parity?shots=20").accuracy >= 0.6


    def test_random_init_misses_the_bar(reuse):
        assert reuse.probe("zoo:digits-cnn-random", "mnist5k:5-9?shots=20").accuracy >= 0.99


    def test_sklearn_digits(reuse):
        assert reuse.probe("zoo:digits-cnn", "sklearn-digits?shots=10").macro_f1 >= 0.5


    def test_dataset_not_here(reuse):
        reuse.probe("zoo:digits-cnn", "cifar10")
"""

TIMING_FIELDS = {"duration", "seconds", "cache_hit", "created", "environment"}


def _without_timings(value: Any) -> Any:
    """The report minus what differs between any two runs: timings, cache hits, environment, and
    object addresses in assertion messages (pytest shows ``<... object at 0x7f...>``)."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMING_FIELDS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    if isinstance(value, str):
        return re.sub(r" at 0x[0-9a-f]+>", " at 0x...>", value)
    return value


def _score_table(stdout: str) -> list[str]:
    """The summary table's lines without the secs and cache columns (cut at the column 'secs')."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"=+ reusespec scores =+", line))
    cut = lines[start + 1].index("secs")
    table = []
    for line in lines[start + 1 :]:
        if not line.strip() or line.startswith(("=", "reusespec")):
            break
        table.append(line[:cut].rstrip())
    return table


def _run_demo(pytester: pytest.Pytester, cache: Path, *args: str) -> tuple[dict[str, Any], list[str]]:
    report = cache.parent / "report.json"
    result = pytester.runpytest_subprocess(
        "--reuse-cache-dir",
        str(cache),
        "--reuse-data-dir",
        str(cache.parent.parent / "no-data"),  # one for both runs: the skip reason names it
        "--reuse-report",
        str(report),
        "-p",
        "no:cacheprovider",
        *args,
    )
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    return json.loads(report.read_text()), _score_table(result.stdout.str())


def _entries(cache: Path) -> set[str]:
    return {p.name for p in (cache / "features" / "entries").iterdir()}


def test_serial_and_parallel_runs_agree_and_extract_each_feature_set_once(
    pytester: pytest.Pytester, zoo_cache: Path, tmp_path: Path
) -> None:
    # The serial run keeps all its threads and each worker gets its share: small work runs on one
    # thread either way, so the scores must agree exactly.
    caches = {}
    for run in ("serial", "parallel"):
        caches[run] = tmp_path / run / "cache"
        shutil.copytree(zoo_cache / "zoo", caches[run] / "zoo", ignore=shutil.ignore_patterns("*.lock"))
    pytester.makepyfile(test_demo=textwrap.dedent(DEMO_SPECS))

    serial, serial_table = _run_demo(pytester, caches["serial"], "-p", "no:xdist")
    # Two workers in their own interpreters, as on two hosts sharing the cache directory.
    gateways = f"2*popen//python={sys.executable}"
    parallel, parallel_table = _run_demo(pytester, caches["parallel"], "--tx", gateways, "--dist", "load")

    assert _without_timings(parallel) == _without_timings(serial)
    assert parallel_table == serial_table
    assert len(serial["specs"]) == 5 and serial["summary"]["scores"] == sum(
        len(s["scores"]) for s in serial["specs"]
    )

    # Each feature set was extracted exactly once, whichever worker needed it first.
    assert _entries(caches["parallel"]) == _entries(caches["serial"])
    assert serial["environment"]["feature_extractions"] == len(_entries(caches["serial"]))
    assert parallel["environment"]["feature_extractions"] == len(_entries(caches["parallel"]))
    by_worker = parallel["environment"]["feature_extractions_by_worker"]
    assert set(by_worker) == {"gw0", "gw1"}
    assert sum(by_worker.values()) == len(_entries(caches["parallel"]))
