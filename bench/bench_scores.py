"""LogME and the other transferability scores versus probing.

1. On the demo: every zoo backbone on mnist5k:5-9 (features cached first, not timed), each score
   as ``Reuse.rank`` computes it (train + val features; the source head's softmax for NCE and
   LEEP), against the head-only probe on the same features: time over the zoo, and how well each
   score's ranking agrees with probe accuracy (weighted Kendall tau).
2. Scaling: the time of each score and of the probe fit as samples and width grow (synthetic
   Gaussian-mixture features, 10 classes; NCE and LEEP read a synthetic 100-class source softmax).
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import Any

import numpy as np

from bench.common import Context, load_window, ratio, repeat_timed, summary, timed
from bench.synthetic import gaussian_mixture


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def demo(ctx: Context) -> dict[str, Any]:
    import torch

    from reusespec.probe import fit_probe
    from reusespec.session import ReuseConfig, ReuseSession
    from reusespec.transferability import SCORES, rank_agreement, transferability_score

    session = ReuseSession(ReuseConfig(cache_dir=ctx.zoo_dir, device="cpu"))
    task = session.task("mnist5k:5-9")
    zoo = session.reuse().zoo()
    data = {}
    for name in zoo:
        bb = session.backbone(name)
        feats = {s.name: np.asarray(session.features(bb, s)[0]) for s in task.splits()}
        with torch.inference_mode():
            head = bb.source_head
            assert head is not None
            train_val = np.concatenate([feats["train"], feats["val"]])
            probs = _softmax(head.cpu().float()(torch.from_numpy(train_val)).double().numpy())
        data[name] = (feats, train_val, probs)
    labels = np.concatenate([task.train.labels, task.val.labels])
    ctx.log(f"scores demo: {len(zoo)} backbones on mnist5k:5-9, {len(labels)} samples")
    seconds: dict[str, list[float]] = {m: [] for m in [*SCORES, "probe (fit_probe)"]}
    scores: dict[str, dict[str, float]] = {m: {} for m in SCORES}
    accuracy: dict[str, float] = {}
    with load_window() as load:
        for _ in range(ctx.repeats):
            for method in SCORES:
                total = 0.0
                for name, (_, train_val, probs) in data.items():
                    t, value = timed(
                        partial(transferability_score, method, train_val, labels, source_probs=probs)
                    )
                    total += t
                    scores[method][name] = float(value)
                seconds[method].append(total)
            total = 0.0
            for name, (feats, _, _) in data.items():
                fit_args = (feats["train"], task.train.labels, feats["val"], task.val.labels)
                t, fit = timed(partial(fit_probe, *fit_args, num_classes=task.num_classes))
                total += t
                accuracy[name] = float((fit.head.logits(feats["test"]).argmax(1) == task.test.labels).mean())
            seconds["probe (fit_probe)"].append(total)
    times = {m: summary(s) for m, s in seconds.items()}
    probe_time = times["probe (fit_probe)"]["median"]
    agreement = {}
    for method in SCORES:
        a = rank_agreement(scores[method], accuracy)
        agreement[method] = {"weighted_kendall_tau": a.weighted_kendall_tau, "spearman": a.spearman}
    return {
        "backbones": zoo,
        "samples": len(labels),
        "seconds_over_zoo": times,
        "probe_over_score": {m: ratio(probe_time, times[m]["median"]) for m in SCORES},
        "probe_accuracy": accuracy,
        "scores": scores,
        "rank_agreement_with_probe": agreement,
        **load,
    }


def scaling(ctx: Context) -> dict[str, Any]:
    from reusespec.probe import fit_probe
    from reusespec.transferability import SCORES, transferability_score

    samples = [1_000, 5_000] if ctx.quick else [1_000, 5_000, 20_000]
    widths = [64, 512] if ctx.quick else [64, 512, 2_048]
    rows = []
    with load_window() as load:
        for n, d in itertools.product(samples, widths):
            data = gaussian_mixture(n, d, 10, seed=1)
            rng = np.random.default_rng(2)
            probs = _softmax(data.train_x @ rng.standard_normal((d, 100)).astype(np.float32) / np.sqrt(d))
            row: dict[str, Any] = {"samples": n, "width": d, "seconds": {}}
            for method in SCORES:
                score = partial(transferability_score, method, data.train_x, data.train_y, source_probs=probs)
                row["seconds"][method] = summary(repeat_timed(score, ctx.repeats))["median"]
            fit_args = (data.train_x, data.train_y, data.val_x, data.val_y)
            current = partial(fit_probe, *fit_args, num_classes=10)
            runs = repeat_timed(current, 1 if n * d > 1_000_000 else ctx.repeats)
            row["seconds"]["probe (fit_probe)"] = summary(runs)["median"]
            ctx.log(
                f"scores scaling {n} x {d}: " + ", ".join(f"{k} {v:.3f}s" for k, v in row["seconds"].items())
            )
            rows.append(row)
    return {"rows": rows, **load}


def run(ctx: Context) -> dict[str, Any]:
    return {"demo": demo(ctx), "scaling": scaling(ctx)}
