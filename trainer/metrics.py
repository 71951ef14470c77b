"""Clip-level evaluation metrics in plain numpy (no sklearn), shared by `train` and `fit`.

Tags (multi-label): macro ROC-AUC and macro PR-AUC (average precision, sklearn's definition:
sum over thresholds of (recall step) x precision), averaged over the labels that have both
positive and negative clips; labels with one class only are undefined and left out (counted
in ``n_labels_scored``). Classes (single-label): accuracy and macro F1 of the argmax.
"""

from __future__ import annotations

import numpy as np


def _check(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.shape != y_score.shape:
        raise ValueError(f"y_true shape {y_true.shape} != y_score shape {y_score.shape}")
    return y_true, y_score


def _tie_groups(score_desc: np.ndarray) -> np.ndarray:
    """Indices of the last element of each run of equal scores in a descending array."""
    return np.r_[np.nonzero(np.diff(score_desc))[0], len(score_desc) - 1]


def roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """ROC-AUC of one label. y_true, y_score: (n,). NaN when only one class is present.

    The probability that a random positive scores above a random negative (ties count 1/2),
    computed from tie-averaged ranks (Mann-Whitney U).
    """
    y_true, y_score = _check(y_true, y_score)
    positive = y_true > 0.5
    n_pos = int(positive.sum())
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(y_score, kind="mergesort")
    sorted_scores = y_score[order]
    ranks = np.empty(len(y_score))
    starts = np.r_[0, np.nonzero(np.diff(sorted_scores))[0] + 1]
    ends = np.r_[starts[1:], len(sorted_scores)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0  # average 1-based rank of the tie run
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Average precision (area under the PR curve, step-wise) of one label. NaN without positives."""
    y_true, y_score = _check(y_true, y_score)
    positive = (y_true > 0.5).astype(np.float64)
    n_pos = positive.sum()
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-y_score, kind="mergesort")
    last = _tie_groups(y_score[order])
    true_positives = np.cumsum(positive[order])[last]
    predicted = last + 1.0
    precision = true_positives / predicted
    recall_step = np.diff(np.r_[0.0, true_positives]) / n_pos
    return float((recall_step * precision).sum())


def _macro(metric, y_true: np.ndarray, y_score: np.ndarray) -> tuple[float, int]:
    y_true, y_score = _check(y_true, y_score)
    if y_true.ndim != 2:
        raise ValueError(f"expected (n_clips, n_labels) arrays, got shape {y_true.shape}")
    both = [(y_true[:, j] > 0.5).any() and (y_true[:, j] <= 0.5).any() for j in range(y_true.shape[1])]
    values = [metric(y_true[:, j], y_score[:, j]) for j in range(y_true.shape[1]) if both[j]]
    return (float(np.mean(values)) if values else float("nan")), len(values)


def macro_roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean ROC-AUC over labels with both classes. y_true, y_score: (n_clips, n_labels)."""
    return _macro(roc_auc, y_true, y_score)[0]


def macro_pr_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean average precision over labels with both classes. y_true, y_score: (n_clips, n_labels)."""
    return _macro(average_precision, y_true, y_score)[0]


def accuracy(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Single-label accuracy. y_true: one-hot (n, k) or class indices (n,); y_score: (n, k)."""
    truth = _class_indices(y_true)
    return float((np.asarray(y_score).argmax(axis=1) == truth).mean())


def macro_f1(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean F1 over the classes present in y_true or the predictions (argmax of y_score (n, k))."""
    truth = _class_indices(y_true)
    predicted = np.asarray(y_score).argmax(axis=1)
    scores = []
    for c in np.union1d(truth, predicted):
        tp = np.sum((predicted == c) & (truth == c))
        fp = np.sum((predicted == c) & (truth != c))
        fn = np.sum((predicted != c) & (truth == c))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def _class_indices(y_true: np.ndarray) -> np.ndarray:
    y_true = np.asarray(y_true)
    return y_true.argmax(axis=1) if y_true.ndim == 2 else y_true.astype(np.int64)


def evaluate(y_true: np.ndarray, y_score: np.ndarray, task: str) -> dict[str, float]:
    """All metrics of a task ("tags" or "classes"). y_true, y_score: (n_clips, n_labels).

    Tags: roc_auc, pr_auc, n_labels_scored. Classes: accuracy, macro_f1, and also roc_auc /
    pr_auc (one-vs-rest, macro) so both tasks report comparable numbers.
    """
    roc, scored = _macro(roc_auc, y_true, y_score)
    result = {"roc_auc": roc, "pr_auc": _macro(average_precision, y_true, y_score)[0], "n_labels_scored": scored}
    if task == "classes":
        result.update(accuracy=accuracy(y_true, y_score), macro_f1=macro_f1(y_true, y_score))
    elif task != "tags":
        raise ValueError(f"task {task!r} is not one of tags, classes")
    return result
