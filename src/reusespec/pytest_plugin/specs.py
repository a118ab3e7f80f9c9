"""What makes a test a reuse spec, and where a spec's scores are kept while it runs."""

from __future__ import annotations

import pytest

from reusespec.results import ScoreRecord

__all__ = ["PROPERTY", "RECORDS_KEY", "REUSE_FIXTURES", "is_reuse_spec"]

PROPERTY = "reusespec.scores"  # the user property that carries a spec's scores to the controller
REUSE_FIXTURES = frozenset({"reuse", "reuse_session", "reuse_device"})
RECORDS_KEY = pytest.StashKey[list[ScoreRecord]]()  # the scores a spec recorded, on its item


def is_reuse_spec(item: pytest.Item) -> bool:
    """A reuse spec is a test that uses one of reusespec's fixtures."""
    return bool(REUSE_FIXTURES.intersection(getattr(item, "fixturenames", ())))
