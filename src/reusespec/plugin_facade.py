"""The facade specs get from the ``reuse`` fixture (imported when a spec first needs it).

Kept apart from :mod:`reusespec.plugin` so that loading the plugin does not import torch: the
xdist controller only collects, schedules and reports, and should start in a fraction of the
time a worker needs.
"""

from __future__ import annotations

import pytest

from reusespec.errors import ResourceUnavailable
from reusespec.session import Reuse

__all__ = ["PytestReuse", "Reuse"]


class PytestReuse(Reuse):
    """The facade for specs: missing weights or data skip the spec with the reason."""

    def _unavailable(self, exc: ResourceUnavailable) -> None:
        # Reported at the spec's location, not this line (as pytest does for a skip in a fixture).
        raise pytest.skip.Exception(str(exc), _use_item_location=True)
