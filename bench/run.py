"""Run the benchmark suite: ``python -m bench [--quick] [--large] [--only NAME ...] [--threads N]``.

Each benchmark writes ``bench/results/<name>.json`` (machine, settings, timings as medians over
repeats with every run kept, accuracies, ratios); ``python -m bench.render`` turns them into
docs/benchmarks.md (done at the end of a run unless ``--no-render``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

BENCHMARKS = {
    "headonly": "head-only spec (Reuse.probe) vs the usual hand-written loop, cold and warm cache",
    "headfit": "the probe's head fit and sweep vs scikit-learn L-BFGS with the same sweep",
    "forward": "a cold head-only run vs one bare forward pass over the same data",
    "extraction": "extraction throughput by thread count, batch size and channels_last",
    "scores": "LogME and the other transferability scores vs probing; time as samples and width grow",
    "xdist": "pytest reuse_specs/ -n 2 vs -n 0 (subprocesses, fresh and warm cache)",
    "memory": "peak memory of extraction as the dataset grows (fresh subprocess per size)",
    "gate": "the release gate's false-failure, inconclusive and detection rates (in-process replays)",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only this benchmark")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (a smoke run)")
    parser.add_argument(
        "--large", action="store_true", help="add the largest sizes (50,000 x 2,048 head fit)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="repeats per measurement (default 3)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for torch and BLAS (default: torch's own default); set before any library loads",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=1800.0,
        help="seconds one large head fit may run before it is stopped and reported as a lower bound",
    )
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    parser.add_argument("--keep-work", action="store_true", help="keep the temporary caches")
    parser.add_argument("--no-render", action="store_true", help="do not rewrite docs/benchmarks.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        # Before numpy, scipy or torch load: each reads these once, when its thread pool starts.
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.threads)
    from bench.common import RESULTS_DIR, Context, machine_info, set_threads, write_result

    ctx = Context(
        quick=args.quick,
        large=args.large,
        repeats=args.repeats or (1 if args.quick else 3),
        budget=args.budget,
    )
    ctx.threads = set_threads(args.threads)
    out_dir = args.out or RESULTS_DIR
    failures = 0
    try:
        for name in args.only or list(BENCHMARKS):
            module = importlib.import_module(f"bench.bench_{name}")
            ctx.log(f"== {name}: {BENCHMARKS[name]}")
            started = time.time()
            try:
                payload: dict[str, Any] = module.run(ctx)
            except Exception as exc:  # one broken benchmark should not lose the others' results
                failures += 1
                ctx.log(f"{name} FAILED: {type(exc).__name__}: {exc}")
                import traceback

                traceback.print_exc()
                continue
            record = {
                "benchmark": name,
                "description": BENCHMARKS[name],
                "machine": machine_info(),
                "settings": {
                    "quick": ctx.quick,
                    "large": ctx.large,
                    "repeats": ctx.repeats,
                    "threads": ctx.threads,
                },
                "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
                "wall_seconds": round(time.time() - started, 1),
                **payload,
            }
            path = write_result(name, record, out_dir)
            ctx.log(f"{name}: wrote {path} ({record['wall_seconds']}s)")
    finally:
        if not args.keep_work:
            shutil.rmtree(ctx.work_dir, ignore_errors=True)
    if not args.no_render:
        from bench.render import render

        render(out_dir)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(main())
