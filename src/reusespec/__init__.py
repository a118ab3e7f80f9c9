"""reusespec: is this backbone still reusable? Transfer, domain shift and cost, as pytest specs.

The names below are imported on first use, so that ``import reusespec.stats`` (numpy only)
does not pay for torch and torchvision.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Backbone": "reusespec.backbones.base",
    "InputSpec": "reusespec.backbones.base",
    "register_scheme": "reusespec.backbones.registry",
    "resolve_backbone": "reusespec.backbones.registry",
    "CheckpointError": "reusespec.errors",
    "MissingDatasetError": "reusespec.errors",
    "MissingWeightsError": "reusespec.errors",
    "ResourceUnavailable": "reusespec.errors",
    "ReuseSpecError": "reusespec.errors",
    "UnsafeCheckpointError": "reusespec.errors",
    "Metric": "reusespec.results",
    "Score": "reusespec.results",
    "ProbeResult": "reusespec.results",
    "ScoreRecord": "reusespec.results",
    "Reuse": "reusespec.session",
    "ReuseConfig": "reusespec.config",
    "ReuseSession": "reusespec.session",
    "Split": "reusespec.tasks.base",
    "Task": "reusespec.tasks.base",
    "load_task": "reusespec.tasks.registry",
}

__all__ = [
    "Backbone",
    "CheckpointError",
    "InputSpec",
    "Metric",
    "MissingDatasetError",
    "MissingWeightsError",
    "ProbeResult",
    "ResourceUnavailable",
    "Reuse",
    "ReuseConfig",
    "ReuseSession",
    "ReuseSpecError",
    "Score",
    "ScoreRecord",
    "Split",
    "Task",
    "UnsafeCheckpointError",
    "__version__",
    "load_task",
    "register_scheme",
    "resolve_backbone",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'reusespec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from reusespec.backbones.base import Backbone, InputSpec
    from reusespec.backbones.registry import register_scheme, resolve_backbone
    from reusespec.config import ReuseConfig
    from reusespec.errors import (
        CheckpointError,
        MissingDatasetError,
        MissingWeightsError,
        ResourceUnavailable,
        ReuseSpecError,
        UnsafeCheckpointError,
    )
    from reusespec.results import Metric, ProbeResult, Score, ScoreRecord
    from reusespec.session import Reuse, ReuseSession
    from reusespec.tasks.base import Split, Task
    from reusespec.tasks.registry import load_task
