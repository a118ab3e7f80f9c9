"""reusespec's pytest plugin (the ``pytest11`` entry point): hooks only, each delegating.

* :mod:`.options`: every ``--reuse-*`` option and ini value, parsed when given;
* :mod:`.state`: the per-process session, the specs' outcomes, the score table and JSON report;
* :mod:`.fixtures`: ``reuse``, ``reuse_session``, ``reuse_device``;
* :mod:`.gate`: the release gate in pytest (the rules are :mod:`reusespec.gate`'s);
* :mod:`.schedule`: longest specs first under ``-n``;
* :mod:`.xdist`: backbone groups, the zoo's share per worker, workers' extraction counts;
* :mod:`.suite`: the zero-code standard suite as pytest items.
"""

from __future__ import annotations

from typing import Any

import pytest

from reusespec.pytest_plugin import completeness, gate, schedule, xdist
from reusespec.pytest_plugin.fixtures import reuse, reuse_device, reuse_session
from reusespec.pytest_plugin.options import add_options
from reusespec.pytest_plugin.state import PLUGIN_NAME, ReusePlugin, attach_scores, free_exit

__all__ = ["reuse", "reuse_device", "reuse_session"]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    free_exit()
    if hasattr(config, "workerinput"):
        from reusespec.devices import configure_worker_threads

        configure_worker_threads()  # n workers x all cores would oversubscribe the CPU
    state = ReusePlugin(config)
    config.pluginmanager.register(state, PLUGIN_NAME)
    schedule.register(config, state.settings.cache_dir, lambda: bool(state.outcomes))
    completeness.register(config, state)
    gate.register(config, state)
    xdist.register(config, state.settings.cache_dir, lambda: int(getattr(state.started, "extractions", 0)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    attach_scores(item, report)
    return report
