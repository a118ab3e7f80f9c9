"""Head-only: ``Reuse.probe`` versus the usual hand-written loop, same backbone, data and device.

reusespec is timed from a new session (backbone and task resolved, features extracted or read,
head fitted, test scored) on a cold cache (a fresh cache directory with the zoo prebuilt: zoo
training is never counted) and on a warm one (features already cached; a new session, as in a
new pytest run, and the same session again). The usual loop (bench/reference.py) is timed from
its backbone and task being resolved to its test accuracy. Data files are read once before any
timing, so neither side pays for the first read of the CSV.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import Context, load_window, ratio, summary, timed
from bench.reference import usual_head_only_loop
from bench.synthetic import write_image_folder


def cases(ctx: Context) -> list[tuple[str, str, int]]:
    """(backbone, task, repeats)."""
    chosen = [("zoo:digits-cnn", "mnist5k:5-9", ctx.repeats), ("zoo:digits-cnn", "mnist5k", ctx.repeats)]
    if not ctx.quick:
        folder = write_image_folder(ctx.work_dir / "synthetic-images", classes=10, per_class=100, size=64)
        # ResNet-18 at 64 px: ~100x the digits CNN's cost per image, to show how the ratio scales.
        chosen.append(("bench.synthetic:resnet18_64", f"folder:{folder}?size=64", ctx.repeats))
    return chosen


def measure(ctx: Context, backbone: str, task: str, repeats: int) -> dict[str, Any]:
    from reusespec.session import ReuseConfig, ReuseSession

    def session(cache: Path) -> ReuseSession:
        return ReuseSession(ReuseConfig(cache_dir=cache, device="auto"))

    warmup = session(ctx.zoo_dir)
    warmup.task(task)  # reads the dataset files into the process once (both sides then share them)
    device = str(warmup.device)
    ctx.log(f"headonly {backbone} on {task}: {repeats} repeat(s) on {device}")
    seconds: dict[str, list[float]] = {
        "cold": [],
        "warm (new session)": [],
        "warm (same session)": [],
        "usual loop": [],
    }
    accuracy: dict[str, float] = {}
    passes = 0
    with load_window() as load:
        for rep in range(repeats):

            def reusespec_runs() -> None:
                cache = ctx.fresh_cache()
                first = session(cache)
                elapsed, result = timed(lambda: first.reuse().probe(backbone, task))
                assert not result.cache_hit
                seconds["cold"].append(elapsed)
                accuracy["reusespec"] = float(result.accuracy)
                elapsed, result = timed(lambda: session(cache).reuse().probe(backbone, task))
                assert result.cache_hit
                seconds["warm (new session)"].append(elapsed)
                elapsed, _ = timed(lambda: first.reuse().probe(backbone, task))
                seconds["warm (same session)"].append(elapsed)

            def usual_run() -> None:
                nonlocal passes
                fresh = session(ctx.zoo_dir)

                def loop() -> Any:
                    return usual_head_only_loop(
                        fresh.backbone(backbone), fresh.task(task), device=fresh.device
                    )

                elapsed, result = timed(loop)
                seconds["usual loop"].append(elapsed)
                accuracy["usual loop"] = result.accuracy
                passes = result.forward_passes

            for part in (reusespec_runs, usual_run) if rep % 2 == 0 else (usual_run, reusespec_runs):
                part()
            ctx.log(f"  repeat {rep + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in seconds.items()))
    times = {name: summary(s) for name, s in seconds.items()}
    usual = times["usual loop"]["median"]
    speedups = {name: ratio(usual, t["median"]) for name, t in times.items() if name != "usual loop"}
    equal_or_better = accuracy["reusespec"] >= accuracy["usual loop"]
    return {
        "backbone": backbone,
        "task": task if not task.startswith("folder:") else "synthetic 10-class images, 64 px (folder:)",
        "device": device,
        "seconds": times,
        "accuracy": accuracy,
        "usual_loop_forward_passes": passes,
        "speedup_vs_usual": speedups,
        "target_met": {
            "cold >= 10x": speedups["cold"] >= 10 and equal_or_better,
            "warm (new session) >= 100x": speedups["warm (new session)"] >= 100 and equal_or_better,
            "warm (same session) >= 100x": speedups["warm (same session)"] >= 100 and equal_or_better,
        },
        **load,
    }


def run(ctx: Context) -> dict[str, Any]:
    return {"cases": [measure(ctx, backbone, task, repeats) for backbone, task, repeats in cases(ctx)]}
