"""Metrics against hand-computed values and brute-force definitions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from samplecnn.trainer.metrics import (
    accuracy,
    average_precision,
    evaluate,
    macro_f1,
    macro_pr_auc,
    macro_roc_auc,
    roc_auc,
)


def test_roc_auc_by_hand():
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: 3 of 4 pairs ordered correctly
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts one half
    assert roc_auc([1, 1, 0], [0.9, 0.8, 0.1]) == pytest.approx(1.0)
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_roc_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    s = rng.integers(0, 8, 60) / 8  # many ties
    pairs = [(p, n) for p, n in itertools.product(s[y == 1], s[y == 0])]
    expected = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs])
    assert roc_auc(y, s) == pytest.approx(expected)


def test_average_precision_by_hand():
    # ranked: 0.8 (+), 0.4 (-), 0.35 (+), 0.1 (-): 0.5 * 1 + 0.5 * 2/3
    assert average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(5 / 6)
    # tied top pair (one +, one -) is one threshold: 0.5 * 1/2 + 0.5 * 2/3
    assert average_precision([1, 0, 1], [0.5, 0.5, 0.2]) == pytest.approx(0.25 + 1 / 3)
    assert average_precision([0, 1, 0, 0], [0.9, 0.8, 0.1, 0.2]) == pytest.approx(0.5)
    assert math.isnan(average_precision([0, 0], [0.1, 0.2]))


def test_macro_averages_skip_labels_with_one_class():
    y = np.array([[0, 1, 0], [0, 1, 1], [1, 1, 0], [1, 1, 1]])
    s = np.array([[0.1, 0.3, 0.9], [0.4, 0.2, 0.8], [0.35, 0.5, 0.1], [0.8, 0.6, 0.7]])
    # label 0: 0.75 (as above); label 1: all positive, skipped; label 2: pos 0.8, 0.7 vs neg 0.9, 0.1 -> 0.5
    assert macro_roc_auc(y, s) == pytest.approx((0.75 + 0.5) / 2)
    # label 2 ranked: 0.9 (-), 0.8 (+), 0.7 (+), 0.1 (-): 0.5 * 1/2 + 0.5 * 2/3
    assert macro_pr_auc(y, s) == pytest.approx((5 / 6 + 0.25 + 1 / 3) / 2)
    result = evaluate(y, s, "tags")
    assert result["n_labels_scored"] == 2 and "accuracy" not in result


def test_accuracy_and_macro_f1_by_hand():
    truth = np.eye(3)[[0, 0, 1, 2]]
    scores = np.eye(3)[[0, 1, 1, 1]] * 0.9 + 0.05
    assert accuracy(truth, scores) == pytest.approx(0.5)
    # F1: class 0: 2/3, class 1: tp 1 fp 2 -> 1/2, class 2: 0
    assert macro_f1(truth, scores) == pytest.approx((2 / 3 + 0.5 + 0) / 3)
    assert macro_f1(np.array([0, 0, 1, 2]), scores) == pytest.approx(macro_f1(truth, scores))
    result = evaluate(truth, scores, "classes")
    assert result["accuracy"] == pytest.approx(0.5) and "roc_auc" in result


def test_shape_mismatch_and_bad_task_are_errors():
    with pytest.raises(ValueError, match=r"\(3,\) != y_score shape \(2,\)"):
        roc_auc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="'genres' is not one of tags, classes"):
        evaluate(np.eye(2), np.eye(2), "genres")
