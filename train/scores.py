"""Accuracy, macro F1 and per-class recall: one definition for training, quantising, reports."""

from __future__ import annotations

import numpy as np

from emopi.edge.contract import LABELS


def per_class_recall(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Share of each class's faces predicted as that class (0 for a class with no faces)."""
    return {
        label: float((pred[y == i] == i).mean()) if (y == i).any() else 0.0
        for i, label in enumerate(LABELS)
    }


def scores(y: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy, macro F1 and per-class recall of class probabilities ``probs`` against ``y``."""
    from sklearn.metrics import f1_score

    pred = probs.argmax(axis=1)
    labels = list(range(len(LABELS)))
    return {
        "accuracy": float((pred == y).mean()),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "per_class_recall": per_class_recall(y, pred),
    }
