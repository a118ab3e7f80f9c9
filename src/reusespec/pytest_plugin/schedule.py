"""Longest specs first under pytest-xdist's default ``--dist load``.

Reuse specs differ in cost by orders of magnitude (a fine-tune takes seconds, a probe on cached
features milliseconds). xdist hands tests out in collection order, so two long specs that sit
next to each other land on one worker and the others idle at the end of the run. The
controller therefore remembers how long each test took (``<cache>/timings.json``, written at the
end of every run that is not a worker) and, when a later run uses ``--dist load`` (what ``-n``
does by default), hands the tests out longest first, the first two per worker paired so that
each worker starts with a similar load (xdist keeps two tests queued on every worker). Without
timings, or under any other ``--dist`` mode, xdist schedules as it always does.
"""

from __future__ import annotations

import contextlib
import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

TIMINGS_FILE = "timings.json"
TIMINGS_FORMAT = 1
PLUGIN_NAME = "reusespec-schedule"


def longest_first(nodeids: Sequence[str], seconds: Mapping[str, float], workers: int) -> list[int]:
    """The order in which to hand out ``nodeids`` (indices into it): longest known first.

    Tests without a timing count as the median known one; ties keep collection order. The
    first ``2 * workers`` are interleaved so that worker ``w`` is sent the ``w``-th longest and
    the ``w``-th shortest of them (xdist sends each worker two tests to start with).
    """
    if not seconds:
        return list(range(len(nodeids)))
    typical = statistics.median(seconds.values())
    ranked = sorted(range(len(nodeids)), key=lambda i: -seconds.get(nodeids[i], typical))
    head = ranked[: 2 * workers]
    if len(head) < 2 * workers:
        return ranked
    paired = [i for w in range(workers) for i in (head[w], head[2 * workers - 1 - w])]
    return paired + ranked[2 * workers :]


def matched(nodeids: Sequence[str], timings: Mapping[str, float]) -> dict[str, float]:
    """The timings of ``nodeids``, matching ids that differ only in leading directories.

    Workers and the controller can see one test under ids relative to different root
    directories (``a/test_x.py::t`` and ``test_x.py::t``); the longest common tail wins.
    """
    by_tail: dict[str, float] = {}
    for key, seconds in timings.items():
        for tail in _tails(key):
            by_tail.setdefault(tail, seconds)  # longer tails come first: an exact id wins
    found = {}
    for nodeid in nodeids:
        for tail in _tails(nodeid):
            if tail in by_tail:
                found[nodeid] = by_tail[tail]
                break
    return found


def _tails(nodeid: str) -> list[str]:
    """``a/b/t.py::x``, ``b/t.py::x``, ``t.py::x``: the id without 0, 1, ... leading directories."""
    path, sep, rest = nodeid.partition("::")
    parts = path.split("/")
    return ["/".join(parts[i:]) + sep + rest for i in range(len(parts))]


def read_timings(cache_dir: Path) -> dict[str, float]:
    """The saved timings, or none where the file is missing or unreadable (it is only a hint)."""
    try:
        data = json.loads((cache_dir / TIMINGS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != TIMINGS_FORMAT:
        return {}
    seconds = data.get("seconds", {})
    return {str(k): float(v) for k, v in seconds.items() if isinstance(v, int | float)}


def write_timings(cache_dir: Path, seconds: Mapping[str, float]) -> None:
    """Merge ``seconds`` into the saved timings (atomically; a failure to write is ignored)."""
    from reusespec.reporting.document import write_json_atomic

    merged = {**read_timings(cache_dir), **seconds}
    with contextlib.suppress(OSError):  # a read-only cache: scheduling falls back to xdist's order
        write_json_atomic(cache_dir / TIMINGS_FILE, {"format": TIMINGS_FORMAT, "seconds": merged})


class TimingsRecorder:
    """On the controller (or a serial run): each test's call time.

    The call phase only: a worker's first test also sets up what the whole session shares (the
    session fixture imports torch), which says nothing about that test.
    """

    def __init__(self, config: pytest.Config, cache_dir: Path, ran_specs: Callable[[], bool]) -> None:
        self.config = config
        self.cache_dir = cache_dir
        self.ran_specs = ran_specs
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.seconds[report.nodeid] = float(report.duration)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # Only runs with reuse specs: a run of other tests leaves no cache directory behind.
        if self.ran_specs() and not self.config.option.collectonly:
            write_timings(self.cache_dir, self.seconds)

    @pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's own (the first answer wins)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getvalue("dist") != "load":
            return None
        timings = read_timings(self.cache_dir)
        if not timings:
            return None
        return make_longest_first_scheduling(config, log, timings)


def make_longest_first_scheduling(config: pytest.Config, log: Any, timings: Mapping[str, float]) -> Any:
    """xdist's LoadScheduling, handing tests out in :func:`longest_first` order."""
    from xdist.scheduler import LoadScheduling

    class LongestFirstScheduling(LoadScheduling):
        _ordered = False

        def _send_tests(self, node: Any, num: int) -> None:
            if not self._ordered:  # the first call: pending holds the whole collection, in order
                assert self.collection is not None
                order = longest_first(self.collection, matched(self.collection, timings), len(self.nodes))
                self.pending[:] = [self.pending[i] for i in order]
                self._ordered = True
            super()._send_tests(node, num)

    return LongestFirstScheduling(config, log)


def register(config: pytest.Config, cache_dir: Path, ran_specs: Callable[[], bool]) -> None:
    """Called from ``pytest_configure`` (:mod:`reusespec.pytest_plugin`); not on xdist workers."""
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(TimingsRecorder(config, cache_dir, ran_specs), PLUGIN_NAME)
