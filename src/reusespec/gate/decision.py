"""A spec's gate decision from its runs: thresholds over seeds, then the baseline.

The pytest plugin gives :func:`judge_over_seeds` the spec's first run and a way to replay it with
another seed, and :func:`compare_with_baseline` the spec's scores and the baseline's; both return
plain data the plugin turns into a pytest outcome and the report's ``gate`` entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reusespec.across_seeds import aggregate_records
from reusespec.gate.baseline import Comparison, check_spec_compatible, compare_score, match_scores
from reusespec.gate.rules import SeedRun, is_threshold_failure, threshold_verdict, worst
from reusespec.gate.sequential import plan_seeds, run_sequential
from reusespec.gate.settings import SpecSettings
from reusespec.gate.spread import spread_of, widen
from reusespec.gate.tracking import noise_of, tracked_reason
from reusespec.results import ScoreRecord
from reusespec.stats import Verdict

__all__ = ["BaselineJudgement", "SeedJudgement", "compare_with_baseline", "judge_over_seeds", "pairs_to_gate"]


@dataclass
class SeedJudgement:
    """The verdict on a spec's thresholds, over the seeds it ran with."""

    runs: list[SeedRun]
    records: list[ScoreRecord]  # one per score: the mean over the runs when there are several
    verdict: Verdict
    lines: list[str] = field(default_factory=list)
    confidence: float | None = None  # per look; None when the spec could not be judged
    crashed: bool = False

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in self.runs]

    @property
    def own_failure_only(self) -> bool:
        """The spec's own assert failed, once, and the gate has nothing to add to it."""
        first = self.runs[0]
        return self.verdict is Verdict.FAIL and first.error is not None and len(self.runs) == 1


def judge_over_seeds(
    first: SeedRun, replay: Callable[[int], SeedRun], spec: SpecSettings, confidence: float
) -> SeedJudgement:
    """Replay the spec as its settings ask (``spec.seeds``, more while inconclusive) and judge it.

    A spec that crashed, or failed an assert on something that is not a score, is not replayed
    and FAILs as it is. With a seed budget the first look already needs two seeds: one seed
    shows the test-set noise only, and a verdict on it would ignore the noise seeds were asked for.
    """
    judgement = SeedJudgement(
        [first], list(first.records), Verdict.PASS if first.error is None else Verdict.FAIL
    )
    judgement.crashed = first.crashed
    if first.error is not None and not is_threshold_failure(first):
        return judgement
    initial = max(2, spec.seeds) if spec.sequential else spec.seeds
    plan = plan_seeds(initial, spec.max_seeds if spec.sequential else initial, confidence)
    judgement.confidence = plan.per_look_confidence

    def judge(runs: list[SeedRun]) -> tuple[Verdict, list[str]]:
        if len(runs) > 1:
            judgement.records = aggregate_records(
                [r.records for r in runs], [r.seed for r in runs], confidence
            )
        return threshold_verdict(runs, judgement.records, spec.verdicts, plan.per_look_confidence)

    judgement.verdict, judgement.lines = run_sequential(
        plan, judgement.runs, lambda index: replay(first.seed + index), judge
    )
    return judgement


@dataclass
class BaselineJudgement:
    """A spec's scores against its baseline: ``state`` is compared, refused or no baseline."""

    verdict: Verdict
    state: str
    comparisons: list[Comparison] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def pairs_to_gate(
    baseline_scores: Sequence[Mapping[str, Any]], scores: Sequence[Mapping[str, Any]]
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """The (baseline, current) score pairs the baseline gates: present on both sides, finite before."""
    return [
        (old, new)
        for old, new in match_scores(baseline_scores, scores)
        if old is not None and new is not None and _finite(old.get("value"))
    ]


def compare_with_baseline(
    base: Mapping[str, Any] | None,
    receipt: Mapping[str, Any],
    scores: Sequence[Mapping[str, Any]],
    spec: SpecSettings,
    confidence: float,
) -> BaselineJudgement:
    """Compare a spec's scores (dicts with ``examples``) with its baseline entry, if it has one."""
    if base is None:
        return BaselineJudgement(Verdict.PASS, "no baseline for this spec")
    problems = check_spec_compatible(base.get("receipt", {}), receipt)
    if problems:
        line = "baseline refused: " + "; ".join(problems) + " (save a new baseline with these settings)"
        return BaselineJudgement(Verdict.FAIL, "refused", lines=[line])
    comparisons = []
    for old, new in pairs_to_gate(base.get("scores", []), scores):
        tolerance = widen(spec.tolerance(str(new["metric"])), float(old["value"]), spread_of(old))
        comparison = compare_score(
            old,
            new,
            tolerance,
            current_examples=new.get("examples"),
            interval_verdicts=spec.verdicts == "interval",
            confidence=confidence,
        )
        comparison.tracked = tracked_reason(old, new, gate_all=spec.gate_all, gate_metrics=spec.gate_metrics)
        noise = noise_of(new)
        if comparison.tracked is None and comparison.verdict is Verdict.FAIL and noise is not None:
            comparison.verdict = Verdict.INCONCLUSIVE  # a busy machine could have made it slow
            comparison.message = (
                "INCONCLUSIVE: "
                + comparison.message.partition(": ")[2]
                + (f"; the machine was too noisy to decide ({noise})")
            )
        comparisons.append(comparison)
    gated = [c for c in comparisons if c.tracked is None]
    return BaselineJudgement(
        worst(c.verdict for c in gated),
        "compared",
        comparisons,
        [c.message for c in gated if c.verdict is not Verdict.PASS],
    )
