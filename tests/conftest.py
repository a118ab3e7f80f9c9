"""Shared fixtures for reusespec's own tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# pytester's in-process runs drop the modules first imported inside them, and torch, numpy and
# scipy cannot be imported twice in one process: the session (which imports them all) is imported
# here, once, before any in-process run. Without it a test file run alone with -q can fail where
# the whole suite passes (collecting the other files imports them first).
import reusespec.session  # noqa: F401

settings.register_profile("reusespec", max_examples=25, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reusespec"))


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_thread")``).

    Small L-BFGS fits and tiny tensors run many times slower with two threads on a busy two-core
    machine, and one thread fixes the reduction order; in-process pytester runs share the setting.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A cache directory holding the demo zoo's digits-cnn and digits-cnn-random checkpoints.

    Built once per test run: under xdist every worker shares one directory (the zoo's own
    file lock makes sure only one of them trains), so tests that copy it start warm.
    """
    from reusespec.backbones.zoo import ensure_checkpoint

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if worker_id != "master" else base) / "zoo-cache"
    for name in ("digits-cnn", "digits-cnn-random"):
        ensure_checkpoint(name, root)
    return root


@pytest.fixture
def warm_cache(zoo_cache: Path, tmp_path: Path) -> Path:
    """A fresh cache directory for one test, with the zoo checkpoints already in it (no features)."""
    import shutil

    target = tmp_path / "cache"
    shutil.copytree(zoo_cache / "zoo", target / "zoo", ignore=shutil.ignore_patterns("*.lock"))
    return target
