"""Atomic writes: a reader sees the old file or the whole new one, never a part.

Every artefact reusespec writes and later trusts goes through here. A write goes to a
temporary file in the destination's own directory (``.NAME.tmp<pid>-<random>``), is flushed and
fsynced, and is renamed over the destination with one ``os.replace``; on any error the temporary
file is removed and the error names the file (a full disk says so). A temporary file left by a
writer that was killed is removed by :func:`remove_stale_temps` once its process is gone.

Public API:

- :func:`write_bytes`, :func:`write_text`, :func:`write_json`: atomic writes; ``checksum=True``
  also writes a sidecar ``NAME.checksum`` that :func:`read_verified` checks.
- :func:`read_verified`: the bytes of a file written with ``checksum=True``, or
  :class:`DamagedFileError` when the file or its sidecar is missing, truncated or altered.
- :func:`write_json` writes strict JSON: NaN and infinities as ``null``, named in a ``non_finite``
  entry (:func:`reusespec.strict_json.strict`).
- :func:`remove_stale_temps`: remove the temporary files of dead writers in a directory.
- :class:`AtomicWriteError`: a write that failed (``errno`` kept; ENOSPC says the disk is full).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from reusespec.errors import ReuseSpecError
from reusespec.strict_json import strict

CHECKSUM_SUFFIX = ".checksum"
_FULL_DISK = {errno.ENOSPC, errno.EDQUOT}
_TEMP_NAME = re.compile(r"^\.?(?P<name>.+)\.tmp(?P<pid>\d+)(-[0-9a-f]+)?$")


class AtomicWriteError(ReuseSpecError, OSError):
    """A file could not be written (full disk, no permission); nothing partial was left behind."""


class DamagedFileError(ReuseSpecError):
    """A file written with a checksum does not match it (truncated, altered, or never finished)."""


def write_bytes(path: str | Path, data: bytes, *, checksum: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (and its checksum sidecar, after it, if asked)."""
    path = Path(path)
    with _temporary(path) as f:
        f.write(data)
    if checksum:
        with _temporary(_sidecar(path)) as f:
            f.write(_checksum_line(data).encode())


def write_text(path: str | Path, text: str, *, checksum: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"), checksum=checksum)


def write_json(path: str | Path, document: Any, *, indent: int | None = 1, checksum: bool = False) -> None:
    """Write ``document`` as strict JSON (non-finite floats as null) to ``path`` atomically."""
    text = json.dumps(strict(document), indent=indent, allow_nan=False, default=str)
    write_text(path, text + "\n", checksum=checksum)


def read_verified(path: str | Path) -> bytes:
    """The bytes of ``path`` if they match the checksum written with them, else DamagedFileError."""
    path = Path(path)
    try:
        data = path.read_bytes()
        expected = _sidecar(path).read_text()
    except FileNotFoundError as exc:
        raise DamagedFileError(f"{path}: {exc.filename} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DamagedFileError(f"{path} cannot be read: {exc}") from None
    if expected.strip() != _checksum_line(data).strip():
        raise DamagedFileError(
            f"{path} does not match its checksum ({len(data)} bytes on disk): it was truncated or altered"
        )
    return data


def remove_stale_temps(directory: str | Path) -> int:
    """Remove temporary files in ``directory`` whose writer process is gone; how many were removed.

    Recognises this module's ``.NAME.tmp<pid>-<hex>`` and the older ``NAME.tmp<pid>``.
    """
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        if _process_alive(int(match["pid"])):
            continue
        try:
            os.unlink(entry.path)
            removed += 1
        except OSError:
            pass  # another cleaner got there first, or the directory is read-only
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists under another user (or cannot tell): leave its file alone
    return True


@contextmanager
def _temporary(path: Path) -> Iterator[IO[bytes]]:
    tmp = path.parent / f".{path.name}.tmp{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_directory(path.parent)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise write_error(exc, path) from exc
    except BaseException:
        _unlink_quietly(tmp)
        raise


def write_error(exc: OSError, path: Path) -> AtomicWriteError:
    """An :class:`AtomicWriteError` naming ``path`` and the cause (a full disk said so)."""
    if isinstance(exc, AtomicWriteError):
        return exc
    if exc.errno in _FULL_DISK:
        message = (
            f"cannot write {path}: the disk holding {path.parent} is full ({exc.strerror}); "
            "nothing partial was left behind. Free space there or point reusespec at another directory."
        )
    else:
        message = (
            f"cannot write {path}: {exc.strerror or exc}. Check that {path.parent} is a writable directory."
        )
    return AtomicWriteError(exc.errno, message) if exc.errno is not None else AtomicWriteError(message)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); directories cannot be opened on Windows."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    with suppress(OSError):
        os.unlink(path)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def _checksum_line(data: bytes) -> str:
    return f"blake2b-128 {hashlib.blake2b(data, digest_size=16).hexdigest()} {len(data)}\n"
