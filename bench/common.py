"""What every benchmark shares: timing with repeats, fresh caches, thread settings, the machine record."""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from reusespec.machine import cpu_model

T = TypeVar("T")

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
ZOO_FOR_BENCH = ("digits-cnn", "digits-cnn-wide", "digits-cnn-1epoch", "digits-cnn-random", "digits-mlp")


@dataclass
class Context:
    """Settings of one suite run, handed to every benchmark."""

    quick: bool = False
    large: bool = False
    repeats: int = 3
    threads: int | None = None
    budget: float = 1800.0
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="reusespec-bench-")))
    verbose: bool = True

    @property
    def zoo_dir(self) -> Path:
        """A cache holding the prebuilt demo zoo (built once per suite run; zoo training is never timed)."""
        root = self.work_dir / "zoo-cache"
        if not (root / ".built").exists():
            from reusespec.backbones.zoo import ensure_checkpoint

            self.log("building the demo zoo once (not timed)")
            for name in ZOO_FOR_BENCH:
                ensure_checkpoint(name, root)
            (root / ".built").touch()
        return root

    def fresh_cache(self, tag: str = "cache") -> Path:
        """A new cache directory with the zoo checkpoints in it and no features: a cold cache."""
        target = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=self.work_dir))
        shutil.copytree(self.zoo_dir / "zoo", target / "zoo", ignore=shutil.ignore_patterns("*.lock"))
        return target

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


_thread_limiter: Any = None


def set_threads(threads: int | None) -> int:
    """Give torch and the BLAS under numpy/scipy the same thread count (None: leave torch's default).

    Returns the thread count in force. A process whose libraries use different counts (torch's
    OpenMP pool and OpenBLAS each default to every core) measures their contention, not the code.
    """
    global _thread_limiter
    import scipy.linalg
    import scipy.optimize
    import sklearn.linear_model
    import torch
    from threadpoolctl import threadpool_limits

    del scipy, sklearn  # imported so that the BLAS each one loads is loaded before it is limited

    if threads is not None:
        torch.set_num_threads(threads)
    in_force = torch.get_num_threads()
    _thread_limiter = threadpool_limits(limits=in_force)
    return in_force


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on, stored with every result."""
    import numpy as np
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "device": "cpu",
    }
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name(0)
    try:
        import sklearn

        info["sklearn"] = sklearn.__version__
    except ImportError:
        pass
    return info


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Wall seconds of one call and its value."""
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


class BudgetExceeded(Exception):
    """Raised inside a measurement that ran past its time budget."""


def timed_within(fn: Callable[[], T], budget: float | None) -> tuple[float, T | None]:
    """Like :func:`timed`, but gives up after ``budget`` seconds (SIGALRM; main thread only) and
    returns ``(budget, None)``: the time is then a lower bound."""
    if budget is None:
        return timed(fn)

    def expire(signum: int, frame: object) -> None:
        raise BudgetExceeded

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, budget)
    try:
        return timed(fn)
    except BudgetExceeded:
        return budget, None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def repeat_timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls."""
    return [timed(fn)[0] for _ in range(repeats)]


def summary(seconds: list[float]) -> dict[str, Any]:
    """Median (the figure reported: the machine is shared, so single runs are noisy), range and runs."""
    return {
        "median": statistics.median(seconds),
        "min": min(seconds),
        "max": max(seconds),
        "runs": [round(s, 4) for s in seconds],
    }


def ratio(slow: float, fast: float) -> float:
    return slow / fast if fast > 0 else float("inf")


@contextmanager
def load_window() -> Iterator[dict[str, Any]]:
    """Records the 1-minute load average before and after a measurement (how shared the CPUs were)."""
    record: dict[str, Any] = {"load_before": round(os.getloadavg()[0], 2)}
    yield record
    record["load_after"] = round(os.getloadavg()[0], 2)


def write_result(name: str, payload: dict[str, Any], out_dir: Path = RESULTS_DIR) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=_jsonable) + "\n")
    os.replace(tmp, path)
    return path


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)
