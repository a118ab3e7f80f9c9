"""Fuzzed backbone and task strings: every failure is a ReuseSpecError with a message, nothing hangs.

Each example is time-boxed (an alarm turns a hang into a failure). Strings whose module part names
an importable top-level module are skipped: a ``module:callable`` string runs that callable, and
fuzzing must not call ``os:fork``. ``REUSESPEC_FUZZ_EXAMPLES`` raises the example count for a longer
campaign; the counts of each run are printed (``-s`` shows them).
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reusespec.backbones.registry import BackboneContext, resolve_backbone
from reusespec.errors import ReuseSpecError
from reusespec.tasks.registry import load_task

EXAMPLES = int(os.environ.get("REUSESPEC_FUZZ_EXAMPLES", "120"))
SECONDS_PER_EXAMPLE = 20  # ordinary examples take well under a second; a hang never ends
KNOWN_SCHEMES = {"zoo", "torchvision", "file"}

odd_text = st.lists(
    st.sampled_from([*"abcxyzS019_-.:/?=&~ ,٥٩é\x00\t%", "..", "~nosuchuser/", "arch=", "zoo:"]),
    max_size=12,
).map("".join)


def calls_real_code(spec: str) -> bool:
    """Whether ``spec`` (or an ``arch=`` inside it) names an importable module's callable."""
    for candidate in re.findall(r"([^:?&=/]+):", spec):
        top = candidate.split(".")[0]
        if top in KNOWN_SCHEMES or not top.isidentifier():
            continue
        try:
            if importlib.util.find_spec(top) is not None:  # top level only: nothing is imported
                return True
        except (ValueError, ImportError):
            continue
    return False


backbone_strings = st.one_of(
    odd_text,
    st.builds(
        lambda scheme, rest: f"{scheme}:{rest}",
        st.sampled_from(["zoo", "torchvision", "file", "", ".", "mypkg.mood", "x..y", "_", "1a"]),
        odd_text,
    ),
    st.builds(lambda arch: f"file:weights.pt?arch={arch}", st.one_of(odd_text, st.just("zoo:digits-cnn"))),
    st.builds(
        lambda name: f"torchvision:{name}", st.sampled_from(["resnet18:NOPE", "nosuchnet", ":", "resnet18:"])
    ),
)

task_strings = st.builds(
    lambda name, selector, options: name + (f":{selector}" if selector is not None else "") + options,
    st.sampled_from(["mnist5k", "sklearn-digits", "cifar10", "folder:", "folder:missing", "nosuch", ""]),
    st.one_of(
        st.none(),
        odd_text,
        st.sampled_from(["5-9", "0-30000000", "٥-٩", "9-5", "parity", "0,0", "3", "0-1"]),
    ),
    st.one_of(
        st.just(""),
        st.builds(
            lambda pairs: "?" + "&".join(f"{k}={v}" for k, v in pairs),
            st.lists(
                st.tuples(
                    st.sampled_from(["shots", "val", "size", "foo"]),
                    st.one_of(
                        st.sampled_from(["0", "1", "5", "0.0001", "0.2", "1e999", "nan", "-1", "٥", "1_0"]),
                        odd_text,
                    ),
                ),
                max_size=3,
            ),
        ),
    ),
)


@contextmanager
def time_box(seconds: int, what: str) -> Iterator[None]:
    def hung(signum: int, frame: object) -> None:
        raise AssertionError(f"{what!r} was still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def outcome(call: object, spec: str, counts: Counter[str]) -> None:
    """Run ``call``; count how it ended; anything but success or a ReuseSpecError with a message fails."""
    with time_box(SECONDS_PER_EXAMPLE, spec):
        try:
            call()  # type: ignore[operator]
        except ReuseSpecError as exc:
            counts[type(exc).__name__] += 1
            assert str(exc).strip(), f"{spec!r}: {type(exc).__name__} without a message"
            return
        except Exception as exc:
            counts[f"NOT A ReuseSpecError: {type(exc).__name__}"] += 1
            raise AssertionError(f"{spec!r} raised {type(exc).__name__}: {exc}") from exc
    counts["ok"] += 1


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory with one small real checkpoint (``weights.pt``) for ``?arch=``."""
    from reusespec.backbones.zoo import DigitsCNN

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    torch.save(DigitsCNN(16).state_dict(), tmp_path / "weights.pt")
    return tmp_path


def report(name: str, counts: Counter[str]) -> None:
    total = sum(counts.values())
    print(f"\n{name}: {total} examples; " + ", ".join(f"{k}={v}" for k, v in counts.most_common()))


def test_fuzzed_backbone_strings_fail_only_with_reusespec_errors(workdir: Path) -> None:
    counts: Counter[str] = Counter()
    context = BackboneContext(cache_dir=workdir / "cache")

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
    @given(spec=backbone_strings)
    def check(spec: str) -> None:
        assume(not calls_real_code(spec))
        outcome(lambda: resolve_backbone(spec, context), spec, counts)

    try:
        check()
    finally:
        report("backbone strings", counts)
    assert sum(counts.values()) > 0 and not any(k.startswith("NOT") for k in counts)


def test_fuzzed_task_strings_fail_only_with_reusespec_errors(workdir: Path) -> None:
    counts: Counter[str] = Counter()
    no_datasets = workdir / "no-datasets"

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(spec=task_strings)
    def check(spec: str) -> None:
        outcome(lambda: load_task(spec, data_dir=no_datasets), spec, counts)

    try:
        check()
    finally:
        report("task strings", counts)
    assert sum(counts.values()) > 0 and not any(k.startswith("NOT") for k in counts)
