"""``pytest reuse_specs/ -n 2`` versus ``-n 0``: each a fresh subprocess, on a fresh cache and then warm.

A fresh cache holds the prebuilt zoo (zoo training is not what is measured) and no features;
the warm run repeats the same command on the cache the fresh run filled. Thread variables
(OMP_NUM_THREADS ...) are removed from the child's environment, so each mode runs with its own
defaults: -n 0 with torch's default threads, -n 2 with the plugin's per-worker share; a third
mode runs -n 0 with OMP_NUM_THREADS=1, to separate the thread setting from the parallelism.
Target: -n 2 at least 1.6x faster than -n 0 on this 2-core machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, Context, load_window, ratio, summary, timed

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def run_suite(cache: Path, workers: int, threads: int | None = None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    if threads is not None:
        env.update({k: str(threads) for k in THREAD_VARIABLES})
    command = [
        sys.executable, "-m", "pytest", str(REPO_ROOT / "reuse_specs"), "-n", str(workers),
        "--reuse-cache-dir", str(cache), "-q", "-p", "no:cacheprovider", "--durations=8",
    ]  # fmt: skip
    elapsed, done = timed(
        lambda: subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    )
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", tail)}
    slowest = [
        {"seconds": float(t), "when": when, "test": test.split("::", 1)[-1]}
        for t, when, test in re.findall(r"^([\d.]+)s (call|setup|teardown)\s+(\S+)", done.stdout, re.M)
    ]
    return {
        "seconds": elapsed,
        "returncode": done.returncode,
        "summary": tail,
        "counts": counts,
        "slowest": slowest,
    }


MODES = {"-n 0": (0, None), "-n 0, OMP_NUM_THREADS=1": (0, 1), "-n 2": (2, None)}


def run(ctx: Context) -> dict[str, Any]:
    repeats = ctx.repeats
    runs: dict[str, list[dict[str, Any]]] = {f"{m} {s}": [] for m in MODES for s in ("fresh", "warm")}
    with load_window() as load:
        for rep in range(repeats):
            for mode in list(MODES) if rep % 2 == 0 else list(reversed(MODES)):
                workers, threads = MODES[mode]
                cache = ctx.fresh_cache(f"xdist-n{workers}")
                for state in ("fresh", "warm"):
                    result = run_suite(cache, workers, threads)
                    runs[f"{mode} {state}"].append(result)
                    ctx.log(f"xdist {mode} {state}: {result['seconds']:.1f}s ({result['summary']})")
    times = {k: summary([r["seconds"] for r in v]) for k, v in runs.items()}
    speedup = {
        state: ratio(times[f"-n 0 {state}"]["median"], times[f"-n 2 {state}"]["median"])
        for state in ("fresh", "warm")
    }
    speedup_one_thread = {
        state: ratio(times[f"-n 0, OMP_NUM_THREADS=1 {state}"]["median"], times[f"-n 2 {state}"]["median"])
        for state in ("fresh", "warm")
    }
    return {
        "suite": "reuse_specs/",
        "seconds": times,
        "outcomes": {k: v[-1]["summary"] for k, v in runs.items()},
        "slowest_specs": {k: v[-1]["slowest"] for k, v in runs.items()},
        "speedup_n2_over_n0": speedup,
        "speedup_n2_over_n0_one_thread": speedup_one_thread,
        "target_met": {f"-n 2 >= 1.6x ({state})": s >= 1.6 for state, s in speedup.items()},
        **load,
    }
