"""The cost side of reusability: parameters, MACs/FLOPs, latency, memory and checkpoint size.

Conventions (see the "Complexity conventions" section of the shared reference):

* **MACs vs FLOPs.** Operations are counted with ``torch.utils.flop_counter.FlopCounterMode``,
  whose formulas count a multiply-accumulate as two FLOPs, so ``flops == 2 * macs``. Ops outside
  its registry (norms, activations, pooling, element-wise arithmetic) count zero, which is also
  what fvcore, thop and ptflops do for the ops that matter. torchvision's published "GFLOPS"
  (``weights.meta["_ops"]``) are in fact **GMACs**: compare them with :attr:`Complexity.gmacs`.
* **Per example.** MACs are counted for a batch of one, whatever batch size latency and memory
  are measured at.
* **Megabytes are MiB** (2**20 bytes), the unit of torchvision's ``meta["_file_size"]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from reusespec.measurement import Measurement, measure

MIB = 2**20
# Peak memory of a pass barely moves between passes; a few show whether it does.
MEMORY_REPEATS = 3


@dataclass(frozen=True)
class Complexity:
    """What a model costs to keep and to run.

    ``params``/``trainable_params``: parameter counts, each shared tensor counted once.
    ``macs``/``flops``: multiply-accumulates and FLOPs (``flops == 2 * macs``) of one forward pass
    on one example of shape ``input_size`` (no batch dimension), counted with
    ``torch.utils.flop_counter.FlopCounterMode``. torchvision's "GFLOPS" (``meta["_ops"]``) are
    GMACs, comparable with :attr:`gmacs`.
    ``latency_ms``: median wall time of one forward pass on ``latency_batch_size`` examples over
    ``latency_repeats`` timed runs after warm-up, on ``device`` (None when not measured; then
    ``latency_repeats`` is 0).
    ``peak_memory_mb``: memory needed to run one forward pass on ``latency_batch_size`` examples:
    the bytes of the model's parameters and buffers and of the input, plus the peak of what the
    forward pass allocates on top of them (activations, workspaces, the output). See
    :func:`measure_complexity` for how the peak is measured per device. None when not measured.
    ``checkpoint_mb``: size on disk of the weights (the state dict saved as safetensors, or the
    checkpoint file given).
    """

    params: int
    trainable_params: int
    macs: int
    flops: int
    input_size: tuple[int, ...]
    device: str
    latency_ms: float | None
    latency_batch_size: int
    latency_repeats: int
    peak_memory_mb: float | None
    checkpoint_mb: float
    # The timed runs and peak-memory passes behind latency_ms and peak_memory_mb: their spread,
    # the interval of the median, and the load of the machine while they ran.
    latency: Measurement | None = None
    memory: Measurement | None = None

    @property
    def gmacs(self) -> float:
        """Billions of multiply-accumulates per example (torchvision's "GFLOPS")."""
        return self.macs / 1e9

    @property
    def gflops(self) -> float:
        """Billions of floating-point operations per example (2 per multiply-accumulate)."""
        return self.flops / 1e9

    @property
    def mparams(self) -> float:
        """Millions of parameters."""
        return self.params / 1e6

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field plus the derived ``gmacs``, ``gflops`` and ``mparams``."""
        fields = asdict(self)
        fields["input_size"] = list(self.input_size)
        fields.update(gmacs=self.gmacs, gflops=self.gflops, mparams=self.mparams)
        return fields


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Return ``(total, trainable)`` parameter counts of ``model``.

    A parameter shared between modules is counted once, whether it is the same ``Parameter``
    object registered twice (tied weights) or two ``Parameter`` objects over the same memory. It
    is trainable if any of its aliases requires grad.
    """
    sizes: dict[tuple[Any, ...], int] = {}
    trainable: dict[tuple[Any, ...], bool] = {}
    for name, param in model.named_parameters():
        if isinstance(param, nn.parameter.UninitializedParameter):
            raise ValueError(
                f"parameter {name!r} is not initialised yet (a lazy module); "
                "run one forward pass before counting parameters"
            )
        key = _memory_key(param)
        sizes[key] = param.numel()
        trainable[key] = trainable.get(key, False) or param.requires_grad
    total = sum(sizes.values())
    return total, sum(size for key, size in sizes.items() if trainable[key])


def measure_complexity(
    model: nn.Module,
    input_size: tuple[int, ...],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 1,
    latency_repeats: int = 20,
    warmup: int = 3,
    measure_latency: bool = True,
    measure_memory: bool = True,
    checkpoint_path: str | None = None,
) -> Complexity:
    """Measure what ``model`` costs on inputs of shape ``input_size`` (without the batch dimension).

    The model runs in eval mode without grad on ``device``; each submodule's training flag and
    the model's device are restored afterwards. Inputs are random tensors of the model's
    floating dtype.

    Peak memory of one forward pass on ``batch_size`` examples, after one warm-up pass:

    * CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus what was
      allocated just before the pass (tensors the caching allocator hands out, not what it reserves).
    * CPU: every allocation and free that torch's CPU allocator reports to the profiler
      (``torch.profiler.profile(profile_memory=True)``) during the pass, summed in time order; the
      maximum of that running sum is the peak. Memory that libraries allocate outside torch's
      allocator is not seen, and allocations by other threads during the pass are.
    * Other devices: not measured (None).

    The resident bytes of parameters, buffers and input are then added, so the figure is what
    running the model takes, not only its activations.
    """
    input_size = _check_arguments(input_size, batch_size, latency_repeats, warmup, measure_latency)
    device = torch.device(device)
    total, trainable = count_parameters(model)
    with _evaluating_on(model, device), torch.no_grad():
        dtype = _floating_dtype(model)
        macs, flops = _count_operations(model, _example_input(model, 1, input_size, dtype, device))
        batch = _example_input(model, batch_size, input_size, dtype, device)
        latency = _latency_measurement(model, batch, warmup, latency_repeats) if measure_latency else None
        memory = _peak_memory_measurement(model, batch) if measure_memory else None
    checkpoint_mb = _path_size_mb(Path(checkpoint_path)) if checkpoint_path else _safetensors_size_mb(model)
    return Complexity(
        params=total,
        trainable_params=trainable,
        macs=macs,
        flops=flops,
        input_size=input_size,
        device=str(device),
        latency_ms=latency.median if latency is not None else None,
        latency_batch_size=batch_size,
        latency_repeats=latency_repeats if measure_latency else 0,
        peak_memory_mb=memory.median if memory is not None else None,
        checkpoint_mb=checkpoint_mb,
        latency=latency,
        memory=memory,
    )


def _check_arguments(
    input_size: tuple[int, ...], batch_size: int, latency_repeats: int, warmup: int, measure_latency: bool
) -> tuple[int, ...]:
    size = tuple(int(d) for d in input_size)
    if not size or any(d < 1 for d in size):
        raise ValueError(
            f"input_size must be a non-empty shape of positive sizes without the batch dimension, "
            f"e.g. (3, 224, 224); got {input_size!r}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if warmup < 0:
        raise ValueError(f"warmup must be 0 or more, got {warmup}")
    if measure_latency and latency_repeats < 1:
        raise ValueError(
            f"latency_repeats must be at least 1 to measure latency, got {latency_repeats}; "
            "pass measure_latency=False to skip it"
        )
    return size


def _memory_key(tensor: torch.Tensor) -> tuple[Any, ...]:
    # Meta and other storage-less tensors have no address to compare: fall back to identity.
    if tensor.device.type == "meta" or tensor.data_ptr() == 0:
        return ("id", id(tensor))
    return (str(tensor.device), tensor.data_ptr(), tensor.dtype, tuple(tensor.shape), tensor.stride())


def _tensors(model: nn.Module) -> Iterator[torch.Tensor]:
    yield from model.parameters()
    yield from model.buffers()


def _floating_dtype(model: nn.Module) -> torch.dtype:
    for tensor in _tensors(model):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


def _example_input(
    model: nn.Module, batch_size: int, input_size: tuple[int, ...], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    # A model whose input is not a float tensor (a text encoder: token ids of length
    # ``input_size[-1]``) builds its own example.
    example_input = getattr(model, "example_input", None)
    if callable(example_input):
        built: torch.Tensor = example_input(batch_size, input_size)
        return built.to(device)
    generator = torch.Generator().manual_seed(0)
    return torch.randn((batch_size, *input_size), generator=generator, dtype=dtype).to(device)


@contextmanager
def _evaluating_on(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Put ``model`` in eval mode on ``device``; restore every module's mode and the device after."""
    modes = {module: module.training for module in model.modules()}
    devices = {tensor.device for tensor in _tensors(model)}
    if len(devices) > 1:
        raise ValueError(
            f"the model's tensors lie on several devices ({sorted(map(str, devices))}); "
            "measure_complexity runs it on one: move it to a single device first"
        )
    original_device = next(iter(devices), None)
    try:
        model.eval()
        model.to(device)
        yield
    finally:
        if original_device is not None and original_device != device:
            model.to(original_device)
        for module, training in modes.items():
            module.train(training)


@contextmanager
def _attention_as_matmuls() -> Iterator[None]:
    """Run attention as plain matrix products, which the counter sees, however it would execute.

    Fused kernels (flash / memory-efficient scaled-dot-product attention on the CPU, and
    ``nn.MultiheadAttention``'s fast path in eval mode) are single ops outside FlopCounterMode's
    registry: their QK^T and AV products would count zero (ViT-B/16 would show about two thirds of
    its MACs). The math backend computes the same attention as two batched matmuls and a softmax.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _count_operations(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    counter = FlopCounterMode(display=False)
    with _attention_as_matmuls(), counter:
        model(example)
    flops = int(counter.get_total_flops())
    # Every formula in the counter's registry carries the factor 2 of a multiply-accumulate.
    return flops // 2, flops


def _synchronize(device: torch.device) -> None:
    # Kernels run asynchronously on accelerators: wait for them so the clock measures the work.
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _latency_measurement(model: nn.Module, batch: torch.Tensor, warmup: int, repeats: int) -> Measurement:
    """Milliseconds of ``repeats`` timed passes after ``warmup`` untimed ones, with the load meanwhile."""

    def timed_pass() -> float:
        start = time.perf_counter()
        model(batch)
        _synchronize(batch.device)
        return (time.perf_counter() - start) * 1e3

    return measure(timed_pass, repeats=repeats, warmup=warmup, unit="ms")


def _resident_bytes(model: nn.Module, batch: torch.Tensor) -> int:
    unique = {_memory_key(t): t.numel() * t.element_size() for t in _tensors(model)}
    return sum(unique.values()) + batch.numel() * batch.element_size()


def _peak_memory_measurement(
    model: nn.Module, batch: torch.Tensor, repeats: int = MEMORY_REPEATS
) -> Measurement | None:
    """MiB to run one pass, over ``repeats`` passes after one warm-up pass (None: not measurable here)."""
    device = batch.device
    if device.type not in ("cuda", "cpu"):
        return None
    resident = _resident_bytes(model, batch)

    def one_pass() -> float:
        if device.type == "cuda":
            _synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            model(batch)
            _synchronize(device)
            forward_peak = torch.cuda.max_memory_allocated(device) - before
        else:
            forward_peak = _cpu_forward_peak_bytes(model, batch)
        return (resident + max(forward_peak, 0)) / MIB

    # The warm-up pass makes one-time allocations (lazy init, caches) that are not the pass's own.
    return measure(one_pass, repeats=repeats, warmup=1, unit="MiB")


@contextmanager
def _quiet_native_output() -> Iterator[None]:
    """Send what C++ code prints to stdout/stderr to /dev/null meanwhile.

    torch's profiler (kineto) prints ``USDT ... profiler_start``/``profiler_stop`` and, on a machine
    without a GPU, ``gpuGetDeviceCount failed with code 35`` straight to file descriptors 1 and 2,
    where no logging setting reaches them (``KINETO_LOG_LEVEL`` silences only some).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved: list[tuple[int, int]] = []
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    try:
        for fd in (1, 2):
            try:
                saved.append((fd, os.dup(fd)))
                os.dup2(devnull, fd)
            except OSError:
                pass  # no such descriptor (a daemon): nothing to silence there
        yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


def _cpu_forward_peak_bytes(model: nn.Module, batch: torch.Tensor) -> int:
    with _quiet_native_output():
        return _profiled_peak_bytes(model, batch)


def _profiled_peak_bytes(model: nn.Module, batch: torch.Tensor) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(batch)
    # The profiler's raw results keep one "[memory]" event per allocation (+bytes) and free
    # (-bytes) with its time; the aggregated per-op tables lose the order a peak needs.
    events = [
        event
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU
    ]
    events.sort(key=lambda event: event.start_ns())
    running = peak = 0
    for event in events:
        running += event.nbytes()
        peak = max(peak, running)
    return peak


def _safetensors_size_mb(model: nn.Module) -> float:
    with tempfile.TemporaryDirectory(prefix="reusespec-ckpt-") as folder:
        path = Path(folder) / "model.safetensors"
        # save_model drops the duplicate names of tied weights, as a checkpoint should.
        save_model(model, str(path))
        return path.stat().st_size / MIB


def _path_size_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / MIB
    if path.is_dir():  # a sharded checkpoint: all its files together
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / MIB
    raise FileNotFoundError(
        f"checkpoint_path {str(path)!r} does not exist; pass the weights file (or folder) of the "
        "model, or leave checkpoint_path out to measure the model's own weights as safetensors"
    )
