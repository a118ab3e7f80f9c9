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
no permission, a regular file) is still read, and new entries go to a fallback directory under
the system's temporary directory, with one warning per cache directory (:func:`writable_root`,
the policy the zoo follows too); a disk that fills up during a write leaves nothing behind and
raises :class:`CacheError` naming the directory. Damaged entries and metadata are discarded and
rebuilt, and counted: :func:`repair_counts`.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from filelock import FileLock

from reusespec.atomic import write_json
from reusespec.errors import ReuseSpecError
from reusespec.hashing import digest, file_digest
from reusespec.strict_json import strict

ENTRY_FORMAT = 1
_FULL_DISK = {errno.ENOSPC, errno.EDQUOT}
_FIX = "point --reuse-cache-dir (or REUSESPEC_CACHE_DIR) at a writable directory with free space"


class CacheError(ReuseSpecError, OSError):
    """The feature cache cannot store an entry (disk full, directory not writable)."""


class CacheFallbackWarning(UserWarning):
    """The cache directory is not writable; entries go to a temporary directory instead."""


_REPAIRS: Counter[str] = Counter()
_WARNED_FALLBACK: set[Path] = set()


def record_repair(contents: str, count: int = 1) -> None:
    """Count ``count`` damaged cache artefacts of one kind discarded (to be rebuilt) in this process."""
    if count > 0:
        _REPAIRS[contents] += count


def repair_counts() -> dict[str, int]:
    """Damaged artefacts discarded and rebuilt in this process, by kind ("features", "probe heads",
    "zoo checkpoints", "locks", "temp files"); empty when nothing was repaired."""
    return dict(_REPAIRS)


def reset_repair_counts() -> None:
    _REPAIRS.clear()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    rebuilt_corrupt: int = 0


class FeatureCache:
    """Arrays on disk keyed by a content digest."""

    def __init__(
        self,
        root: str | Path,
        verify: bool = True,
        contents: str = "features",
        cache_dir: str | Path | None = None,
    ) -> None:
        self.root = Path(root)
        # The run's cache directory this one lives in: its caches share one fallback and one warning.
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
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
        with FileLock(str(lock_path(root / "locks", key))):
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
            if not isinstance(meta, dict):
                raise ValueError("metadata is not a JSON object")
            if meta.get("format") != ENTRY_FORMAT or data_path.stat().st_size != meta["bytes"]:
                raise ValueError("size mismatch")
            if self.verify and file_digest(data_path) != meta["checksum"]:
                raise ValueError("checksum mismatch")
            array = np.load(data_path, mmap_mode="r")
            if list(array.shape) != meta["shape"] or array.dtype.str != meta["dtype"]:
                raise ValueError("shape or dtype mismatch")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
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
            write_json(staging / "meta.json", record)
            record = strict(record)  # as written: NaN as null, flagged
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
        record_repair(self.contents)
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
        return writable_root(self.root, self.contents, self.cache_dir)


def writable_root(
    root: Path,
    contents: str,
    cache_dir: Path | None = None,
    subdirs: tuple[str, ...] = ("entries", "locks", "tmp"),
) -> Path:
    """``root`` if files can be created in it, else its fallback under the system's temporary directory.

    The one policy for every cache (features, probe heads, zoo checkpoints): an unusable directory
    (read-only, no permission, a regular file in the way) is still read, new entries go to the
    fallback, and one warning per run's ``cache_dir`` (per cache without one) says so. Raises
    :class:`CacheError` when the fallback cannot be written either.
    """
    try:
        _check_writable(root, subdirs)
        return root
    except OSError as exc:
        problem = exc.strerror or str(exc)
    fallback = fallback_dir(root, cache_dir)
    try:
        _check_writable(fallback, subdirs)
    except OSError as exc:
        raise CacheError(
            f"the cache directory {root} is not writable ({problem}), and neither is the "
            f"fallback {fallback} ({exc.strerror or exc}); {_FIX}"
        ) from exc
    if cache_dir is None or cache_dir not in _WARNED_FALLBACK:
        if cache_dir is not None:
            _WARNED_FALLBACK.add(cache_dir)
            what, where, shown = (
                "cache entries (features, probe heads, zoo checkpoints)",
                cache_dir,
                fallback.parent,
            )
        else:
            what, where, shown = contents, root, fallback
        warnings.warn(
            f"the cache directory {where} is not writable ({problem}): its entries are still read, "
            f"but new {what} are cached in {shown} instead, which the system may clear. To keep "
            f"them, make {where} writable or {_FIX}.",
            CacheFallbackWarning,
            stacklevel=5,
        )
    return fallback


def lock_path(lock_dir: Path, key: str) -> Path:
    """The lock file of ``key``; a directory in its way (damage) is removed, or a clear error."""
    path = lock_dir / f"{key}.lock"
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            os.rmdir(path)  # only an empty one: anything else is not ours to delete
            record_repair("locks")
    except FileNotFoundError:
        pass  # another process removed it first
    except OSError as exc:
        raise CacheError(
            exc.errno,
            f"cannot use the lock file {path}: {exc.strerror or exc}. A directory or file in the way there "
            f"is not reusespec's; remove it, or {_FIX}.",
        ) from exc
    return path


def fallback_dir(root: Path, cache_dir: Path | None = None) -> Path:
    """A per-user directory for a cache whose own directory is not writable.

    Named after the original directory (the run's ``cache_dir`` when given, with ``root``'s place
    inside it), so every process of a run (xdist workers) and later runs on this machine share it.
    """
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    base = cache_dir if cache_dir is not None else root
    name = digest("fallback", str(base.expanduser().absolute()))[:16]
    fallback = Path(tempfile.gettempdir()) / f"reusespec-{user}" / "features-fallback" / name
    if cache_dir is not None and root != cache_dir:
        try:
            return fallback / root.relative_to(cache_dir)
        except ValueError:
            return fallback / digest("fallback", str(root))[:16]
    return fallback


def _check_writable(root: Path, subdirs: tuple[str, ...] = ("entries", "locks", "tmp")) -> None:
    """Raise OSError unless files can be created (and removed) in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for sub in subdirs:
        (root / sub).mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=root / subdirs[-1] if subdirs else root)
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
