"""The fixtures specs use: ``reuse``, ``reuse_session`` and ``reuse_device``.

The facade and the session are imported when a spec first needs them, so that loading the
plugin does not import torch: the xdist controller only collects, schedules and reports, and
should start in a fraction of the time a worker needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from reusespec.pytest_plugin.options import strict_mode
from reusespec.pytest_plugin.specs import RECORDS_KEY
from reusespec.pytest_plugin.state import reuse_plugin
from reusespec.results import ScoreRecord

if TYPE_CHECKING:
    from reusespec.session import Reuse, ReuseSession

__all__ = ["new_facade", "reuse", "reuse_device", "reuse_session"]


def new_facade(session: ReuseSession, records: list[ScoreRecord], strict: bool = False) -> Reuse:
    """A :class:`~reusespec.session.Reuse` whose missing weights or data skip the spec with the reason.

    ``strict`` (``--reuse-strict``, on with a baseline): they fail it instead, so that a gate cannot
    pass on a resource this machine lacks.
    """
    from reusespec.errors import MissingResourceError, ResourceUnavailable
    from reusespec.session import Reuse

    class PytestReuse(Reuse):
        def _unavailable(self, exc: ResourceUnavailable) -> None:
            if strict:
                raise MissingResourceError(
                    f"{exc} [--reuse-strict: a gated run fails on a missing resource instead of "
                    "skipping; provide it, or pass --reuse-no-strict to let it skip]"
                ) from exc
            # Reported at the spec's location, not this line (as pytest does for a skip in a fixture).
            raise pytest.skip.Exception(str(exc), _use_item_location=True)

    return PytestReuse(session, records)


@pytest.fixture(scope="session")
def reuse_session(request: pytest.FixtureRequest) -> ReuseSession:
    """The process's :class:`ReuseSession` (backbones, tasks and features shared by all specs)."""
    return reuse_plugin(request.config).session


@pytest.fixture(scope="session")
def reuse_device(reuse_session: ReuseSession) -> Any:
    """The torch device of this process: a GPU per xdist worker when there are GPUs, else the CPU."""
    return reuse_session.device


@pytest.fixture
def reuse(request: pytest.FixtureRequest, reuse_session: ReuseSession) -> Reuse:
    """The facade a spec uses: ``reuse.probe(backbone, task)`` and friends. Scores go to the report."""
    records: list[ScoreRecord] = []
    request.node.stash[RECORDS_KEY] = records
    return new_facade(reuse_session, records, strict=strict_mode(request.config))
