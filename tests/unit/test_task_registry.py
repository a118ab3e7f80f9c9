"""Task strings (reusespec.tasks.registry), the bundled digit tasks and the split helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from reusespec.errors import TaskError, UnknownTaskError
from reusespec.tasks.base import Split, Task
from reusespec.tasks.bundled import BUNDLED, TEST_FRACTION
from reusespec.tasks.registry import load_task
from reusespec.tasks.splits import k_shot, stratified_split

SPLIT_NAMES = ("train", "val", "test")


def _splits(task: Task) -> dict[str, Split]:
    return dict(zip(SPLIT_NAMES, task.splits(), strict=True))


def _base_labels(split: Split) -> np.ndarray:
    """The labels the examples of a derived split have in the split it was cut from."""
    assert split.base is not None and split.base_positions is not None
    return split.base.labels[split.base_positions]


def _images(split: Split) -> torch.Tensor:
    images = split.load(np.arange(len(split)))
    assert isinstance(images, torch.Tensor)
    return images


# -- class selectors ---------------------------------------------------------------------------


def test_a_class_range_is_relabelled_from_zero_and_keeps_the_class_names() -> None:
    full, five_to_nine = load_task("mnist5k"), load_task("mnist5k:5-9")
    assert list(five_to_nine.class_names) == ["5", "6", "7", "8", "9"]
    assert five_to_nine.name == "mnist5k:5-9"
    for name, split in _splits(five_to_nine).items():
        whole = _splits(full)[name]
        assert set(split.labels) == set(range(5))
        assert np.array_equal(_base_labels(split), split.labels + 5)
        assert len(split) == np.isin(whole.labels, range(5, 10)).sum()
        # Features are extracted for the whole split once and indexed for the subset.
        assert split.base is not None and split.base.fingerprint == whole.fingerprint


def test_a_class_list_keeps_those_classes_in_order() -> None:
    task = load_task("mnist5k:0,2,4")
    assert list(task.class_names) == ["0", "2", "4"]
    for split in task.splits():
        assert np.array_equal(np.array([0, 2, 4])[split.labels], _base_labels(split))


def test_parity_relabels_every_digit_even_or_odd() -> None:
    full, parity = load_task("mnist5k"), load_task("mnist5k:parity")
    assert list(parity.class_names) == ["even", "odd"]
    for name, split in _splits(parity).items():
        assert len(split) == len(_splits(full)[name])
        assert np.array_equal(split.labels, _base_labels(split) % 2)


def test_a_subset_loads_the_same_images_as_its_base_at_its_positions() -> None:
    split = load_task("sklearn-digits:3-7?shots=4").train
    assert split.base is not None and split.base_positions is not None
    assert torch.equal(_images(split), split.base.load(split.base_positions))


def test_different_selections_have_different_fingerprints() -> None:
    prints = {
        load_task(s).test.fingerprint for s in ("mnist5k", "mnist5k:5-9", "mnist5k:0-4", "mnist5k:parity")
    }
    assert len(prints) == 4


# -- few-shot ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shots", [1, 5, 12])
def test_shots_give_exactly_k_per_class_and_a_small_validation_split(shots: int) -> None:
    plain, few = load_task("mnist5k:5-9"), load_task(f"mnist5k:5-9?shots={shots}")
    assert np.array_equal(np.bincount(few.train.labels), np.full(5, shots))
    val_counts = np.bincount(few.val.labels, minlength=5)
    assert len(set(val_counts)) == 1, "the same number per class"
    assert val_counts[0] == max(1, round(shots / 4))  # a quarter as many, at least one
    assert few.test.fingerprint == plain.test.fingerprint, "the test split is untouched"
    # Still indexed into the full split, through both the class selection and the sampling.
    assert np.array_equal(_base_labels(few.train), few.train.labels + 5)
    assert set(few.train.base_positions) <= set(plain.train.base_positions)  # type: ignore[arg-type]


def test_few_shot_samples_depend_on_the_seed() -> None:
    a, b = load_task("sklearn-digits?shots=3", seed=0), load_task("sklearn-digits?shots=3", seed=1)
    assert a.train.fingerprint != b.train.fingerprint
    assert load_task("sklearn-digits?shots=3", seed=0).train.fingerprint == a.train.fingerprint


# -- errors name the cause and the fix -------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "error", "mentions"),
    [
        ("mnist6k", UnknownTaskError, ["'mnist6k'", "mnist5k", "sklearn-digits", "'mnist5k:5-9'"]),
        ("mnist5k:five", UnknownTaskError, ["'five'", "'5-9'", "'0,2,4'", "parity"]),
        ("mnist5k:1-", UnknownTaskError, ["'1-'", "'5-9'"]),
        ("mnist5k?shot=5", UnknownTaskError, ["['shot']", "shots"]),
        ("mnist5k:8-12", TaskError, ["0..9", "[10, 11, 12]"]),
        ("mnist5k:3", TaskError, ["fewer than two", "at least two"]),
        ("mnist5k:4,4", TaskError, ["fewer than two"]),
        ("mnist5k?shots=0", TaskError, ["at least 1"]),
        ("mnist5k?shots=2.5", UnknownTaskError, ["shots=2.5", "whole number"]),
        ("mnist5k?shots=many", UnknownTaskError, ["'many'", "not a number"]),
        ("mnist5k?shots=400", TaskError, ["fewer than shots=400", "lower the shot count"]),
        ("mnist5k?val=0", TaskError, ["val=0", "between 0 and 1"]),
        ("mnist5k?val=0.9", TaskError, ["val=0.9", "0.8", "test split"]),
        ("mnist5k?text=caption", UnknownTaskError, ["['text']", "text tasks", "'mnist5k' does not take"]),
        ("sklearn-digits?label=y&per_class=9", UnknownTaskError, ["['label', 'per_class']", "csv:"]),
    ],
)
def test_bad_task_strings_say_what_is_wrong_and_how_to_write_them(
    spec: str, error: type[Exception], mentions: list[str]
) -> None:
    with pytest.raises(error) as excinfo:
        load_task(spec)
    for text in mentions:
        assert text in str(excinfo.value)


# -- bundled tasks ---------------------------------------------------------------------------------


def _rows(images: torch.Tensor, labels: np.ndarray) -> np.ndarray:
    """Each example as one row of pixels and label, to compare splits as multisets."""
    return np.concatenate([images.reshape(len(images), -1).numpy(), labels[:, None]], axis=1)


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_splits_are_disjoint_cover_the_data_and_keep_the_class_balance(name: str) -> None:
    task = load_task(name, seed=3)
    images, labels = BUNDLED[name]()
    parts = [_rows(_images(s), s.labels) for s in task.splits()]
    together = np.unique(np.concatenate(parts), axis=0, return_counts=True)
    original = np.unique(_rows(images, labels), axis=0, return_counts=True)
    assert all(np.array_equal(a, b) for a, b in zip(together, original, strict=True))
    per_class = np.bincount(labels)
    assert np.all(np.abs(np.bincount(task.test.labels) - TEST_FRACTION * per_class) <= 1)
    assert np.all(np.abs(np.bincount(task.val.labels) - 0.2 * per_class) <= 1)


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_the_test_split_is_fixed_while_the_seed_moves_train_and_val(name: str) -> None:
    tasks = [load_task(name, seed=seed) for seed in (0, 1, 2)]
    assert len({t.test.fingerprint for t in tasks}) == 1
    assert len({t.train.fingerprint for t in tasks}) == 3
    assert len({t.val.fingerprint for t in tasks}) == 3
    pools = [np.concatenate([_rows(_images(s), s.labels) for s in (t.train, t.val)]) for t in tasks]
    for pool in pools[1:]:  # the same pool, split differently
        assert np.array_equal(np.unique(pool, axis=0), np.unique(pools[0], axis=0))


def test_loading_is_deterministic() -> None:
    first, again = load_task("mnist5k:parity?shots=6", seed=7), load_task("mnist5k:parity?shots=6", seed=7)
    assert first.fingerprint == again.fingerprint
    for a, b in zip(first.splits(), again.splits(), strict=True):
        assert np.array_equal(a.labels, b.labels) and torch.equal(_images(a), _images(b))


def test_sklearn_digits_are_framed_like_mnist() -> None:
    images = _images(load_task("sklearn-digits").test)
    assert images.dtype == torch.uint8 and images.shape[1:] == (1, 28, 28)
    border = torch.ones(28, 28, dtype=torch.bool)
    border[4:24, 4:24] = False  # MNIST's digits sit in a 20x20 box centred in 28x28
    assert images[:, 0, border].max() == 0
    assert images[:, 0, ~border].max() == 255  # full ink reaches white
    assert (images[:, 0, ~border].flatten(1).amax(1) > 0).all(), "every digit has ink inside the box"


# -- split helpers -------------------------------------------------------------------------------

label_arrays = st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=300).map(np.array)
fraction_weights = st.lists(st.floats(min_value=0.05, max_value=1.0), min_size=2, max_size=4)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@given(labels=label_arrays, weights=fraction_weights, seed=seeds)
def test_stratified_split_partitions_each_class_in_proportion(
    labels: np.ndarray, weights: list[float], seed: int
) -> None:
    fractions = tuple(w / sum(weights) for w in weights)
    parts = stratified_split(labels, fractions, seed)
    assert len(parts) == len(fractions)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(labels)))
    for part, fraction in zip(parts, fractions, strict=True):
        assert np.array_equal(part, np.sort(part))
        for cls in np.unique(labels):
            members = (labels == cls).sum()
            assert abs((labels[part] == cls).sum() - fraction * members) <= 1
    again = stratified_split(labels, fractions, seed)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


@pytest.mark.parametrize("fractions", [(0.5, 0.4), (1.5, -0.5)])
def test_stratified_split_refuses_fractions_that_are_not_shares(fractions: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="non-negative and sum to 1"):
        stratified_split(np.zeros(10, dtype=np.int64), fractions, 0)


@given(
    counts=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=6),
    shots=st.integers(min_value=1, max_value=40),
    seed=seeds,
    order_seed=seeds,
)
def test_k_shot_takes_exactly_k_of_each_class_or_says_which_class_is_short(
    counts: list[int], shots: int, seed: int, order_seed: int
) -> None:
    labels = np.random.default_rng(order_seed).permutation(np.repeat(np.arange(len(counts)), counts))
    if min(counts) < shots:
        with pytest.raises(TaskError, match=r"has only \d+ training examples.*lower the shot count"):
            k_shot(labels, shots, seed)
        return
    chosen = k_shot(labels, shots, seed)
    assert np.array_equal(chosen, np.unique(chosen)), "sorted positions, none twice"
    assert np.array_equal(np.bincount(labels[chosen], minlength=len(counts)), np.full(len(counts), shots))
    assert np.array_equal(k_shot(labels, shots, seed), chosen)
