"""What ``Reuse.shift`` and ``Reuse.rank`` do without a session: shift a test split, score features."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from reusespec.devices import single_thread_below
from reusespec.tasks.base import Split, Task


def corrupted_test_split(
    task: Task, corruption: str, severity: int, corruption_seed: int
) -> tuple[Split, str]:
    """The task's test split under ``corruption`` at ``severity`` (text or image), and its tag."""
    from reusespec.corruptions import corrupt

    if task.modality == "text":
        from reusespec.text_corruptions import corrupt_texts

        def apply_text(texts: list[str], positions: np.ndarray) -> list[str]:
            return corrupt_texts(texts, corruption, severity, corruption_seed, indices=positions)

        tag = f"{corruption}@{severity}"
        return task.test.transformed(apply_text, f"text:{tag}:seed={corruption_seed}"), tag

    def apply(images: torch.Tensor, positions: np.ndarray) -> torch.Tensor:
        return corrupt(images.cpu(), corruption, severity, corruption_seed, indices=positions)

    tag = f"{corruption}@{severity}"
    return task.test.transformed(apply, f"{tag}:seed={corruption_seed}"), tag


def score_features(
    method: str, features: np.ndarray, labels: np.ndarray, source_head: nn.Module | None
) -> float:
    """A transferability score of one backbone's features, with its source head's softmax if it has one."""
    from reusespec.transferability import transferability_score

    source_probs = None
    if source_head is not None:
        with torch.inference_mode():
            head = source_head.cpu().float()
            source_probs = torch.softmax(head(torch.from_numpy(features).float()), dim=1).double().numpy()
    n, d = features.shape
    # Single-threaded below ~1e9 flops (an SVD costs n d min(n, d)): same score serial or under xdist.
    with single_thread_below(n * d * min(n, d), 1e9, "cpu"):
        return transferability_score(method, features, labels, source_probs=source_probs)
