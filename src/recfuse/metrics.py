"""Ranking metrics, computed per query so they can be averaged, sliced and tested.

Definitions (the same as RecBole's for full ranking):

* ``hit@K``      1 if any target is in the top K.
* ``recall@K``   targets in the top K / number of targets (= hit for one target).
* ``precision@K`` targets in the top K / K.
* ``ndcg@K``     DCG of the top K (gain 1 per target, ``1/log2(rank + 1)`` with
  ranks from 1) over the ideal DCG of ``min(#targets, K)`` targets.
* ``mrr@K``      1 / rank of the first target in the top K, else 0.

Beyond accuracy, over all recommendation lists of one run:

* ``coverage@K`` share of the catalogue that appears in at least one top K;
* ``novelty@K``  mean self-information ``-log2 p(i)`` of recommended items,
  ``p(i) = (train users of i + 1) / (train users + 1)``;
* ``gini@K``     Gini coefficient of item exposure (0 = every item recommended
  equally often, 1 = one item takes every slot).
"""

from __future__ import annotations

import numpy as np

ACCURACY = ("recall", "ndcg", "mrr", "precision", "hit")


def hits_matrix(top: np.ndarray, target_indptr: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``(B, K)`` booleans: is ``top[b, r]`` one of query ``b``'s targets?

    Examples
    --------
    >>> hits_matrix(np.array([[3, 1, 2]]), np.array([0, 2]), np.array([2, 9])).tolist()
    [[False, False, True]]
    """
    B = top.shape[0]
    n_t = np.diff(target_indptr)
    if np.all(n_t == 1):  # fast path: leave-one-out
        return top == targets[:, None]
    owner = np.repeat(np.arange(B), n_t)
    # A (query, item) pair is a hit iff it appears among the (owner, target) pairs.
    span = np.int64(max(int(top.max(initial=0)), int(targets.max(initial=0))) + 1)
    pair_t = owner.astype(np.int64) * span + targets
    pair_top = np.arange(B, dtype=np.int64)[:, None] * span + top
    return np.isin(pair_top, pair_t)


def per_query(hits: np.ndarray, n_targets: np.ndarray, ks: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Per-query accuracy metrics at each K, keyed ``"ndcg@10"`` etc.

    Examples
    --------
    Target at rank 2 of one query:

    >>> m = per_query(np.array([[False, True, False]]), np.array([1]), (1, 3))
    >>> round(float(m["ndcg@3"][0]), 4), float(m["mrr@3"][0]), float(m["recall@1"][0])
    (0.6309, 0.5, 0.0)
    """
    out: dict[str, np.ndarray] = {}
    K_max = hits.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, K_max + 2))
    n_targets = np.maximum(n_targets, 1)
    any_rank = np.where(hits.any(axis=1), hits.argmax(axis=1), K_max)  # 0-based rank of first hit
    for k in ks:
        if k > K_max:
            raise ValueError(f"K={k} but only {K_max} items were ranked")
        h = hits[:, :k]
        n_hit = h.sum(axis=1)
        dcg = (h * discounts[:k]).sum(axis=1)
        ideal = np.cumsum(discounts[:k])[np.minimum(n_targets, k) - 1]
        out[f"recall@{k}"] = n_hit / n_targets
        out[f"hit@{k}"] = (n_hit > 0).astype(np.float64)
        out[f"precision@{k}"] = n_hit / k
        out[f"ndcg@{k}"] = dcg / ideal
        out[f"mrr@{k}"] = np.where(any_rank < k, 1.0 / (any_rank + 1), 0.0)
    return out


def coverage(top: np.ndarray, n_items: int) -> float:
    """Share of the catalogue recommended at least once.

    >>> coverage(np.array([[0, 1], [1, 2]]), 10)
    0.3
    """
    return float(len(np.unique(top)) / n_items)


def novelty(top: np.ndarray, item_users: np.ndarray, n_users: int) -> float:
    """Mean self-information ``-log2 p(i)`` of the recommended items.

    >>> float(novelty(np.array([[0]]), np.array([1, 3]), 3))  # p = (1+1)/(3+1)
    1.0
    """
    p = (item_users[top] + 1.0) / (n_users + 1.0)
    return float(np.mean(-np.log2(p)))


def gini(top: np.ndarray, n_items: int) -> float:
    """Gini coefficient of how often each catalogue item is recommended.

    >>> gini(np.array([[0], [1]]), 2)
    0.0
    >>> round(gini(np.array([[0], [0]]), 2), 3)
    0.5
    """
    exposure = np.sort(np.bincount(top.ravel(), minlength=n_items).astype(np.float64))
    n = len(exposure)
    if exposure.sum() == 0:
        return 0.0
    cum = np.arange(1, n + 1)
    return float(((2 * cum - n - 1) * exposure).sum() / (n * exposure.sum()))
