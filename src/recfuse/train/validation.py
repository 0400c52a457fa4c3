"""The early-stopping signal: mean NDCG@k over a validation set, full ranking, history masked.

The same ranking and metric as :func:`recfuse.evaluate.protocol.evaluate`, without its extras (slices,
beyond-accuracy), so that training needs nothing from ``recfuse.evaluate``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from recfuse import metrics
from recfuse.data.split import EvalSet, Queries


class Ranker(Protocol):
    """Anything that ranks items for queries, history items left out."""

    def recommend(self, queries: Queries, k: int, exclude_history: bool = True) -> tuple[np.ndarray, np.ndarray]: ...


def valid_ndcg(model: Ranker, evalset: EvalSet, k: int = 10, batch_size: int = 1024) -> float:
    """Mean NDCG@k of ``model`` on ``evalset``, each query's history items masked out of its ranking.

    >>> class Oracle:
    ...     def recommend(self, queries, k, exclude_history=True):
    ...         return np.array([[2, 0, 1]])[:, :k], np.zeros((1, k))
    >>> e = EvalSet(Queries.from_histories([[5]]), np.array([0, 1]), np.array([0]))
    >>> round(valid_ndcg(Oracle(), e, k=3), 4)  # target at rank 2: 1 / log2(3)
    0.6309
    """
    total = 0.0
    for start in range(0, len(evalset), batch_size):
        rows = np.arange(start, min(start + batch_size, len(evalset)))
        sub = evalset.take(rows)
        top = model.recommend(sub.queries, k)[0]
        hits = metrics.hits_matrix(top, sub.target_indptr, sub.targets)
        total += float(metrics.per_query(hits, np.diff(sub.target_indptr), (k,))[f"ndcg@{k}"].sum())
    return total / max(len(evalset), 1)
