"""Text encoders: tokens/s of extraction and a cold probe versus one bare forward pass over the same texts.

``python -m bench.bench_text [--task SPEC ...]`` writes ``bench/results/text.json``. For each task:

* bare pass: ``model(prepare(texts))`` in batches of the session's batch size in the split's order,
  under ``inference_mode``, over train + val + test, nothing stored: what a hand-written loop costs;
* sorted bare pass: the same in length-sorted batches (what reusespec's extraction does, without
  the cache);
* cold probe: ``Reuse.probe`` from a new session on a fresh cache, with backbone and task already
  resolved (loading MiniLM is the same for both sides), i.e. extraction, cache writes, head fit, scoring.

Target: cold probe <= 1.2x the bare pass. Needs the text extra and assets (see the README).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reusespec import ReuseConfig, ReuseSession
from reusespec.text_features import length_sorted_batches

RESULTS = Path(__file__).resolve().parent / "results" / "text.json"
BACKBONE = "zoo:minilm-l6"


def bare_pass(backbone: Any, texts: list[str], batch_size: int, sort: bool) -> tuple[float, int]:
    """Seconds and real tokens of one forward pass over ``texts``."""
    model = backbone.model.eval()
    order = (
        length_sorted_batches(texts, batch_size)
        if sort
        else [np.arange(i, min(i + batch_size, len(texts))) for i in range(0, len(texts), batch_size)]
    )
    tokens = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for positions in order:
            packed = backbone.prepare([texts[i] for i in positions])
            model(packed)
            tokens += int(packed[:, 1].sum())
    return time.perf_counter() - start, tokens


def measure(task_spec: str, batch_size: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="reusespec-bench-text-") as cache:
        session = ReuseSession(ReuseConfig(cache_dir=Path(cache), batch_size=batch_size))
        reuse = session.reuse()
        backbone = reuse.backbone(BACKBONE)
        task = reuse.task(task_spec)
        texts = [t for split in task.splits() for t in split.load(np.arange(len(split)))]
        bare_seconds, tokens = bare_pass(backbone, texts, batch_size, sort=False)
        sorted_seconds, _ = bare_pass(backbone, texts, batch_size, sort=True)
        start = time.perf_counter()
        result = reuse.probe(BACKBONE, task_spec)
        cold_seconds = time.perf_counter() - start
    return {
        "task": task_spec,
        "texts": len(texts),
        "tokens": tokens,
        "bare_seconds": bare_seconds,
        "sorted_bare_seconds": sorted_seconds,
        "cold_probe_seconds": cold_seconds,
        "tokens_per_second_bare": tokens / bare_seconds,
        "tokens_per_second_cold_probe": tokens / cold_seconds,
        "cold_over_bare": cold_seconds / bare_seconds,
        "accuracy": float(result.accuracy),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_text", description=__doc__.split("\n")[0])
    parser.add_argument("--task", action="append", help="task spec (default: rotten-tomatoes, bbc-news)")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    rows = [measure(task, args.batch_size) for task in args.task or ["rotten-tomatoes", "bbc-news"]]
    payload = {
        "machine": {"cpu_threads": torch.get_num_threads(), "python": platform.python_version()},
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
