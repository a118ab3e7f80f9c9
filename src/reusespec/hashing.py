"""Content hashes used as cache keys and fingerprints.

numpy only: torch is looked up only when a tensor is passed (a tensor cannot exist without
torch imported), so processes that just read the feature cache start without importing it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


def digest(*parts: Any) -> str:
    """A stable hex digest of JSON-serialisable parts (dict keys sorted)."""
    payload = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def _is_tensor(obj: object) -> bool:
    torch_module = sys.modules.get("torch")
    return torch_module is not None and isinstance(obj, torch_module.Tensor)


def array_digest(array: np.ndarray | torch.Tensor) -> str:
    """Digest of an array's dtype, shape and bytes."""
    if _is_tensor(array):
        import torch

        tensor: torch.Tensor = array  # type: ignore[assignment]
        if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
            tensor = tensor.to(torch.float32)
        array = tensor.detach().cpu().contiguous().numpy()
    array = np.ascontiguousarray(array)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{array.dtype.str}{array.shape}".encode())
    h.update(array.view(np.uint8).reshape(-1).data if array.size else b"")
    return h.hexdigest()


def state_dict_digest(state: dict[str, torch.Tensor]) -> str:
    """Digest of a state dict's names, dtypes, shapes and values, independent of the file format."""
    h = hashlib.blake2b(digest_size=16)
    for key in sorted(state):
        h.update(key.encode())
        h.update(array_digest(state[key]).encode())
    return h.hexdigest()


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
