"""Print the demo's figures: probe accuracy matrix, rank agreement per score, corruption table, strategies.

Run: ``python scripts/demo_figures.py [--cache-dir DIR]``. Uses the same cache as the specs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from reusespec import ReuseConfig, ReuseSession
from reusespec.session import default_cache_dir

TASKS = ["mnist5k:5-9", "sklearn-digits", "mnist5k:parity", "mnist5k:5-9?shots=20"]
METHODS = ["logme", "hscore", "hscore-shrink", "nce", "leep", "knn"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    args = parser.parse_args()
    reuse = ReuseSession(ReuseConfig(cache_dir=args.cache_dir, device="cpu")).reuse()
    zoo = reuse.zoo()

    print("## Head-only accuracy (test split), zoo x task\n")
    print("| backbone | " + " | ".join(TASKS) + " |")
    print("|---" * (len(TASKS) + 1) + "|")
    for backbone in zoo:
        cells = [f"{float(reuse.probe(backbone, t).accuracy):.3f}" for t in TASKS]
        print(f"| {backbone} | " + " | ".join(cells) + " |")

    print("\n## Rank agreement with head-only accuracy over the zoo (weighted Kendall tau / Spearman)\n")
    print("| task | " + " | ".join(METHODS) + " | scoring s (logme) | probing s |")
    print("|---" * (len(METHODS) + 3) + "|")
    for task in TASKS[:3]:
        cells, timing = [], ("", "")
        for method in METHODS:
            agreement = reuse.rank_agreement(zoo, task, method=method)
            cells.append(f"{float(agreement.weighted_kendall_tau):+.2f} / {float(agreement.spearman):+.2f}")
            if method == "logme":
                start = time.perf_counter()
                reuse.rank(zoo, task, method="logme")  # warm cache: the scoring alone
                scoring = time.perf_counter() - start
                start = time.perf_counter()
                for backbone in zoo:
                    reuse.probe(backbone, task)  # warm cache: the head fits alone
                timing = (f"{scoring:.2f}", f"{time.perf_counter() - start:.2f}")
        print(f"| {task} | " + " | ".join(cells) + f" | {timing[0]} | {timing[1]} |")

    print("\n## Corruptions: zoo:digits-cnn on mnist5k:5-9, accuracy by severity\n")
    suite = reuse.shift_suite("zoo:digits-cnn", "mnist5k:5-9")
    print(f"clean accuracy {float(suite.clean_accuracy):.3f}\n")
    print("| corruption | 1 | 2 | 3 | 4 | 5 |\n|---|---|---|---|---|---|")
    for name, row in suite.table.items():
        print(f"| {name} | " + " | ".join(f"{row[s]:.3f}" for s in sorted(row)) + " |")
    print(
        f"\nmean corrupted accuracy {float(suite.mean_accuracy):.3f}, "
        f"mean relative drop {float(suite.mean_relative_drop):.3f}"
    )

    print("\n## Strategies: zoo:digits-cnn, accuracy and wall time (CPU)\n")
    print("| task | strategy | accuracy | trainable params | epochs | seconds |\n|---|---|---|---|---|---|")
    for task in ["mnist5k:5-9", "sklearn-digits"]:
        start = time.perf_counter()
        probe = reuse.probe("zoo:digits-cnn", task)
        elapsed = time.perf_counter() - start
        print(f"| {task} | head-only (probe) | {float(probe.accuracy):.3f} | - | - | {elapsed:.2f} |")
        for strategy, kwargs in [
            ("partial", {"unfreeze": 1, "epochs": 5}),
            ("full", {"epochs": 5}),
            ("lp-ft", {}),
        ]:
            out = reuse.finetune("zoo:digits-cnn", task, strategy=strategy, **kwargs)
            print(
                f"| {task} | {strategy} | {float(out.accuracy):.3f} | {out.trainable_params} | "
                f"{out.epochs_run} | {out.seconds:.2f} |"
            )


if __name__ == "__main__":
    main()
