"""Tests of reusespec.complexity: counts checked against hand arithmetic and torchvision's metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from reusespec.complexity import MEMORY_REPEATS, MIB, Complexity, count_parameters, measure_complexity


def _counts_only(model: nn.Module, input_size: tuple[int, ...], **kwargs: object) -> Complexity:
    return measure_complexity(model, input_size, measure_latency=False, measure_memory=False, **kwargs)


# ---------------------------------------------------------------- parameters and MACs by hand


@settings(max_examples=25, deadline=None)
@given(
    in_features=st.integers(1, 40),
    out_features=st.integers(1, 40),
    tokens=st.integers(1, 5),
    bias=st.booleans(),
)
def test_linear_counts_match_hand_arithmetic(
    in_features: int, out_features: int, tokens: int, bias: bool
) -> None:
    model = nn.Linear(in_features, out_features, bias=bias)
    result = _counts_only(model, (tokens, in_features))
    assert result.params == in_features * out_features + (out_features if bias else 0)
    assert result.trainable_params == result.params
    # One multiply-accumulate per weight per token; the bias add is not a MAC.
    assert result.macs == tokens * in_features * out_features
    assert result.flops == 2 * result.macs


@settings(max_examples=25, deadline=None)
@given(
    groups=st.integers(1, 3),
    in_per_group=st.integers(1, 3),
    out_per_group=st.integers(1, 3),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 2),
    padding=st.integers(0, 2),
    side=st.integers(4, 9),
    bias=st.booleans(),
)
def test_conv2d_counts_match_hand_arithmetic(
    groups: int,
    in_per_group: int,
    out_per_group: int,
    kernel: int,
    stride: int,
    padding: int,
    side: int,
    bias: bool,
) -> None:
    c_in, c_out = groups * in_per_group, groups * out_per_group
    model = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, groups=groups, bias=bias)
    result = _counts_only(model, (c_in, side, side))
    out_side = (side + 2 * padding - kernel) // stride + 1
    assert result.params == c_out * in_per_group * kernel * kernel + (c_out if bias else 0)
    # Each output element is a dot product over its group's input channels and the kernel window.
    assert result.macs == c_out * out_side * out_side * in_per_group * kernel * kernel


def test_conv_relu_pool_linear_counts() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 10),
    )
    result = _counts_only(model, (3, 8, 8))
    conv_params, linear_params = 4 * 3 * 3 * 3 + 4, 64 * 10 + 10
    conv_macs, linear_macs = (4 * 8 * 8) * (3 * 3 * 3), 64 * 10  # ReLU and pooling count zero
    assert result.params == conv_params + linear_params
    assert result.macs == conv_macs + linear_macs
    assert result.gmacs == pytest.approx((conv_macs + linear_macs) / 1e9)
    assert result.gflops == pytest.approx(2 * (conv_macs + linear_macs) / 1e9)


class _TiedTwice(nn.Module):
    """Applies one 6x6 weight twice: the second layer's weight is the first's."""

    def __init__(self, alias_by_memory: bool) -> None:
        super().__init__()
        self.first = nn.Linear(6, 6, bias=False)
        self.second = nn.Linear(6, 6)
        # Either the same Parameter object, or a second Parameter over the same memory.
        self.second.weight = nn.Parameter(self.first.weight) if alias_by_memory else self.first.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


@pytest.mark.parametrize("alias_by_memory", [False, True])
def test_tied_weight_counted_once_but_applied_twice(alias_by_memory: bool) -> None:
    model = _TiedTwice(alias_by_memory)
    assert model.second.weight.data_ptr() == model.first.weight.data_ptr()
    assert count_parameters(model) == (36 + 6, 36 + 6)
    result = _counts_only(model, (6,))
    assert result.macs == 2 * 36  # the shared weight does work in both layers
    # The checkpoint stores the tied weight once: 42 floats plus a small header.
    assert 42 * 4 <= result.checkpoint_mb * MIB < 42 * 4 + 1024


def test_frozen_parameters_are_not_trainable() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    model[0].requires_grad_(False)
    assert count_parameters(model) == (4 * 3 + 3 + 3 * 2 + 2, 3 * 2 + 2)
    model[1].bias.requires_grad_(False)
    assert count_parameters(model) == (23, 6)


def test_macs_are_per_example_whatever_the_batch_size() -> None:
    model = nn.Sequential(nn.Conv2d(3, 5, 3), nn.Flatten(), nn.Linear(5 * 4 * 4, 2))
    one = _counts_only(model, (3, 6, 6), batch_size=1)
    many = measure_complexity(model, (3, 6, 6), batch_size=7, latency_repeats=2, warmup=0)
    assert many.macs == one.macs == 5 * 4 * 4 * 27 + 80 * 2
    assert many.latency_batch_size == 7


# ---------------------------------------------------------------- torchvision's published metadata

# Cheap at 224 px on a CPU. Skipped: resnet50 (slow to build and count), googlenet and inception_v3,
# whose weight-less builds carry auxiliary heads that the published num_params excludes.
TORCHVISION_MODELS = ["resnet18", "mobilenet_v3_small", "squeezenet1_0", "shufflenet_v2_x0_5", "mnasnet0_5"]


@pytest.mark.parametrize("name", TORCHVISION_MODELS)
def test_agrees_with_torchvision_metadata(name: str) -> None:
    weights = torchvision.models.get_model_weights(name).DEFAULT
    crop = weights.transforms().crop_size[0]
    model = torchvision.models.get_model(name, weights=None)
    result = _counts_only(model, (3, crop, crop))
    assert result.params == weights.meta["num_params"]
    # meta["_ops"] is GMACs rounded to 3 decimals: allow half a unit of that rounding (0.9% of
    # mobilenet_v3_small's 0.057) plus 1% for ops a different counter may include or leave out.
    published = weights.meta["_ops"]
    assert abs(result.gmacs - published) <= 0.0005 + 0.01 * published
    # meta["_file_size"] is the .pth file in MiB; safetensors differs only in per-tensor overhead.
    assert result.checkpoint_mb == pytest.approx(weights.meta["_file_size"], rel=0.01)


# ---------------------------------------------------------------- latency, modes, devices


class _Recorder(nn.Module):
    """Remembers how it was run: in which mode and whether grad was on."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 8)
        self.seen: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, torch.is_grad_enabled()))
        return self.linear(x)


def test_latency_measured_in_eval_without_grad_and_modes_restored() -> None:
    recorder = _Recorder()
    model = nn.Sequential(recorder, nn.Dropout(0.5), nn.BatchNorm1d(8))
    model.train()
    model[2].eval()  # a frozen norm inside a training model: mixed modes must come back as they were
    result = measure_complexity(model, (8,), batch_size=2, latency_repeats=4, warmup=2)
    assert recorder.seen and all(seen == (False, False) for seen in recorder.seen)
    # one counting pass, warm-up, timed repeats, then a warm-up and the measured passes for memory
    assert len(recorder.seen) == 1 + 2 + 4 + 1 + MEMORY_REPEATS
    assert result.latency_ms is not None and result.latency_ms > 0
    assert (result.latency_repeats, result.latency_batch_size, result.device) == (4, 2, "cpu")
    assert [m.training for m in model] == [True, True, False]
    assert model.training


def test_skipped_measurements_are_none() -> None:
    model = nn.Linear(3, 3)
    result = _counts_only(model, (3,))
    assert result.latency_ms is None and result.latency_repeats == 0
    assert result.peak_memory_mb is None


def test_as_dict_is_json_ready_and_carries_derived_units() -> None:
    result = measure_complexity(nn.Linear(10, 4), (10,), latency_repeats=2, warmup=0)
    report = json.loads(json.dumps(result.as_dict()))
    assert report["params"] == 44 and report["input_size"] == [10]
    assert report["gmacs"] == pytest.approx(40 / 1e9)
    assert report["gflops"] == pytest.approx(80 / 1e9)
    assert report["mparams"] == pytest.approx(44 / 1e6)
    assert report["latency_ms"] == result.latency_ms


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_size": ()}, "input_size"),
        ({"input_size": (3, 0)}, "input_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"warmup": -1}, "warmup"),
        ({"latency_repeats": 0}, "latency_repeats"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"input_size": (3,), **kwargs}
    with pytest.raises(ValueError, match=message):
        measure_complexity(nn.Linear(3, 3), **arguments)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_measurement_runs_there_and_gives_the_model_back() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    result = measure_complexity(model, (3, 32, 32), device="cuda", batch_size=4, latency_repeats=3)
    assert result.device.startswith("cuda")
    assert result.latency_ms is not None and result.latency_ms > 0
    weights_and_input = (count_parameters(model)[0] + 4 * 3 * 32 * 32) * 4
    assert result.peak_memory_mb is not None and result.peak_memory_mb * MIB >= weights_and_input
    assert all(p.device.type == "cpu" for p in model.parameters())


# ---------------------------------------------------------------- memory


class _Allocates(nn.Module):
    """Holds a weight and allocates a scratch tensor of known size during its forward pass."""

    def __init__(self, scratch_floats: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1000))
        self.scratch_floats = scratch_floats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scratch = torch.ones(self.scratch_floats)
        return x * self.weight + scratch.sum()


@pytest.mark.parametrize("scratch_floats", [250_000, 1_000_000])
def test_cpu_peak_memory_sees_weights_input_and_forward_allocations(scratch_floats: int) -> None:
    batch = 3
    result = measure_complexity(_Allocates(scratch_floats), (1000,), batch_size=batch, measure_latency=False)
    weight_bytes, input_bytes = 1000 * 4, batch * 1000 * 4
    # at the peak: weight, input, scratch, and the output (same shape as the input) may coexist
    at_least = weight_bytes + input_bytes + scratch_floats * 4
    at_most = at_least + input_bytes + 64 * 1024
    assert result.peak_memory_mb is not None
    assert at_least <= result.peak_memory_mb * MIB <= at_most


# ---------------------------------------------------------------- checkpoint size


def test_checkpoint_size_is_four_bytes_per_float32_parameter() -> None:
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 128))
    params, _ = count_parameters(model)
    result = _counts_only(model, (256,))
    header = result.checkpoint_mb * MIB - params * 4
    assert 0 <= header < 4096


def test_given_checkpoint_file_or_folder_is_measured_on_disk(tmp_path: Path) -> None:
    weights_file = tmp_path / "weights.bin"
    weights_file.write_bytes(b"\0" * 300_000)
    (tmp_path / "shard-2.bin").write_bytes(b"\0" * 100_000)
    model = nn.Linear(2, 2)
    assert _counts_only(model, (2,), checkpoint_path=str(weights_file)).checkpoint_mb * MIB == 300_000
    assert _counts_only(model, (2,), checkpoint_path=str(tmp_path)).checkpoint_mb * MIB == 400_000
    with pytest.raises(FileNotFoundError, match="checkpoint_path"):
        _counts_only(model, (2,), checkpoint_path=str(tmp_path / "missing.safetensors"))
