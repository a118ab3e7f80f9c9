"""Replaying the recorded runs of ``bench_gate`` through the gate: its error rates, per gate rule.

Every decision is :func:`reusespec.gate.decision.compare_with_baseline` at default settings on a
baseline made of recorded runs, as ``--reuse-save-baseline`` would store it. The rules:

* ``spread``: asserted scores gated, the baseline saved with ``--reuse-baseline-spread 10`` (each
  score's spread over its run and the runs at the next 10 seeds, stepping as the plugin does);
* ``default``: asserted scores gated, the baseline saved without it (a score the spec averaged
  over seeds still carries the spread of its own seeds);
* ``spread-interval``: as ``spread``, with ``--reuse-verdicts interval``;
* ``all``: every score gated, measured costs whatever machine measured them (the gate before
  this version), baseline without spread;
* ``references`` (retrained candidates only): the baseline saved with
  ``--reuse-baseline-spread-backbone`` and retrains 1-10 as its reference checkpoints, judging
  retrains 11-20.

A replay *fails the run* when the gate fails or blocks (inconclusive) a spec, or a spec's own
assert fails: pytest's exit code would then be 1.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

RULES = {
    "spread": ("asserted", "off", True),
    "default": ("asserted", "off", False),
    "spread-interval": ("asserted", "interval", True),
    "all": ("all", "off", False),
}
REFERENCE_RETRAINS = range(1, 11)
CANDIDATE_RETRAINS = range(11, 21)
SPREAD_SEEDS = 10
BASELINE_SEEDS = (0, 51)
CANDIDATE_SEEDS = range(106, 206)  # few-shot windows end at 209; none meets a baseline's
UNSEEN = "reuse_specs/test_demo_transfer.py::test_digits_cnn_transfers_to_unseen_digits"

Runs = dict[int, dict[str, Any]]


def _stride(scores: list[dict[str, Any]]) -> int:
    """Seeds one run of the spec uses: 1, or k for a spec that averages k seeds itself."""
    return max((len(s.get("seed_values") or [0]) for s in scores), default=1)


def _as_record(score: dict[str, Any]) -> SimpleNamespace:
    """A stored score as the spread functions read records, named by its role (as the plugin does)."""
    keys = ("task", "strategy", "metric", "value")
    return SimpleNamespace(
        **{k: score[k] for k in keys}, backbone=score.get("role") or score["backbone"], extra={}
    )


def _with_spread(scores: list[dict[str, Any]], runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """``scores`` with each one's spread over its values in ``runs``, as the plugin stores it."""
    from reusespec.gate.spread import spreads_over_runs

    spreads = spreads_over_runs([_as_record(s) for s in scores], [[_as_record(s) for s in r] for r in runs])
    return [
        {**s, "spread": measured.as_dict()} if measured is not None else s
        for s, measured in zip(scores, spreads, strict=True)
    ]


def baseline_at(healthy: Runs, seed: int, spread: bool, spread_seeds: int) -> dict[str, list[dict[str, Any]]]:
    """The baseline a save at ``seed`` writes: every spec's scores, with their seed spread if asked."""
    baseline = {}
    for nodeid, run in healthy[seed]["runs"].items():
        scores = run["scores"]
        if spread:
            stride = _stride(scores)
            later = [healthy[seed + stride * i]["runs"][nodeid]["scores"] for i in range(1, spread_seeds + 1)]
            scores = _with_spread(scores, later)
        baseline[nodeid] = scores
    return baseline


def with_references(
    baseline: dict[str, list[dict[str, Any]]], references: list[dict[str, Any]]
) -> dict[str, Any]:
    """``baseline`` with each score's spread over the reference checkpoints' runs at its seed."""
    return {
        nodeid: _with_spread(scores, [ref["runs"][nodeid]["scores"] for ref in references])
        for nodeid, scores in baseline.items()
    }


def decide(baseline: dict[str, list[dict[str, Any]]], entry: dict[str, Any], rule: str) -> dict[str, Any]:
    """The gate's decision on every spec of a recorded run: what failed, what was inconclusive."""
    from reusespec.gate.baseline import decode_array
    from reusespec.gate.decision import compare_with_baseline
    from reusespec.gate.rules import worst
    from reusespec.gate.settings import SpecSettings
    from reusespec.stats import Verdict

    gate_scores, verdicts, _ = RULES[rule]
    spec = SpecSettings("block", verdicts, 1, 1, gate_all=gate_scores == "all")
    outcome: dict[str, Any] = {"failed": [], "inconclusive": [], "own": [], "compared": 0}
    for nodeid, run in entry["runs"].items():
        if run["error"] is not None:
            outcome["own"].append(nodeid)
        scores = [
            {
                **s,
                "examples": (decode_array(s["labels"]), decode_array(s["predictions"]))
                if "labels" in s
                else None,
            }
            for s in run["scores"]
        ]
        judged = compare_with_baseline(
            {"receipt": {}, "scores": baseline.get(nodeid, [])}, {}, scores, spec, 0.95
        )
        if gate_scores == "all":  # the gate before: measured costs compared whatever the machine
            for comparison in judged.comparisons:
                comparison.tracked = None
            judged.verdict = worst(c.verdict for c in judged.comparisons)
        outcome["compared"] += sum(1 for c in judged.comparisons if c.tracked is None)
        if judged.verdict is Verdict.FAIL:
            outcome["failed"].append(nodeid)
        elif judged.verdict is Verdict.INCONCLUSIVE:
            outcome["inconclusive"].append(nodeid)
    return outcome


def all_pairs(healthy: Runs, spread_seeds: int, baselines: range, candidates: range) -> dict[str, Any]:
    """The point rule over every (baseline, candidate) pair of seeds: a finer estimate of the
    false-failure rate than the replays, for ``spread`` and ``default``. The same decision as
    :func:`reusespec.gate.baseline.compare_score` without interval verdicts (its paired test is shown
    but does not decide), from the same functions."""
    from reusespec.gate.decision import pairs_to_gate
    from reusespec.gate.spread import spread_of, widen
    from reusespec.gate.tolerances import default_tolerance, higher_is_better
    from reusespec.gate.tracking import tracked_reason
    from reusespec.stats import regression_check

    result = {}
    for rule in ("spread", "default"):
        failed = 0
        for b in baselines:
            base = baseline_at(healthy, b, rule == "spread", spread_seeds)
            for c in candidates:
                for nodeid, run in healthy[c]["runs"].items():
                    if run["error"] is not None:
                        failed += 1
                        break
                    regressed = False
                    for old, new in pairs_to_gate(base[nodeid], run["scores"]):
                        if tracked_reason(old, new, gate_all=False, gate_metrics=frozenset()) is not None:
                            continue
                        metric = str(new["metric"])
                        tolerance = widen(default_tolerance(metric), float(old["value"]), spread_of(old))
                        better_high = higher_is_better(metric, new.get("op") or old.get("op"))
                        regressed |= regression_check(
                            float(old["value"]),
                            float(new["value"]),
                            abs_tol=tolerance.abs,
                            rel_tol=tolerance.rel,
                            higher_is_better=better_high,
                        ).regressed
                    if regressed:
                        failed += 1
                        break
        pairs = len(baselines) * len(candidates)
        result[rule] = {"pairs": pairs, "failed": failed, "failure_rate": failed / pairs}
    return result


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95% interval of a rate."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def rates(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(outcomes)
    run_fails = sum(bool(o["failed"] or o["inconclusive"] or o["own"]) for o in outcomes)
    per_spec: dict[str, int] = {}
    for o in outcomes:
        for nodeid in {*o["failed"], *o["inconclusive"], *o["own"]}:
            per_spec[nodeid] = per_spec.get(nodeid, 0) + 1
    return {
        "replays": n,
        "failed": run_fails,
        "failure_rate": run_fails / n if n else 0.0,
        "failure_ci": wilson(run_fails, n),
        "gate_failed": sum(bool(o["failed"]) for o in outcomes),
        "inconclusive": sum(bool(o["inconclusive"]) and not o["failed"] for o in outcomes),
        "own_assert_failures": sum(bool(o["own"]) for o in outcomes),
        "compared_per_run": sum(o["compared"] for o in outcomes) / n if n else 0.0,
        "failed_specs": per_spec,
    }


def aggregate(runs: dict[str, Runs], quick: bool = False) -> dict[str, Any]:
    """Rates of the same-seed, reseeded and damaged replays under every rule."""
    spread_seeds, baselines, candidates = (
        (2, (0,), range(11, 14))
        if quick
        else (
            SPREAD_SEEDS,
            BASELINE_SEEDS,
            CANDIDATE_SEEDS,
        )
    )
    healthy = runs["healthy"]
    cached: dict[tuple[int, bool], dict[str, list[dict[str, Any]]]] = {}

    def base(seed: int, spread: bool) -> dict[str, list[dict[str, Any]]]:
        if (seed, spread) not in cached:
            cached[seed, spread] = baseline_at(healthy, seed, spread, spread_seeds)
        return cached[seed, spread]

    reruns = runs.get("rerun", {})
    results: dict[str, Any] = {
        "spread_seeds": spread_seeds,
        "baseline_seeds": list(baselines),
        "candidate_seeds": [candidates.start, candidates.stop - 1],
        "same_seed_loads": [reruns[s]["load"] for s in sorted(reruns)],
        "same_seed": {},
        "reseeded": {},
        "detection": {},
    }
    for rule, (_, _, spread) in RULES.items():
        results["same_seed"][rule] = rates(
            [decide(base(s, spread), reruns[s], rule) for s in sorted(reruns) if s in healthy]
        )
        results["reseeded"][rule] = rates(
            [
                decide(base(baselines[i % len(baselines)], spread), healthy[r], rule)
                for i, r in enumerate(candidates)
            ]
        )
    retrained = sorted((k, s) for k in runs if k.startswith("retrained-") for s in runs[k] if s in healthy)
    results["retrained"] = {
        rule: rates([decide(base(s, spread), runs[k][s], rule) for k, s in retrained])
        for rule, (_, _, spread) in RULES.items()
        if retrained
    }
    references = [f"retrained-{t}" for t in REFERENCE_RETRAINS]
    if retrained and all(k in runs for k in references):
        outcomes = []
        for k, s in retrained:
            if int(k.split("-")[1]) in CANDIDATE_RETRAINS:
                reference_base = with_references(base(s, False), [runs[r][s] for r in references])
                outcomes.append(decide(reference_base, runs[k][s], "default"))
        results["retrained"]["references"] = rates(outcomes)
    if not quick:  # baselines whose spread runs (stepping by up to 5 seeds) end before the candidates
        results["all_pairs"] = all_pairs(healthy, spread_seeds, range(0, 51), candidates)
        results["all_pairs_seeds"] = [0, 50]
    for kind in sorted(k for k in runs if k.startswith("damaged-")):
        damaged = runs[kind]
        first = next(iter(damaged.values()))
        level: dict[str, Any] = {
            "target_points": first["target_points"],
            "calibrated_loss_points": first["calibrated_loss_points"],
        }
        losses = [
            100
            * (
                healthy[s]["runs"][UNSEEN]["scores"][0]["value"]
                - damaged[s]["runs"][UNSEEN]["scores"][0]["value"]
            )
            for s in sorted(damaged)
        ]
        level["mean_loss_points"] = sum(losses) / len(losses)
        for rule in ("spread", "default"):
            outcomes = [decide(base(s, RULES[rule][2]), damaged[s], rule) for s in sorted(damaged)]
            level[rule] = rates(outcomes)
            level[rule]["unseen_digits_detected"] = sum(UNSEEN in o["failed"] for o in outcomes)
        results["detection"][f"{first['target_points']:g}"] = level
    return results
