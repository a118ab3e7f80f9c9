"""A content-addressed, crash-safe feature cache shared by processes.

An entry is a directory ``entries/<key>/`` holding ``features.npy`` and ``meta.json``
(shape, dtype, size and checksum of the array). It is written under ``tmp/`` and moved
into place with one ``os.replace``, so a reader sees a whole entry or none; an entry that
fails verification (a truncated copy, a disk error) is treated as missing and rebuilt.
Computation of a missing entry holds a per-key file lock, so concurrent processes (xdist
workers) compute each entry once: the others wait and then read it. The lock is an
``flock``, which the operating system releases when its holder dies, so a killed worker
leaves at most a staging directory behind, removed by the next writer of that key.

Faults of the directory itself: a cache directory that cannot be written (read-only mount,
no permission) is still read, and new entries go to a fallback directory under the system's
temporary directory, with a warning; a disk that fills up during a write leaves nothing
behind and raises :class:`CacheError` naming the directory.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from filelock import FileLock

from reusespec.errors import ReuseSpecError
from reusespec.hashing import digest, file_digest

ENTRY_FORMAT = 1
_FULL_DISK = {errno.ENOSPC, errno.EDQUOT}
_FIX = "point --reuse-cache-dir (or REUSESPEC_CACHE_DIR) at a writable directory with free space"


class CacheError(ReuseSpecError, OSError):
    """The feature cache cannot store an entry (disk full, directory not writable)."""


class CacheFallbackWarning(UserWarning):
    """The cache directory is not writable; entries go to a temporary directory instead."""


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    rebuilt_corrupt: int = 0


class FeatureCache:
    """Arrays on disk keyed by a content digest."""

    def __init__(self, root: str | Path, verify: bool = True, contents: str = "features") -> None:
        self.root = Path(root)
        self.verify = verify
        self.contents = contents  # what the entries hold, for messages ("features", "probe heads")
        self.stats = CacheStats()
        self._write_root: Path | None = None  # decided on the first write: root, or a fallback

    def entry_dir(self, key: str, root: Path | None = None) -> Path:
        return (root or self.root) / "entries" / key

    @property
    def write_root(self) -> Path:
        """Where new entries go: the cache directory, or a temporary one if it is not writable."""
        if self._write_root is None:
            self._write_root = self._choose_write_root()
        return self._write_root

    def get_or_compute(
        self, key: str, compute: Callable[[], np.ndarray], meta: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, bool]:
        """The array stored under ``key`` (memory-mapped) and whether it was a hit."""
        array, _, hit = self.get_or_compute_entry(key, lambda: (compute(), meta or {}))
        return array, hit

    def get_or_compute_entry(
        self, key: str, compute: Callable[[], tuple[np.ndarray, dict[str, Any]]]
    ) -> tuple[np.ndarray, dict[str, Any], bool]:
        """As :meth:`get_or_compute`, for a ``compute`` that also returns the entry's metadata.

        Returns the array, its metadata (what ``compute`` returned, plus the entry's own fields)
        and whether it was a hit.
        """
        found = self._find(key, discard=False)  # no lock: entries appear whole or not at all
        if found is not None:
            self.stats.hits += 1
            return (*found, True)
        root = self.write_root
        lock_dir = root / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock_dir / f"{key}.lock")):
            # Holding the key's lock: another process may have written the entry while we
            # waited, and bad entries or staging left by a killed writer can go safely.
            found = self._find(key, discard=True)
            if found is not None:
                self.stats.hits += 1
                return (*found, True)
            self._remove_leftovers(key, root)
            array, meta = compute()
            array = np.ascontiguousarray(array)
            record = self.write(key, array, meta)
            self.stats.misses += 1
            return array, record, False

    def read(self, key: str) -> np.ndarray | None:
        """The verified entry for ``key``, or None; a bad entry is left for the next writer."""
        found = self._find(key, discard=False)
        return None if found is None else found[0]

    def _find(self, key: str, discard: bool) -> tuple[np.ndarray, dict[str, Any]] | None:
        roots = [self.root]
        if self._write_root is not None and self._write_root != self.root:
            roots.append(self._write_root)
        for root in roots:
            found = self._read_entry(self.entry_dir(key, root), discard and root == self.write_root)
            if found is not None:
                return found
        return None

    def _read_entry(self, entry: Path, discard: bool) -> tuple[np.ndarray, dict[str, Any]] | None:
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
            if list(array.shape) != meta["shape"] or array.dtype.str != meta["dtype"]:
                raise ValueError("shape or dtype mismatch")
        except (OSError, ValueError, KeyError, TypeError):
            if discard:
                self._discard(entry)
            return None
        return array, meta

    def write(self, key: str, array: np.ndarray, meta: dict[str, Any]) -> dict[str, Any]:
        """Store ``array`` under ``key`` atomically and return its metadata; hold the key's lock."""
        root = self.write_root
        staging: Path | None = None
        try:
            tmp_root = root / "tmp"
            tmp_root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=tmp_root))
            data_path = staging / "features.npy"
            with open(data_path, "wb") as f:
                _write_npy(f, array)
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
            final = self.entry_dir(key, root)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # a bad entry left by an earlier run; we hold the key's lock
                self._discard(final)
            try:
                os.replace(staging, final)
            except OSError as exc:
                # Another writer got there first: possible only where file locks do not work
                # (some network filesystems). Its entry holds the same features.
                if (
                    exc.errno in (errno.ENOTEMPTY, errno.EEXIST)
                    and self._read_entry(final, False) is not None
                ):
                    return record
                raise
        except OSError as exc:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            raise _write_error(exc, root, array.nbytes, self.contents) from exc
        finally:
            if staging is not None and staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return record

    def _discard(self, entry: Path) -> None:
        """Move a bad entry aside atomically, then delete it."""
        if not entry.exists():
            return
        self.stats.rebuilt_corrupt += 1
        trash = entry.parent.parent / "tmp" / f"discard-{entry.name}-{os.getpid()}-{time.monotonic_ns()}"
        try:
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.replace(entry, trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def _remove_leftovers(self, key: str, root: Path) -> None:
        """Staging and discarded directories of ``key`` left by a writer that was killed.

        Only called under the key's lock, so no live process is writing them.
        """
        tmp_root = root / "tmp"
        if not tmp_root.is_dir():
            return
        for pattern in (f"{key}.*", f"discard-{key}-*"):
            for leftover in tmp_root.glob(pattern):
                shutil.rmtree(leftover, ignore_errors=True)

    def _choose_write_root(self) -> Path:
        try:
            _check_writable(self.root)
            return self.root
        except OSError as exc:
            problem = exc.strerror or str(exc)
        fallback = fallback_dir(self.root)
        try:
            _check_writable(fallback)
        except OSError as exc:
            raise CacheError(
                f"the cache directory {self.root} is not writable ({problem}), and neither is the "
                f"fallback {fallback} ({exc.strerror or exc}); {_FIX}"
            ) from exc
        warnings.warn(
            f"the cache directory {self.root} is not writable ({problem}): its entries are still read, "
            f"but new {self.contents} are cached in {fallback} instead, which the system may clear. To keep "
            f"them, make {self.root} writable or {_FIX}.",
            CacheFallbackWarning,
            stacklevel=4,
        )
        return fallback


def fallback_dir(root: Path) -> Path:
    """A per-user directory for a cache whose own directory is not writable.

    Named after the original directory, so every process of a run (xdist workers) and later
    runs on this machine share it.
    """
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    name = digest("fallback", str(root.expanduser().absolute()))[:16]
    return Path(tempfile.gettempdir()) / f"reusespec-{user}" / "features-fallback" / name


def _check_writable(root: Path) -> None:
    """Raise OSError unless files can be created (and removed) in ``root``."""
    for sub in ("entries", "locks", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix="write-check.", dir=root / "tmp")
    os.close(fd)
    os.unlink(probe)


def _write_npy(f: BinaryIO, array: np.ndarray) -> None:
    """``np.save`` for a C-contiguous array, with the operating system's error on a short write.

    ``np.save`` to a real file goes through ``ndarray.tofile``, which reports a full disk as
    "N requested and M written" without an errno; Python's own ``write`` raises ENOSPC.
    """
    array = np.ascontiguousarray(array)
    np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(array))
    f.write(array.reshape(-1).view(np.uint8).data)


def _write_error(exc: OSError, root: Path, nbytes: int, contents: str) -> CacheError:
    if exc.errno in _FULL_DISK:
        return CacheError(
            exc.errno,
            f"the cache directory {root} is full ({exc.strerror}) while storing "
            f"{nbytes / 1e6:.1f} MB of {contents}; nothing partial was left behind. Free space there "
            f"(old entries under {root / 'entries'} can be deleted at any time) or {_FIX}.",
        )
    message = f"cannot store {contents} in the cache directory {root}: {exc}. Check it, or {_FIX}."
    return CacheError(exc.errno, message) if exc.errno is not None else CacheError(message)
