"""Fitted probe heads cached on disk: reused by a new session, keyed by what they depend on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reusespec import ReuseConfig, ReuseSession
from reusespec.heads import pack, unpack
from reusespec.probe import LinearHead, ProbeFit


def session(cache: Path, messages: list[str]) -> ReuseSession:
    return ReuseSession(ReuseConfig(cache_dir=cache, device="cpu", progress=messages.append))


def fits(messages: list[str]) -> list[str]:
    return [m for m in messages if m.startswith("fitted the probe head")]


def test_a_new_session_reads_the_head_instead_of_refitting(warm_cache: Path) -> None:
    first_log: list[str] = []
    first = session(warm_cache, first_log).reuse().probe("zoo:digits-cnn", "sklearn-digits")
    second_log: list[str] = []
    second = session(warm_cache, second_log).reuse().probe("zoo:digits-cnn", "sklearn-digits")
    assert len(fits(first_log)) == 1 and fits(second_log) == []
    assert np.array_equal(first.test_predictions, second.test_predictions)
    assert (float(first.accuracy), first.l2, first.val_accuracy) == (
        float(second.accuracy),
        second.l2,
        second.val_accuracy,
    )


def test_same_images_with_other_labels_get_their_own_head(warm_cache: Path) -> None:
    log: list[str] = []
    reuse = session(warm_cache, log).reuse()
    reuse.probe("zoo:digits-cnn", "mnist5k:5-9")
    reuse.probe("zoo:digits-cnn", "mnist5k:5-9?shots=20")
    parity = reuse.probe("zoo:digits-cnn", "mnist5k:parity")
    assert len(fits(log)) == 3
    assert set(np.unique(parity.test_predictions)) <= {0, 1}


def test_a_corrupt_head_entry_is_refitted(warm_cache: Path) -> None:
    session(warm_cache, []).reuse().probe("zoo:digits-cnn", "sklearn-digits")
    (entry,) = (warm_cache / "heads" / "entries").iterdir()
    data = entry / "features.npy"
    raw = bytearray(data.read_bytes())
    raw[-100] ^= 0xFF  # same size, one weight changed
    data.write_bytes(bytes(raw))
    log: list[str] = []
    again = session(warm_cache, log).reuse().probe("zoo:digits-cnn", "sklearn-digits")
    assert len(fits(log)) == 1 and again.accuracy >= 0.9


@settings(max_examples=25, deadline=None)
@given(
    classes=st.integers(2, 6),
    dim=st.integers(1, 8),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**16),
)
def test_pack_and_unpack_round_trip_exactly(classes: int, dim: int, dtype: torch.dtype, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    head = LinearHead(
        mean=torch.randn(dim, generator=g, dtype=dtype),
        scale=torch.rand(dim, generator=g, dtype=dtype) + 0.5,
        weight=torch.randn(classes, dim, generator=g, dtype=dtype),
        bias=torch.randn(classes, generator=g, dtype=dtype),
        l2=1e-3,
    )
    fit = ProbeFit(head, 1e-3, 0.75, [(1e-4, 0.7), (1e-3, 0.75)])
    array, meta = pack(fit)
    back = unpack(array, meta, torch.device("cpu"))
    for name in ("mean", "scale", "weight", "bias"):
        original, restored = getattr(head, name), getattr(back.head, name)
        assert restored.dtype == dtype and torch.equal(original, restored), name
    assert (back.l2, back.val_accuracy, back.sweep) == (fit.l2, fit.val_accuracy, fit.sweep)
    x = np.random.default_rng(seed).normal(size=(4, dim))
    assert np.array_equal(head.logits(x), back.head.logits(x))


@pytest.mark.parametrize("grid", [(1e-3,), (1e-4, 1e-2)])
def test_the_grid_is_part_of_the_key(warm_cache: Path, grid: tuple[float, ...]) -> None:
    log: list[str] = []
    reuse = session(warm_cache, log).reuse()
    reuse.probe("zoo:digits-cnn", "sklearn-digits")
    reuse.session.probe_fits.clear()  # only the disk cache could answer now
    result, *_ = reuse._probe("zoo:digits-cnn", "sklearn-digits", None, grid)
    assert len(fits(log)) == 2 and result.l2 in grid
