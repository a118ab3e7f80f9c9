"""Classification metrics of a head's predictions (scikit-learn where it fits)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score


def classification_metrics(y_true: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1 and, with at least 5 classes, top-5 accuracy.

    ``logits`` has one column per class of the task (scores or probabilities: only their
    order matters). Top-5 is omitted below 5 classes, as in the linear-probe literature.
    """
    y_true = np.asarray(y_true)
    num_classes = logits.shape[1]
    y_pred = logits.argmax(axis=1)
    metrics = {
        "accuracy": float(np.mean(y_pred == y_true)),
        "macro_f1": float(
            f1_score(y_true, y_pred, average="macro", labels=np.arange(num_classes), zero_division=0)
        ),
    }
    if num_classes >= 5:
        top5 = np.argpartition(-logits, 4, axis=1)[:, :5]
        metrics["top5_accuracy"] = float(np.mean((top5 == y_true[:, None]).any(axis=1)))
    return metrics
