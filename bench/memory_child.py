"""Child process of the memory benchmark: ``python -m bench.memory_child N CACHE_DIR``.

Extracts (and caches) features of ``N`` generated images through ``bench.synthetic:wide_mlp``
and prints one JSON line: the resident set size before extraction and its peak during it, and the
size of the features. RSS sees torch's allocations (tracemalloc does not). On Linux the peak
(VmHWM) is reset to the current RSS just before extracting (``/proc/self/clear_refs``), so the
imports' own peak does not hide extraction's; elsewhere ``getrusage`` max RSS is used and is then
only an upper bound on the baseline.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def _status_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int:
    peak = _status_bytes("VmHWM")
    if peak is not None:
        return peak
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports kibibytes, macOS bytes
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def current_rss_bytes() -> int:
    return _status_bytes("VmRSS") or peak_rss_bytes()


def main() -> None:
    n, cache_dir = int(sys.argv[1]), Path(sys.argv[2])
    from bench.synthetic import lazy_split
    from reusespec.session import ReuseConfig, ReuseSession

    session = ReuseSession(ReuseConfig(cache_dir=cache_dir, device="cpu"))
    backbone = session.backbone("bench.synthetic:wide_mlp")
    warmup = lazy_split(300, name="warmup")
    session.features(backbone, warmup)  # one small extraction: allocator pools and lazy imports in place
    split = lazy_split(n)
    peak_reset = reset_peak()
    before = current_rss_bytes() if peak_reset else peak_rss_bytes()
    start = time.perf_counter()
    features, hit = session.features(backbone, split)
    seconds = time.perf_counter() - start
    after = peak_rss_bytes()
    assert not hit
    print(
        json.dumps(
            {
                "images": n,
                "feature_dim": backbone.feature_dim,
                "feature_bytes": int(np.asarray(features).nbytes),
                "rss_before": before,
                "peak_rss_during": after,
                "peak_was_reset": peak_reset,
                "seconds": seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
