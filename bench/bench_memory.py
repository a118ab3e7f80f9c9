"""Peak memory of extraction as the dataset grows: one fresh subprocess per size.

Each child (bench/memory_child.py) extracts and caches features of N generated images (computed
from their positions on load, so the dataset itself takes no memory) through a 1,024-wide
backbone, and reports its RSS before and its peak RSS during extraction. Extraction must not
grow with the dataset beyond the features it stores: peak growth minus feature bytes should stay
flat as N grows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench.common import REPO_ROOT, Context, load_window


def run(ctx: Context) -> dict[str, Any]:
    sizes = [2_000, 10_000, 30_000] if ctx.quick else [5_000, 20_000, 50_000, 100_000]
    rows = []
    with load_window() as load:
        for n in sizes:
            cache = ctx.fresh_cache(f"memory-{n}")
            done = subprocess.run(
                [sys.executable, "-m", "bench.memory_child", str(n), str(cache)],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(done.stdout.strip().splitlines()[-1])
            growth = row["peak_rss_during"] - row["rss_before"]
            row["peak_growth"] = growth
            row["growth_over_features"] = growth / row["feature_bytes"]
            row["growth_beyond_features_mib"] = (growth - row["feature_bytes"]) / 2**20
            rows.append(row)
            ctx.log(
                f"memory {n} images: features {row['feature_bytes'] / 2**20:.0f} MiB, peak growth "
                f"{growth / 2**20:.0f} MiB ({row['growth_over_features']:.2f}x), {row['seconds']:.1f}s"
            )
    beyond = [r["growth_beyond_features_mib"] for r in rows]
    return {
        "backbone": "bench.synthetic:wide_mlp (1,024 features)",
        "rows": rows,
        "beyond_features_mib_range": [min(beyond), max(beyond)],
        "target_met": {"no growth beyond stored features (within 64 MiB)": max(beyond) - min(beyond) <= 64},
        **load,
    }
