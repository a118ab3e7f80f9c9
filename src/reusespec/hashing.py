"""Content hashes used as cache keys and fingerprints."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch


def digest(*parts: Any) -> str:
    """A stable hex digest of JSON-serialisable parts (dict keys sorted)."""
    payload = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def array_digest(array: np.ndarray | torch.Tensor) -> str:
    """Digest of an array's dtype, shape and bytes."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().contiguous().numpy()
    array = np.ascontiguousarray(array)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{array.dtype.str}{array.shape}".encode())
    h.update(array.view(np.uint8).reshape(-1).data if array.size else b"")
    return h.hexdigest()


def state_dict_digest(state: dict[str, torch.Tensor]) -> str:
    """Digest of a state dict's names, dtypes, shapes and values, independent of the file format."""
    h = hashlib.blake2b(digest_size=16)
    for key in sorted(state):
        tensor = state[key]
        h.update(key.encode())
        h.update(
            array_digest(tensor.to(torch.float32) if tensor.dtype == torch.bfloat16 else tensor).encode()
        )
    return h.hexdigest()


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
