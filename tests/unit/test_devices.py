"""Device selection and per-worker CPU threads (reusespec.devices)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reusespec.devices import (
    configure_worker_threads,
    cpu_fallback_note,
    device_for_worker,
    select_device,
    threads_per_worker,
    worker_index,
)

FEW = settings(max_examples=25, deadline=None)
worker_numbers = st.integers(min_value=0, max_value=512)
gpu_counts = st.integers(min_value=1, max_value=16)


@FEW
@given(worker=worker_numbers, count=gpu_counts)
def test_workers_are_spread_round_robin_over_the_visible_gpus(worker: int, count: int) -> None:
    device = device_for_worker(f"gw{worker}", count)
    kind, index = device.split(":")
    assert kind == "cuda"
    assert 0 <= int(index) < count
    # Workers that are `count` apart share a GPU; neighbours do not (when there are several).
    assert device_for_worker(f"gw{worker + count}", count) == device
    if count > 1:
        assert device_for_worker(f"gw{worker + 1}", count) != device


@FEW
@given(count=gpu_counts)
def test_the_first_gpus_each_get_one_worker(count: int) -> None:
    devices = {device_for_worker(f"gw{i}", count) for i in range(count)}
    assert len(devices) == count


@FEW
@given(worker=st.one_of(st.none(), worker_numbers.map(lambda i: f"gw{i}")))
def test_without_cuda_every_worker_uses_the_cpu(worker: str | None) -> None:
    assert device_for_worker(worker, 0) == "cpu"


@FEW
@given(count=gpu_counts)
def test_the_controller_or_a_serial_run_uses_the_first_gpu(count: int) -> None:
    assert device_for_worker(None, count) == "cuda:0"
    assert device_for_worker(None, count) == device_for_worker("gw0", count)


@pytest.mark.parametrize("bad", ["worker3", "gw", "gw-1", "3"])
def test_a_malformed_worker_id_is_an_error(bad: str) -> None:
    with pytest.raises(ValueError, match="gw<number>"):
        worker_index(bad)


@FEW
@given(workers=st.integers(min_value=1, max_value=64), cpus=st.integers(min_value=1, max_value=256))
def test_workers_never_oversubscribe_the_cpus_and_always_get_a_thread(workers: int, cpus: int) -> None:
    threads = threads_per_worker(workers, cpus)
    assert threads >= 1
    if workers <= cpus:
        assert workers * threads <= cpus
        # No more than one worker's worth of cores is left idle.
        assert cpus - workers * threads < workers
    else:
        assert threads == 1


@FEW
@given(cpus=st.integers(min_value=1, max_value=256))
def test_a_single_worker_gets_every_cpu(cpus: int) -> None:
    assert threads_per_worker(1, cpus) == cpus


@pytest.fixture
def restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("restore_threads")
def test_configure_worker_threads_sets_the_share_of_one_worker_under_xdist() -> None:
    threads = configure_worker_threads({"PYTEST_XDIST_WORKER_COUNT": "2", "PYTEST_XDIST_WORKER": "gw1"})
    assert threads == threads_per_worker(2, os.cpu_count() or 1)
    assert torch.get_num_threads() == threads


@pytest.mark.usefixtures("restore_threads")
def test_configure_worker_threads_leaves_torch_alone_outside_xdist() -> None:
    before = torch.get_num_threads()
    assert configure_worker_threads({}) is None
    assert torch.get_num_threads() == before


def test_select_device_honours_explicit_cpu_and_resolves_auto() -> None:
    assert select_device("cpu") == torch.device("cpu")
    auto = select_device("auto", worker_id="gw1")
    if torch.cuda.is_available():
        assert auto == torch.device(device_for_worker("gw1", torch.cuda.device_count()))
    else:
        assert auto == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised on a machine without CUDA")
@pytest.mark.parametrize("asked", ["cuda", "cuda:1"])
def test_asking_for_cuda_without_cuda_is_a_clear_error(asked: str) -> None:
    with pytest.raises(RuntimeError, match="CUDA is not available") as raised:
        select_device(asked)
    assert "device='auto'" in str(raised.value)


@pytest.mark.parametrize("asked", ["tpu", "cuda:x", "meta"])
def test_an_unknown_device_is_an_error_naming_the_choices(asked: str) -> None:
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda'"):
        select_device(asked)


def test_the_cpu_gets_a_note_and_a_gpu_does_not() -> None:
    note = cpu_fallback_note(torch.device("cpu"))
    assert note is not None and "CPU" in note
    assert cpu_fallback_note("cuda:0") is None
