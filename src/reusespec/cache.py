"""A content-addressed, crash-safe feature cache shared by processes.

An entry is a directory ``entries/<key>/`` holding ``features.npy`` and ``meta.json``
(shape, dtype, size and checksum of the array). It is written under ``tmp/`` and moved
into place with one ``os.replace``, so a reader sees a whole entry or none; an entry that
fails verification (a truncated copy, a disk error) is treated as missing and rebuilt.
Computation of a missing entry holds a per-key file lock, so concurrent processes (xdist
workers) compute each entry once: the others wait and then read it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from reusespec.hashing import file_digest

ENTRY_FORMAT = 1


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    rebuilt_corrupt: int = 0


class FeatureCache:
    """Arrays on disk keyed by a content digest."""

    def __init__(self, root: str | Path, verify: bool = True) -> None:
        self.root = Path(root)
        self.verify = verify
        self.stats = CacheStats()

    def entry_dir(self, key: str) -> Path:
        return self.root / "entries" / key

    def get_or_compute(
        self, key: str, compute: Callable[[], np.ndarray], meta: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, bool]:
        """The array stored under ``key`` (memory-mapped) and whether it was a hit."""
        found = self.read(key)
        if found is not None:
            self.stats.hits += 1
            return found, True
        lock_dir = self.root / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock_dir / f"{key}.lock")):
            found = self.read(key)  # another process may have written it while we waited
            if found is not None:
                self.stats.hits += 1
                return found, True
            array = np.ascontiguousarray(compute())
            self.write(key, array, meta or {})
            self.stats.misses += 1
            return array, False

    def read(self, key: str) -> np.ndarray | None:
        entry = self.entry_dir(key)
        meta_path = entry / "meta.json"
        data_path = entry / "features.npy"
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("format") != ENTRY_FORMAT or data_path.stat().st_size != meta["bytes"]:
                raise ValueError("size mismatch")
            if self.verify and file_digest(data_path) != meta["checksum"]:
                raise ValueError("checksum mismatch")
            array = np.load(data_path, mmap_mode="r")
        except (OSError, ValueError, KeyError):
            self._discard(entry)
            return None
        return array

    def write(self, key: str, array: np.ndarray, meta: dict[str, Any]) -> None:
        tmp_root = self.root / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=tmp_root))
        try:
            data_path = staging / "features.npy"
            with open(data_path, "wb") as f:
                np.save(f, array)
                f.flush()
                os.fsync(f.fileno())
            record = {
                "format": ENTRY_FORMAT,
                "shape": list(array.shape),
                "dtype": array.dtype.str,
                "bytes": data_path.stat().st_size,
                "checksum": file_digest(data_path),
                "created": time.time(),
                **meta,
            }
            (staging / "meta.json").write_text(json.dumps(record, indent=1, default=str))
            final = self.entry_dir(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # a corrupt entry found by read(); we hold the key's lock
                self._discard(final)
            os.replace(staging, final)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _discard(self, entry: Path) -> None:
        """Move a bad entry aside atomically, then delete it."""
        if not entry.exists():
            return
        self.stats.rebuilt_corrupt += 1
        trash = self.root / "tmp" / f"discard-{entry.name}-{os.getpid()}-{time.monotonic_ns()}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(entry, trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)
