"""Metrics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recfuse import metrics


def test_single_target_hand_computed() -> None:
    # Query 0: target at rank 3; query 1: target missing from the top 5.
    top = np.array([[7, 8, 1, 4, 5], [1, 2, 3, 4, 5]])
    hits = metrics.hits_matrix(top, np.array([0, 1, 2]), np.array([1, 9]))
    m = metrics.per_query(hits, np.array([1, 1]), (2, 5))
    assert m["ndcg@5"].tolist() == pytest.approx([1 / math.log2(4), 0.0])
    assert m["mrr@5"].tolist() == pytest.approx([1 / 3, 0.0])
    assert m["recall@5"].tolist() == [1.0, 0.0]
    assert m["hit@5"].tolist() == [1.0, 0.0]
    assert m["precision@5"].tolist() == pytest.approx([0.2, 0.0])
    assert m["ndcg@2"].tolist() == [0.0, 0.0]  # rank 3 is outside the top 2
    assert m["mrr@2"].tolist() == [0.0, 0.0]


def test_multiple_targets_hand_computed() -> None:
    # Targets {2, 5, 9}; top-4 = [2, 3, 5, 6]: hits at ranks 1 and 3.
    top = np.array([[2, 3, 5, 6]])
    hits = metrics.hits_matrix(top, np.array([0, 3]), np.array([2, 5, 9]))
    assert hits.tolist() == [[True, False, True, False]]
    m = metrics.per_query(hits, np.array([3]), (4,))
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg@4"][0] == pytest.approx(dcg / idcg)
    assert m["recall@4"][0] == pytest.approx(2 / 3)
    assert m["precision@4"][0] == pytest.approx(0.5)
    assert m["mrr@4"][0] == pytest.approx(1.0)


def test_ideal_dcg_caps_at_k() -> None:
    # 5 targets, all of the top 2 are hits: NDCG@2 must be exactly 1.
    hits = np.array([[True, True]])
    assert metrics.per_query(hits, np.array([5]), (2,))["ndcg@2"][0] == pytest.approx(1.0)


def test_beyond_accuracy_hand_computed() -> None:
    top = np.array([[0, 1], [0, 2]])
    assert metrics.coverage(top, 4) == 0.75
    # exposure [2, 1, 1, 0] sorted [0, 1, 1, 2]: sum((2i - n - 1) x_i) / (n * sum x) = (-3*0 - 1 + 1 + 3*2) / 16
    assert metrics.gini(top, 4) == pytest.approx(6 / 16)
    item_users = np.array([3, 1, 0, 0])  # 3 train users
    expected = np.mean([-math.log2(4 / 4), -math.log2(2 / 4), -math.log2(4 / 4), -math.log2(1 / 4)])
    assert metrics.novelty(top, item_users, 3) == pytest.approx(expected)


def test_k_larger_than_ranked_list_is_an_error() -> None:
    with pytest.raises(ValueError, match="K=10"):
        metrics.per_query(np.zeros((1, 5), dtype=bool), np.array([1]), (10,))
