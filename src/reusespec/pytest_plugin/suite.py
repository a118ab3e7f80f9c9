"""The zero-code standard suite as pytest items (``--reuse-backbone SPEC``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reusespec.pytest_plugin.fixtures import new_facade
from reusespec.pytest_plugin.options import strict_mode
from reusespec.pytest_plugin.specs import RECORDS_KEY
from reusespec.pytest_plugin.state import reuse_plugin
from reusespec.results import ScoreRecord

__all__ = ["StandardSuiteItem", "add_suite_items"]


class StandardSuiteItem(pytest.Item):
    """One check of the zero-code standard suite (``--reuse-backbone SPEC``)."""

    # Marks the item as a reuse spec for the report (the plugin recognises specs by these).
    fixturenames = ("reuse",)
    # Checks without a limit still record scores: against a baseline, all of them gate.
    gates_every_score = True

    def __init__(self, *, check: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self._records: list[ScoreRecord] = []

    def setup(self) -> None:
        self._records = []
        self.stash[RECORDS_KEY] = self._records
        self._reuse = new_facade(
            reuse_plugin(self.config).session, self._records, strict=strict_mode(self.config)
        )

    def runtest(self) -> None:
        self.check.run(self._reuse)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"reusespec standard suite: {self.check.description}"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, AssertionError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)


def add_suite_items(
    session: pytest.Session,
    config: pytest.Config,
    items: list[pytest.Item],
    backbone: str,
    setting: Callable[[str], Any],
) -> None:
    """Add the standard suite's checks on ``backbone``; without paths given, they are the whole run."""
    from reusespec.standard_suite import SuiteConfig, standard_checks

    suite = SuiteConfig.from_settings(backbone, config.getoption("reuse_suite_task") or [], setting)
    new = [
        StandardSuiteItem.from_parent(
            session, name=check.name, nodeid=f"reusespec-standard-suite::{check.name}", check=check
        )
        for check in standard_checks(suite)
    ]
    if config.args_source != pytest.Config.ArgsSource.ARGS and items:
        # No paths given: the standard suite is the whole run (the user's specs are not it).
        config.hook.pytest_deselected(items=list(items))
        items.clear()
    items.extend(new)
