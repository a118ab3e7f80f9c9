"""Which device a run uses, and how many CPU threads each pytest-xdist worker gets.

Under pytest-xdist every worker is its own process named ``gw0``, ``gw1``, ... (the
``PYTEST_XDIST_WORKER`` variable). With several GPUs the workers are spread round-robin over
them (``gw3`` on 2 GPUs -> ``cuda:1``); the controller or a serial run uses ``cuda:0``.

``CUDA_VISIBLE_DEVICES`` needs no handling here: the CUDA runtime, and so torch, already
renumbers the visible GPUs ``0..n-1``, so ``cuda:1`` means "the second visible GPU". Restrict
a run to some GPUs by setting it (``CUDA_VISIBLE_DEVICES=2,3 pytest -n 4`` puts gw0 and gw2 on
physical GPU 2, gw1 and gw3 on GPU 3).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping

import torch

_WORKER_ID = re.compile(r"^gw(\d+)$")


def worker_index(worker_id: str | None) -> int:
    """The number of an xdist worker (``"gw3"`` -> 3); 0 for the controller or a serial run."""
    if worker_id is None or worker_id in ("", "master"):
        return 0
    match = _WORKER_ID.match(worker_id)
    if match is None:
        raise ValueError(
            f"unrecognised pytest-xdist worker id {worker_id!r}: expected 'gw<number>' "
            "(the PYTEST_XDIST_WORKER variable), or None outside xdist"
        )
    return int(match.group(1))


def device_for_worker(worker_id: str | None, cuda_device_count: int) -> str:
    """The device string for a worker: ``"cpu"`` without CUDA, else ``"cuda:{index % count}"``.

    Indices are relative to the GPUs visible to the process (see the module docstring).
    """
    if cuda_device_count < 0:
        raise ValueError(f"cuda_device_count must be >= 0, got {cuda_device_count}")
    if cuda_device_count == 0:
        return "cpu"
    return f"cuda:{worker_index(worker_id) % cuda_device_count}"


def select_device(requested: str = "auto", worker_id: str | None = None) -> torch.device:
    """Resolve a device request.

    ``"auto"`` takes this worker's GPU (``worker_id`` defaults to ``PYTEST_XDIST_WORKER``) or
    the CPU when CUDA is unavailable. ``"cpu"``, ``"cuda"`` and ``"cuda:N"`` are taken as asked,
    but asking for CUDA on a machine without it is an error rather than a silent CPU run.
    """
    requested = requested.strip().lower()
    if worker_id is None:
        worker_id = os.environ.get("PYTEST_XDIST_WORKER")
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested == "auto":
        return torch.device(device_for_worker(worker_id, available))
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {requested!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc
    if device.type == "cuda":
        if available == 0:
            raise RuntimeError(
                f"device {requested!r} was asked for but CUDA is not available here "
                f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
                "use device='auto' to fall back to the CPU, or install a CUDA build of torch"
            )
        if device.index is not None and device.index >= available:
            raise RuntimeError(
                f"device {requested!r} was asked for but only {available} GPU(s) are visible "
                "(indices count from 0 within CUDA_VISIBLE_DEVICES); pick a lower index or 'auto'"
            )
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {requested!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return device


def threads_per_worker(worker_count: int, cpu_count: int) -> int:
    """CPU threads each of ``worker_count`` processes may use without oversubscribing the CPUs."""
    return max(1, cpu_count // max(1, worker_count))


def configure_worker_threads(env: Mapping[str, str] = os.environ) -> int | None:
    """Under pytest-xdist, limit torch's intra-op threads to this worker's share of the CPUs.

    Without it every worker starts one thread per core and n workers fight over the cores.
    Returns the thread count set, or None outside xdist (torch's setting is left alone).
    """
    count = env.get("PYTEST_XDIST_WORKER_COUNT")
    if not count:
        return None
    try:
        workers = int(count)
    except ValueError:
        return None
    threads = threads_per_worker(workers, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    # numpy/scipy's BLAS pools (LogME's SVD, scikit-learn) oversubscribe the same way (figures in
    # docs/benchmarks.md, "Threads per worker").
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    return threads


# Below this many multiply-adds per batch (a model's forward pass over one batch), CPU work on
# the batch runs on one thread: the demo's digits CNN (1.9 M per image: 1.2e8 for a training batch
# of 64, 4.9e8 for an extraction batch of 256) is as fast or faster on one thread, and its results
# then do not depend on the thread count (serial vs xdist). A ResNet-18 at 32 px (0.56 G per
# image) is far above it and keeps the process's threads.
SINGLE_THREAD_BATCH_MACS = 1e9


@contextlib.contextmanager
def single_thread_below(work: float, threshold: float, device: torch.device | str) -> Iterator[None]:
    """Run CPU work of fewer than ``threshold`` multiply-adds on one thread (torch and BLAS).

    Two reasons. Small operations gain nothing from more threads: they wait on each other, and on
    a busy machine the wait dominates. And a result computed on one thread does not depend on how
    many threads the process was given, so a serial run and an xdist worker (which gets its share
    of the cores) report the same scores. Larger work keeps the process's setting.
    """
    if work >= threshold or torch.device(device).type != "cpu":
        yield
        return
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def cpu_fallback_note(device: torch.device | str) -> str | None:
    """A note to show when work runs on the CPU (so slow runs are not a mystery), else None."""
    if torch.device(device).type != "cpu":
        return None
    if torch.cuda.is_available():
        reason = "CUDA is available but the CPU was chosen"
    else:
        build = torch.version.cuda or "none"
        reason = f"no CUDA device is available (torch {torch.__version__}, CUDA build {build})"
    return (
        f"running on the CPU with {torch.get_num_threads()} thread(s): {reason}. "
        "Fine-tuning is much slower here; use smaller tasks or fewer epochs, or run on a machine with a GPU."
    )
