"""The feature cache (reusespec.cache, reusespec.features): reuse, invalidation, and faults.

Reuse and invalidation run real probes and extractions with a small CNN saved as a
checkpoint file. Concurrency and crashes run real processes (``subprocess``) on one cache
directory: racing for one key, and killed with SIGKILL inside the computation or inside the
write. Read-only and full disks are real too where the machine allows it: a read-only bind
mount and a tiny tmpfs inside an unprivileged user namespace (``unshare``); elsewhere those
tests skip.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from filelock import FileLock
from safetensors.torch import save_file
from torch import nn

import reusespec
from reusespec.backbones.base import Backbone
from reusespec.backbones.zoo import DigitsCNN
from reusespec.cache import CacheError, CacheFallbackWarning, FeatureCache
from reusespec.errors import ReuseSpecError
from reusespec.features import extract_features, feature_key
from reusespec.session import ReuseConfig, ReuseSession
from reusespec.tasks.base import Split

pytestmark = pytest.mark.usefixtures("one_thread")

SRC_DIR = Path(reusespec.__file__).resolve().parent.parent
TASK = "sklearn-digits"
QUICK_GRID = (1e-3, 1e-1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CNN (the demo zoo's architecture, seeded init) saved as safetensors."""
    torch.manual_seed(11)
    model = DigitsCNN(16)
    path = tmp_path_factory.mktemp("checkpoints") / "cnn.safetensors"
    save_file(model.state_dict(), str(path), metadata={"reusespec.arch": "zoo:digits-cnn"})
    return path


def new_session(cache_dir: Path) -> ReuseSession:
    """A fresh session, as a new process would make: nothing in memory, only the disk cache."""
    return ReuseSession(ReuseConfig(cache_dir=cache_dir, device="cpu", batch_size=512))


# --- reuse and invalidation --------------------------------------------------------------------


def test_a_second_probe_extracts_nothing(checkpoint: Path, tmp_path: Path) -> None:
    first_session = new_session(tmp_path)
    first = first_session.reuse().probe(f"file:{checkpoint}", TASK, l2_grid=QUICK_GRID)
    assert first_session.extractions == 3 and not first.cache_hit
    assert first_session.feature_cache.stats.misses == 3

    second_session = new_session(tmp_path)
    second = second_session.reuse().probe(f"file:{checkpoint}", TASK, l2_grid=QUICK_GRID)
    assert second_session.extractions == 0 and second.cache_hit
    assert dataclasses.asdict(second_session.feature_cache.stats) == {
        "hits": 3,
        "misses": 0,
        "rebuilt_corrupt": 0,
    }
    assert float(second.accuracy) == float(first.accuracy)
    # A class subset of the same task is cut from the cached features of the whole splits.
    subset = second_session.reuse().probe(f"file:{checkpoint}", f"{TASK}:0-4", l2_grid=QUICK_GRID)
    assert second_session.extractions == 0 and subset.cache_hit


def finetuned_copy(checkpoint: Path, target: Path) -> Path:
    """The checkpoint with one weight nudged, as one step of fine-tuning would leave it."""
    from safetensors.torch import load_file

    state = load_file(str(checkpoint))
    state["features.0.0.weight"][0, 0, 1, 1] += 0.25
    save_file(state, str(target), metadata={"reusespec.arch": "zoo:digits-cnn"})
    return target


def test_changed_checkpoint_bytes_invalidate(checkpoint: Path, tmp_path: Path) -> None:
    session = new_session(tmp_path / "cache")
    original = session.backbone(f"file:{checkpoint}")
    tuned = session.backbone(f"file:{finetuned_copy(checkpoint, tmp_path / 'tuned.safetensors')}")
    test = session.task(TASK).test
    before, _ = session.features(original, test)
    after, hit = session.features(tuned, test)
    assert not hit and session.extractions == 2
    assert not np.array_equal(before, after)
    # The same weights under another name, in another format, are the same backbone: a hit.
    from safetensors.torch import load_file

    torch.save(load_file(str(checkpoint)), tmp_path / "same.pt")
    _, hit = session.features(session.backbone(f"file:{tmp_path / 'same.pt'}?arch=zoo:digits-cnn"), test)
    assert hit and session.extractions == 2


def test_changed_preprocessing_invalidates(checkpoint: Path, tmp_path: Path) -> None:
    session = new_session(tmp_path)
    backbone = session.backbone(f"file:{checkpoint}")
    test = session.task(TASK).test
    session.features(backbone, test)
    shifted = dataclasses.replace(backbone, input_spec=dataclasses.replace(backbone.input_spec, mean=(0.2,)))
    features, hit = session.features(shifted, test)
    assert not hit and session.extractions == 2
    assert not np.array_equal(features, session.features(backbone, test)[0])


def test_changed_examples_invalidate_and_unchanged_ones_do_not(checkpoint: Path, tmp_path: Path) -> None:
    session = new_session(tmp_path)
    backbone = session.backbone(f"file:{checkpoint}")
    seed0, seed1 = session.task(TASK, seed=0), session.task(TASK, seed=1)
    for split in seed0.splits():
        session.features(backbone, split)
    assert session.extractions == 3
    hits = {split.name: session.features(backbone, split)[1] for split in seed1.splits()}
    # Another seed moves the train/val boundary; the test split is fixed whatever the seed.
    assert hits == {"train": False, "val": False, "test": True}
    assert session.extractions == 5


def test_a_subset_of_another_base_split_is_not_confused_with_this_one(tmp_path: Path) -> None:
    session = new_session(tmp_path)
    backbone = tiny_backbone()
    images = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8)
    labels = np.arange(40) % 4
    other_images = images.clone()
    other_images[2] = 255 - other_images[2]  # one image differs: the second of the subset
    base = Split.from_arrays("test", images, labels, parent="mine")
    other_base = Split.from_arrays("test", other_images, labels, parent="mine")
    positions = np.arange(0, 40, 2)
    session.features(backbone, base.subset(positions))
    _, hit = session.features(backbone, base.subset(np.arange(1, 40, 2)))
    assert hit and session.extractions == 1  # same base, other examples: cut from the cached base
    features, hit = session.features(backbone, other_base.subset(positions))
    assert not hit and session.extractions == 2
    assert np.array_equal(features[0], session.features(backbone, base.subset(positions))[0][0])
    assert not np.array_equal(features[1], session.features(backbone, base.subset(positions))[0][1])


def tiny_backbone(model: nn.Module | None = None) -> Backbone:
    from reusespec.backbones.zoo import MNIST_INPUT

    torch.manual_seed(0)
    model = model or nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 6))
    return Backbone("tiny", model.eval(), 6, MNIST_INPUT, fingerprint=f"tiny-{id(model)}")


# --- partial and corrupt entries ---------------------------------------------------------------

KEY = "k" * 32


def stored_entry(root: Path) -> tuple[FeatureCache, np.ndarray]:
    cache = FeatureCache(root)
    array = np.arange(600, dtype=np.float32).reshape(100, 6)
    cache.get_or_compute(KEY, lambda: array)
    return cache, array


def corrupt(entry: Path, how: str) -> None:
    data, meta = entry / "features.npy", entry / "meta.json"
    if how == "truncated features":
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    elif how == "flipped byte":
        raw = bytearray(data.read_bytes())
        raw[-7] ^= 0xFF  # same size, other content: only the checksum can tell
        data.write_bytes(bytes(raw))
    elif how == "truncated meta":
        meta.write_text(meta.read_text()[:20])
    elif how == "features missing":
        data.unlink()
    elif how == "meta missing":
        meta.unlink()
    elif how == "other shape":
        record = json.loads(meta.read_text())
        record["shape"] = [60, 10]
        meta.write_text(json.dumps(record))


@pytest.mark.parametrize(
    "how",
    [
        "truncated features",
        "flipped byte",
        "truncated meta",
        "features missing",
        "meta missing",
        "other shape",
    ],
)
def test_a_bad_entry_is_never_read_and_is_rebuilt(tmp_path: Path, how: str) -> None:
    _, array = stored_entry(tmp_path)
    corrupt(tmp_path / "entries" / KEY, how)
    cache = FeatureCache(tmp_path)
    assert cache.read(KEY) is None
    computed: list[int] = []
    rebuilt, hit = cache.get_or_compute(KEY, lambda: computed.append(1) or array)  # type: ignore[func-returns-value]
    assert not hit and computed == [1] and np.array_equal(rebuilt, array)
    assert cache.stats.rebuilt_corrupt == 1
    again = FeatureCache(tmp_path)
    assert np.array_equal(again.get_or_compute(KEY, lambda: pytest.fail("recomputed"))[0], array)
    assert again.stats.hits == 1 and again.stats.rebuilt_corrupt == 0


def test_a_staging_directory_left_behind_is_never_read(tmp_path: Path) -> None:
    """A writer killed before its final rename leaves a complete-looking entry in tmp/."""
    _, array = stored_entry(tmp_path / "elsewhere")
    staging = tmp_path / "tmp" / f"{KEY}.abandoned"
    shutil.copytree(tmp_path / "elsewhere" / "entries" / KEY, staging)
    cache = FeatureCache(tmp_path)
    assert cache.read(KEY) is None
    computed: list[int] = []
    cache.get_or_compute(KEY, lambda: computed.append(1) or array)  # type: ignore[func-returns-value]
    assert computed == [1]
    assert not staging.exists()  # the next writer of the key removes it


# --- real processes: races and kills ------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import hashlib, json, os, sys, threading, time
    from pathlib import Path

    import numpy as np

    from reusespec.cache import FeatureCache

    mode, root, keys, log_dir, marker = sys.argv[1:6]

    def expected(key):
        seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")
        return np.random.default_rng(seed).normal(size=(300, 8)).astype(np.float32)

    def wait_for(condition, limit=60.0):
        end = time.monotonic() + limit
        while not condition() and time.monotonic() < end:
            time.sleep(0.005)

    def compute_for(key):
        def compute():
            with open(Path(log_dir) / f"{key}.log", "a") as log:
                log.write(f"{os.getpid()}\\n")
            if mode == "block-compute":
                Path(marker).touch()
                threading.Event().wait()  # killed here
            if mode == "race":  # hold the key until every racer has asked for its first key and queues
                wait_for(lambda: len(list(Path(log_dir).glob("asked-*"))) >= int(os.environ["RACERS"]))
            return expected(key)
        return compute

    if mode == "block-write":
        def fsync(fd):  # the entry's data is written; stop before it is renamed into place
            Path(marker).touch()
            threading.Event().wait()  # killed here
        os.fsync = fsync
    if mode == "race":  # a start line: every racer asks for its keys at the same moment
        ready = Path(marker)
        (ready / str(os.getpid())).touch()
        wait_for(lambda: len(list(ready.iterdir())) >= int(os.environ["RACERS"]))
    if mode == "waiter":
        Path(marker).touch()

    cache = FeatureCache(root)
    results = {}
    for key in keys.split(","):
        if mode == "race" and not results:
            (Path(log_dir) / f"asked-{os.getpid()}").touch()
        array, hit = cache.get_or_compute(key, compute_for(key))
        results[key] = {"hit": hit, "equal": bool(np.array_equal(array, expected(key)))}
    print(json.dumps(results))
    """
)


@pytest.fixture
def child_script(tmp_path: Path) -> Path:
    path = tmp_path / "cache_child.py"
    path.write_text(CHILD)
    return path


def start_child(
    script: Path, mode: str, root: Path, keys: list[str], log_dir: Path, marker: Path, **env: str
) -> subprocess.Popen[str]:
    environment = {**os.environ, "PYTHONPATH": str(SRC_DIR), **env}
    args = [sys.executable, str(script), mode, str(root), ",".join(keys), str(log_dir), str(marker)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)


def finish(child: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    return json.loads(out)


def wait_until_exists(path: Path, child: subprocess.Popen[str], limit: float = 120.0) -> None:
    end = time.monotonic() + limit
    while not path.exists():
        if child.poll() is not None:
            pytest.fail(f"the child exited ({child.returncode}) before {path.name}: {child.stderr.read()}")  # type: ignore[union-attr]
        if time.monotonic() > end:
            child.kill()
            pytest.fail(f"{path.name} did not appear within {limit}s")
        time.sleep(0.005)


def computations(log_dir: Path, key: str) -> list[str]:
    log = log_dir / f"{key}.log"
    return log.read_text().split() if log.exists() else []


def test_racing_processes_compute_each_entry_once(tmp_path: Path, child_script: Path) -> None:
    root, logs, ready = tmp_path / "cache", tmp_path / "logs", tmp_path / "ready"
    logs.mkdir()
    ready.mkdir()
    keys = ["a" * 32, "b" * 32]
    racers = [
        start_child(child_script, "race", root, keys if i % 2 else keys[::-1], logs, ready, RACERS="4")
        for i in range(4)
    ]
    results = [finish(racer) for racer in racers]
    for key in keys:
        assert len(computations(logs, key)) == 1
        assert all(result[key]["equal"] for result in results)  # every process got the same array
        assert sorted(result[key]["hit"] for result in results) == [False, True, True, True]
    assert not list((root / "tmp").iterdir())


def test_a_worker_killed_while_computing_leaves_nothing_and_its_waiter_takes_over(
    tmp_path: Path, child_script: Path
) -> None:
    root, logs = tmp_path / "cache", tmp_path / "logs"
    logs.mkdir()
    key = "c" * 32
    doomed = start_child(child_script, "block-compute", root, [key], logs, tmp_path / "inside")
    wait_until_exists(tmp_path / "inside", doomed)
    waiter = start_child(child_script, "waiter", root, [key], logs, tmp_path / "waiting")
    wait_until_exists(tmp_path / "waiting", waiter)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=60)
    assert doomed.returncode == -signal.SIGKILL

    result = finish(waiter)  # the OS released the dead worker's lock; the waiter computed
    assert result[key] == {"hit": False, "equal": True}
    assert computations(logs, key) == [str(doomed.pid), str(waiter.pid)]
    cache = FeatureCache(root)
    assert cache.read(key) is not None


def test_a_worker_killed_while_writing_leaves_no_entry_a_later_run_trusts(
    tmp_path: Path, child_script: Path
) -> None:
    root, logs = tmp_path / "cache", tmp_path / "logs"
    logs.mkdir()
    key = "d" * 32
    doomed = start_child(child_script, "block-write", root, [key], logs, tmp_path / "writing")
    wait_until_exists(tmp_path / "writing", doomed)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=60)
    assert list((root / "tmp").glob(f"{key}.*")), "the kill should have interrupted a write"

    cache = FeatureCache(root)
    assert cache.read(key) is None and not (root / "entries" / key).exists()
    with FileLock(str(root / "locks" / f"{key}.lock"), timeout=10):
        pass  # released by the OS when its holder died
    expected = np.full((5, 3), 7.0, dtype=np.float32)
    computed: list[int] = []
    array, hit = cache.get_or_compute(key, lambda: computed.append(1) or expected)  # type: ignore[func-returns-value]
    assert not hit and computed == [1] and np.array_equal(array, expected)
    assert not list((root / "tmp").iterdir())  # the dead writer's staging directory is gone
    assert np.array_equal(FeatureCache(root).read(key), expected)  # type: ignore[arg-type]


# --- directories that cannot be written ---------------------------------------------------------


@pytest.fixture
def private_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system temporary directory (where the fallback goes), moved into this test's tmp_path."""
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    return system_tmp


def test_an_unwritable_cache_directory_falls_back_with_a_warning(
    tmp_path: Path, private_tmpdir: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    root = blocker / "cache"  # no one, not even root, can create this
    array = np.ones((4, 2), dtype=np.float32)
    with pytest.warns(CacheFallbackWarning) as record:
        stored, hit = FeatureCache(root).get_or_compute(KEY, lambda: array)
    assert not hit and np.array_equal(stored, array)
    message = str(record[0].message)
    assert str(root) in message and str(private_tmpdir) in message and "--reuse-cache-dir" in message
    # Another process with the same setting finds what the first one stored in the fallback.
    with pytest.warns(CacheFallbackWarning):
        again, hit = FeatureCache(root).get_or_compute(KEY, lambda: pytest.fail("recomputed"))
    assert hit and np.array_equal(again, array)


def test_the_fallback_warning_says_what_the_cache_holds(tmp_path: Path, private_tmpdir: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.warns(CacheFallbackWarning, match="new probe heads are cached in"):
        FeatureCache(blocker / "heads", contents="probe heads").get_or_compute(KEY, lambda: np.zeros(3))


def test_no_writable_directory_at_all_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))
    with pytest.raises(CacheError) as info:
        FeatureCache(blocker / "cache").get_or_compute(KEY, lambda: np.zeros(3))
    message = str(info.value)
    assert str(blocker / "cache") in message and str(blocker / "tmp") in message
    assert "--reuse-cache-dir" in message


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions")
def test_a_directory_without_write_permission_falls_back(tmp_path: Path, private_tmpdir: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    root.chmod(0o555)
    try:
        with pytest.warns(CacheFallbackWarning, match="not writable"):
            FeatureCache(root).get_or_compute(KEY, lambda: np.zeros(3))
    finally:
        root.chmod(0o755)


def run_in_namespace(setup: str, script: str, *args: str, tmpdir: Path) -> dict[str, Any]:
    """Run ``setup`` (mounts) then a Python script as root of a fresh user + mount namespace."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) for a real read-only or full filesystem")
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unprivileged user namespaces are not available: {probe.stderr.decode().strip()}")
    command = f"{setup} && exec {shlex.join([sys.executable, script, *args])}"
    env = {**os.environ, "PYTHONPATH": str(SRC_DIR), "TMPDIR": str(tmpdir)}
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", command],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


READ_ONLY_CHILD = textwrap.dedent(
    """
    import json, sys, warnings
    import numpy as np
    from reusespec.cache import FeatureCache

    cache = FeatureCache(sys.argv[1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old, old_hit = cache.get_or_compute("old", lambda: 1 / 0)
        warned_before_writing = len(caught)
        new, new_hit = cache.get_or_compute("new", lambda: np.full(3, 2.0))
    print(json.dumps({
        "old": old.tolist(), "old_hit": old_hit, "warned_before_writing": warned_before_writing,
        "new": new.tolist(), "new_hit": new_hit, "warnings": [str(w.message) for w in caught],
        "write_root": str(cache.write_root),
    }))
    """
)


def test_a_read_only_cache_is_still_read_and_new_entries_go_to_the_fallback(tmp_path: Path) -> None:
    root, system_tmp = tmp_path / "cache", tmp_path / "system-tmp"
    system_tmp.mkdir()
    FeatureCache(root).get_or_compute("old", lambda: np.arange(3.0))
    (tmp_path / "child.py").write_text(READ_ONLY_CHILD)
    mount = f"mount --bind {root} {root} && mount -o remount,bind,ro {root}"
    result = run_in_namespace(mount, str(tmp_path / "child.py"), str(root), tmpdir=system_tmp)
    assert result["old"] == [0.0, 1.0, 2.0] and result["old_hit"]
    assert result["warned_before_writing"] == 0  # reading needs no write access, so no warning
    assert result["new"] == [2.0, 2.0, 2.0] and not result["new_hit"]
    assert len(result["warnings"]) == 1
    assert "Read-only file system" in result["warnings"][0] and str(root) in result["warnings"][0]
    assert Path(result["write_root"]).is_relative_to(system_tmp)
    assert (Path(result["write_root"]) / "entries" / "new").is_dir()
    assert not (root / "entries" / "new").exists()


FULL_DISK_CHILD = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    from reusespec.cache import CacheError, FeatureCache

    root = sys.argv[1]
    cache = FeatureCache(root)
    try:
        cache.get_or_compute("big", lambda: np.zeros(200_000, dtype=np.float32))  # 800 kB, 256 kB disk
        error = None
    except CacheError as exc:
        error = {"errno": exc.errno, "message": str(exc)}
    left = sorted(os.listdir(os.path.join(root, "tmp")))
    entries = sorted(os.listdir(os.path.join(root, "entries")))
    small, _ = cache.get_or_compute("small", lambda: np.ones(1000, dtype=np.float32))
    print(json.dumps({"error": error, "tmp": left, "entries": entries, "small": float(small.sum())}))
    """
)


def test_a_full_disk_leaves_nothing_behind_and_says_where(tmp_path: Path) -> None:
    root = tmp_path / "small-disk"
    root.mkdir()
    (tmp_path / "child.py").write_text(FULL_DISK_CHILD)
    mount = f"mount -t tmpfs -o size=256k reusespec-test {root}"
    result = run_in_namespace(mount, str(tmp_path / "child.py"), str(root), tmpdir=tmp_path)
    assert result["error"] is not None, "writing 800 kB to a 256 kB disk should fail"
    assert result["error"]["errno"] == errno.ENOSPC
    assert "is full" in result["error"]["message"] and str(root) in result["error"]["message"]
    assert result["tmp"] == [] and result["entries"] == []  # the partial write was removed...
    assert result["small"] == 1000.0  # ...so the space it took is free again


# --- out of memory during extraction ------------------------------------------------------------


class MemoryBound(nn.Module):
    """A model that runs out of memory on batches larger than ``max_batch``, as a GPU would."""

    def __init__(self, max_batch: int) -> None:
        super().__init__()
        self.max_batch = max_batch
        self.linear = nn.Linear(28 * 28, 6)
        self.batch_sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(len(x))
        if len(x) > self.max_batch:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {len(x)} MiB")
        return self.linear(x.flatten(1))


def digits_split(n: int) -> Split:
    images = torch.randint(
        0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    return Split.from_arrays("test", images, np.arange(n) % 3, parent="random")


def extraction_batches(model: MemoryBound | Broken) -> list[int]:
    """The batch sizes extraction ran, after the one-image call that sizes its work on the CPU."""
    assert model.batch_sizes[0] == 1  # reusespec.backbones.base.approximate_macs
    return model.batch_sizes[1:]


def test_out_of_memory_halves_the_batch_until_it_fits() -> None:
    split = digits_split(100)
    model = MemoryBound(max_batch=10)
    messages: list[str] = []
    features = extract_features(tiny_backbone(model), split, batch_size=64, progress=messages.append)
    fits = MemoryBound(max_batch=100)
    fits.load_state_dict(model.state_dict())
    reference = extract_features(tiny_backbone(fits), split, batch_size=100)
    assert np.allclose(features, reference, atol=1e-6)
    batches = extraction_batches(model)
    assert batches[:4] == [64, 32, 16, 8]
    assert all(size <= 8 for size in batches[3:])
    assert sum(size for size in batches if size <= 10) == 100  # every example exactly once
    assert any("retrying with 8" in m for m in messages)


def test_out_of_memory_even_for_one_image_is_a_clear_error() -> None:
    model = MemoryBound(max_batch=0)
    with pytest.raises(torch.OutOfMemoryError, match="even one image at a time") as info:
        extract_features(tiny_backbone(model), digits_split(20), batch_size=16, label="tiny on random")
    assert "tiny on random" in str(info.value) and "--reuse-device" in str(info.value)
    assert extraction_batches(model) == [16, 8, 4, 2, 1]


class Broken(nn.Module):
    """A model with a bug that has nothing to do with memory."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(5, 6)
        self.batch_sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(len(x))
        return self.linear(x.flatten(1))  # 784 inputs into a layer made for 5


def test_other_runtime_errors_are_not_retried() -> None:
    model = Broken()
    with pytest.raises((RuntimeError, ReuseSpecError)) as info:
        extract_features(tiny_backbone(model), digits_split(20), batch_size=16)
    assert "shapes cannot be multiplied" in str(info.value)
    assert extraction_batches(model) == [16]


def test_feature_key_follows_what_features_depend_on() -> None:
    backbone, split = tiny_backbone(), digits_split(10)
    key = feature_key(backbone, split)
    assert feature_key(backbone, split) == key
    assert feature_key(dataclasses.replace(backbone, name="renamed"), split) == key  # names do not matter
    assert feature_key(dataclasses.replace(backbone, fingerprint="other"), split) != key
    assert feature_key(backbone, split.subset(np.arange(5))) != key


def test_a_writable_cache_does_not_warn(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FeatureCache(tmp_path).get_or_compute(KEY, lambda: np.zeros(2))


# --- memory layout --------------------------------------------------------------------------------


class ViewsAfterConv(nn.Module):
    """A conv net written for the default layout: ``view`` fails on a channels_last activation."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 2, 3, stride=4)
        self.linear = nn.Linear(2 * 7 * 7, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.relu(self.conv(x)).view(len(x), -1))


def test_conv_nets_extract_in_channels_last_and_get_their_layout_back() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    torch.manual_seed(0)
    backbone = Backbone("conv", model.eval(), 4, tiny_backbone().input_spec, fingerprint="conv")
    split = digits_split(40)
    features = extract_features(backbone, split, batch_size=16)
    assert all(p.is_contiguous() for p in model.parameters())  # a later fine-tune sees the same model
    with torch.inference_mode():
        expected = model(backbone.prepare(split.load(np.arange(40)))).numpy()
    assert np.allclose(features, expected, atol=1e-5)


def test_a_model_that_needs_the_default_layout_still_extracts() -> None:
    model = ViewsAfterConv()
    backbone = Backbone("views", model.eval(), 6, tiny_backbone().input_spec, fingerprint="views")
    split = digits_split(20)
    features = extract_features(backbone, split, batch_size=8)
    with torch.inference_mode():
        expected = model(backbone.prepare(split.load(np.arange(20)))).numpy()
    assert np.allclose(features, expected, atol=1e-5)
