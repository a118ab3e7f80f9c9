"""Real tasks from installed packages: sizes, labels, fixed seeded splits, no image in two splits."""

from __future__ import annotations

import hashlib
import pickle
import re

import numpy as np
import pytest

from reusespec.errors import MissingDatasetError, ResourceUnavailable
from reusespec.tasks import real
from reusespec.tasks.base import Split, Task
from reusespec.tasks.registry import known_task_names, load_task

INSTALL = "python -m reusespec.assets install real-data"


def task_or_skip(spec: str, seed: int = 0) -> Task:
    try:
        return load_task(spec, seed=seed)
    except ResourceUnavailable as exc:
        pytest.skip(str(exc))


def image_hashes(split: Split) -> list[str]:
    images = split.load(np.arange(len(split)))
    return [hashlib.sha256(image.numpy().tobytes()).hexdigest() for image in images]


def test_animal_mnist_drops_its_exact_duplicates_before_splitting() -> None:
    task = task_or_skip("animal-mnist")
    _, _, dropped = real.animal_mnist_arrays()
    assert dropped == 284
    assert sum(len(s) for s in task.splits()) == 10_000 - 284
    hashes = [image_hashes(s) for s in task.splits()]
    everything = [h for part in hashes for h in part]
    assert len(set(everything)) == len(everything)  # no image twice, within or across splits
    assert task.num_classes == 10 and set(task.train.labels) == set(range(10))


def test_elpv_splits_hold_no_image_twice() -> None:
    task = task_or_skip("elpv")
    assert sum(len(s) for s in task.splits()) == 2624
    assert task.num_classes == 4
    first = task.train.load(np.arange(2))
    assert first.shape == (2, 1, 300, 300) and str(first.dtype) == "torch.uint8"
    hashes = [set(image_hashes(s)) for s in task.splits()]
    assert sum(len(h) for h in hashes) == 2624  # no image twice within a split either
    assert not (hashes[0] & hashes[1] or hashes[0] & hashes[2] or hashes[1] & hashes[2])


def test_elpv_type_shares_the_defect_tasks_splits() -> None:
    """Both label sets split one table of cells the same way, so elpv's image check covers both."""
    defects, types = task_or_skip("elpv"), task_or_skip("elpv:type")
    assert types.num_classes == 2 and set(types.test.labels) == {0, 1}
    assert types.meta["positions"] == defects.meta["positions"]
    positions = [set(p) for p in types.meta["positions"].values()]
    assert sum(len(p) for p in positions) == len(set.union(*positions)) == 2624


def test_splits_are_fixed_by_the_seed_and_the_test_split_by_nothing() -> None:
    first, again, other = (task_or_skip("elpv", seed) for seed in (0, 0, 1))
    assert first.fingerprint == again.fingerprint
    assert first.test.fingerprint == other.test.fingerprint
    assert first.train.fingerprint != other.train.fingerprint
    assert task_or_skip("elpv:type").test.fingerprint != first.test.fingerprint  # labels differ


def test_class_balance_is_kept_in_every_split() -> None:
    task = task_or_skip("elpv")
    shares = [np.bincount(s.labels, minlength=4) / len(s) for s in task.splits()]
    for share in shares[1:]:
        assert np.abs(share - shares[0]).max() < 0.03


def test_real_tasks_are_listed_and_subsets_apply() -> None:
    names = known_task_names()
    assert {"elpv", "elpv:type", "animal-mnist"} <= set(names)
    task = task_or_skip("animal-mnist:0-2?shots=5")
    assert task.num_classes == 3 and len(task.train) == 15


def test_a_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from reusespec.backbones import real_zoo

    monkeypatch.setattr(real_zoo, "locate_package_file", lambda package, relative: None)
    real._elpv_table.cache_clear()
    real.animal_mnist_arrays.cache_clear()
    for spec in ("elpv", "animal-mnist"):
        with pytest.raises(MissingDatasetError, match=re.escape(INSTALL)):
            load_task(spec)
    real._elpv_table.cache_clear()
    real.animal_mnist_arrays.cache_clear()


def test_the_unpickler_refuses_anything_but_numpy_arrays(tmp_path: pytest.TempPathFactory) -> None:
    import gzip
    import os

    path = tmp_path / "evil.gz"  # type: ignore[operator]
    with gzip.open(path, "wb") as handle:
        pickle.dump(os.system, handle)
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        real._read_numpy_pickle(path)
    with gzip.open(path, "wb") as handle:
        pickle.dump(np.arange(5), handle)
    assert real._read_numpy_pickle(path).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("spec", ["elpv:small", "animal-mnist:small"])
def test_small_subsets_are_fixed_disjoint_and_stratified(spec: str) -> None:
    task, other_seed = task_or_skip(spec), task_or_skip(spec, seed=3)
    rows = [set(task.meta["rows"][name]) for name in ("train", "val", "test")]
    assert sum(len(r) for r in rows) == len(set.union(*rows))
    assert abs(len(set.union(*rows)) - 600) <= 2 * task.num_classes  # rounded per stratum
    assert set.union(*rows) == set.union(*(set(v) for v in other_seed.meta["rows"].values()))
    assert task.test.fingerprint == other_seed.test.fingerprint
    counts = np.bincount(np.concatenate([s.labels for s in task.splits()]))
    assert counts.min() >= 1 and len(counts) == task.num_classes
