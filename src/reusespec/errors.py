"""Errors raised by reusespec.

Every error says what went wrong and how to fix it. ``ResourceUnavailable`` marks a
missing *external* resource (weights, a dataset) that the user may simply not have on
this machine: the pytest plugin turns it into a skip with the message as the reason,
while every other error fails the spec.
"""

from __future__ import annotations


class ReuseSpecError(Exception):
    """Base class of every error reusespec raises on purpose."""


class ResourceUnavailable(ReuseSpecError):
    """Weights or data that are not on this machine (and may not be downloaded)."""


class MissingWeightsError(ResourceUnavailable):
    """A backbone's weights file was not found where it was looked for."""


class MissingDatasetError(ResourceUnavailable):
    """A dataset was not found where it was looked for."""


class UnknownBackboneError(ReuseSpecError, ValueError):
    """A backbone string that no registered scheme understands."""


class UnknownTaskError(ReuseSpecError, ValueError):
    """A task string that names no known task."""


class CheckpointError(ReuseSpecError):
    """A checkpoint that cannot be read: truncated, corrupt, or not matching the architecture."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle checkpoint that would need to run code to load."""


class TaskError(ReuseSpecError, ValueError):
    """A task that cannot be used as asked (empty split, bad class subset, ...)."""


class TrainingDivergedError(ReuseSpecError):
    """Training produced a non-finite loss."""


class StatsError(ReuseSpecError, ValueError):
    """Inputs that a statistic cannot be computed from (empty, non-finite, too few seeds, ...)."""


class BaselineError(ReuseSpecError, ValueError):
    """A baseline file that cannot be read or used; the message says why and what to do."""


class GateSettingsError(ReuseSpecError, ValueError):
    """Gate settings that contradict each other or lie outside what they accept."""


class MissingResourceError(ReuseSpecError):
    """A resource this machine lacks, under ``--reuse-strict``: fails the spec instead of skipping it."""


class SuiteError(ReuseSpecError, ValueError):
    """A standard-suite setting that cannot be used."""


class MarkerError(ReuseSpecError, ValueError):
    """A ``reuse_backbone`` marker without a backbone string."""


class GateFailure(ReuseSpecError, AssertionError):
    """A spec the gate failed: a verdict over seeds or intervals, a regression, a refused baseline."""


class Inconclusive(ReuseSpecError, AssertionError):
    """A spec whose interval straddles its threshold (and ``--reuse-inconclusive block``)."""


class ReuseGateWarning(UserWarning):
    """A spec with severity ``warn`` (or an inconclusive one under ``--reuse-inconclusive warn``).

    A warning, not an error: the one public class here that does not subclass ReuseSpecError.
    """


class ModalityMismatchError(ReuseSpecError, TypeError):
    """A task whose examples (images, texts) are not what the backbone takes."""
