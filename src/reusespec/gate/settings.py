"""The gate's settings: the run's (from options) and one spec's (the run's, overridden by markers).

Plain data, checked here, so that a wrong value says which setting and what it accepts wherever
it came from (an option, an ini value, a marker).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from reusespec.errors import GateSettingsError
from reusespec.gate.baseline import Tolerance, default_tolerance
from reusespec.gate.rules import VERDICT_MODES, Severity
from reusespec.gate.swaps import parse_swap
from reusespec.gate.swaps import parse_swaps as read_swaps

__all__ = [
    "GATED_SCORES",
    "INCONCLUSIVE_MODES",
    "GateSettings",
    "GateSettingsError",
    "SpecSettings",
    "parse_swaps",
    "spread_references",
]

INCONCLUSIVE_MODES = ("block", "warn")
# Which scores a baseline gates: those a spec asserted (and a reuse_gate marker names), or all.
GATED_SCORES = ("asserted", "all")


@dataclass
class GateSettings:
    """The run's gate options."""

    verdicts: str = "off"
    confidence: float = 0.95
    seeds: int = 1
    max_seeds: int = 1
    inconclusive: str = "block"
    baseline: Path | None = None
    save_baseline: Path | None = None
    baseline_spread: int = 0  # extra seeds a saved baseline measures each score's spread over
    # reference checkpoints of equal quality (OLD -> NEWs) whose scores give the spread instead
    spread_backbones: dict[str, list[str]] = field(default_factory=dict)
    markdown: Path | None = None
    html: Path | None = None
    backbone: str | None = None
    swaps: dict[str, str] = field(default_factory=dict)
    subject_swap: str | None = None
    strict: bool = False
    gate_scores: str = "asserted"

    def check(self) -> None:
        problems = []
        if self.verdicts not in VERDICT_MODES:
            problems.append(f"verdicts must be one of {VERDICT_MODES}, got {self.verdicts!r}")
        if self.inconclusive not in INCONCLUSIVE_MODES:
            problems.append(f"inconclusive must be block or warn, got {self.inconclusive!r}")
        if self.seeds < 1:
            problems.append(f"--reuse-seeds must be at least 1, got {self.seeds}")
        if self.max_seeds < self.seeds:
            problems.append(
                f"--reuse-max-seeds ({self.max_seeds}) must be at least --reuse-seeds ({self.seeds})"
            )
        if self.baseline_spread < 0:
            problems.append(f"--reuse-baseline-spread must be at least 0, got {self.baseline_spread}")
        if any(len(news) < 2 for news in self.spread_backbones.values()):
            problems.append(
                "--reuse-baseline-spread-backbone needs at least two reference checkpoints per backbone "
                "(a spread needs two values)"
            )
        if self.gate_scores not in GATED_SCORES:
            problems.append(f"--reuse-gate-scores must be one of {GATED_SCORES}, got {self.gate_scores!r}")
        if not 0.0 < self.confidence < 1.0:
            problems.append(f"--reuse-confidence must lie in (0, 1), got {self.confidence}")
        if problems:
            raise GateSettingsError("reusespec gate: " + "; ".join(problems))


def parse_swaps(values: Iterable[str]) -> tuple[dict[str, str], str | None]:
    """``--reuse-swap-backbone`` values: ``OLD=NEW`` pairs, and the one ``NEW`` without ``OLD=``.

    Backbone strings may contain ``=`` and ``?``: :func:`reusespec.gate.swaps.parse_swap` splits
    at the ``=`` with a complete backbone string on each side, or refuses an ambiguous value.
    """
    swaps: dict[str, str] = {}
    subject: str | None = None
    for swap in read_swaps(values):
        if swap.old is None:
            subject = swap.new
        else:
            swaps[swap.old] = swap.new
    return swaps, subject


def spread_references(values: Iterable[str]) -> dict[str, list[str]]:
    """``--reuse-baseline-spread-backbone OLD=NEW`` values: OLD -> its reference checkpoints, in order."""
    references: dict[str, list[str]] = {}
    for swap in map(parse_swap, values):  # OLD repeats: one reference per value
        if swap.old is None:
            raise GateSettingsError(
                f"--reuse-baseline-spread-backbone {swap.new!r}: give OLD=NEW, the backbone the specs "
                "load and a checkpoint of equal quality to run in its place"
            )
        references.setdefault(swap.old, []).append(swap.new)
    return references


@dataclass
class SpecSettings:
    """The gate settings of one spec: the run's, overridden by its markers."""

    severity: str
    verdicts: str
    seeds: int
    max_seeds: int
    tolerance_all: Tolerance | None = None
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    gate_all: bool = False  # gate every score against the baseline, not only the asserted ones
    gate_metrics: frozenset[str] = frozenset()  # metrics gated although not asserted (reuse_gate)

    @classmethod
    def of_run(cls, run: GateSettings) -> SpecSettings:
        return cls(
            Severity.BLOCK.value, run.verdicts, run.seeds, run.max_seeds, gate_all=run.gate_scores == "all"
        )

    def tolerance(self, metric: str) -> Tolerance:
        return self.tolerances.get(metric) or self.tolerance_all or default_tolerance(metric)

    @property
    def sequential(self) -> bool:
        """Whether an inconclusive spec gets more seeds (interval verdicts with a seed budget)."""
        return self.verdicts == "interval" and self.max_seeds > self.seeds
