"""Repository-level pytest configuration.

The reusespec plugin itself is loaded through its ``pytest11`` entry point once the package
is installed (``pip install -e .``); nothing here is needed by users' reuse specs. This file
marks the repository root for pytest (rootdir and conftest discovery) and keeps generated
reports out of the source tree when the demo is run from here.
"""

from __future__ import annotations

import pytest


def pytest_report_header(config: pytest.Config) -> str | None:
    if config.pluginmanager.has_plugin("reusespec-plugin"):
        return None
    return "reusespec plugin NOT loaded: install the package first (pip install -e .)"
