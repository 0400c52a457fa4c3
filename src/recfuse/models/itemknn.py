"""Item-based k-nearest neighbours on the binary user-item matrix.

Similarity is cosine between item columns; each item keeps its ``neighbours``
most similar items (RecBole's ItemKNN keeps 100, shrink 0, the same here by
default).  A user's score for item ``j`` is the sum of ``sim(i, j)`` over the
history items ``i`` that are among ``j``'s neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import scipy.sparse as sp

from recfuse.data.dataset import Interactions
from recfuse.data.split import EvalSet, Queries
from recfuse.models.base import ModelConfig, Recommender


@dataclass
class ItemKNNConfig(ModelConfig):
    """Settings of :class:`ItemKNN`."""

    neighbours: int = 100
    """Most similar items kept per item."""
    shrink: float = 0.0
    """Added to the cosine's denominator: damps similarities resting on few co-occurrences."""


class ItemKNN(Recommender):
    """Cosine item-item kNN.

    Examples
    --------
    >>> from recfuse.data.dataset import Interactions
    >>> from recfuse.data.split import Queries
    >>> d = Interactions.from_sequences([("u", ["a", "b"]), ("v", ["a", "b"]), ("w", ["c"])])
    >>> s = ItemKNN().fit(d).score(Queries.from_histories([[0]]))  # history: item a
    >>> s.round(3).tolist()  # b co-occurs with a in every user, c never
    [[0.0, 1.0, 0.0]]
    """

    name = "itemknn"
    Config = ItemKNNConfig
    config: ItemKNNConfig

    def fit(self, train: Interactions, valid: EvalSet | None = None, *, item_text: np.ndarray | None = None) -> Self:
        self.n_items, self.n_users = train.n_items, train.n_users
        X = train.matrix().tocsc()  # (U, I)
        norms = np.sqrt(np.asarray(X.power(2).sum(axis=0)).ravel())
        co = (X.T @ X).toarray().astype(np.float32)  # (I, I) co-occurrence; fine below ~50k items
        np.fill_diagonal(co, 0.0)
        sim = co / (np.outer(norms, norms) + self.config.shrink + 1e-6)
        k = min(self.config.neighbours, self.n_items - 1) if self.n_items > 1 else 0
        # Column j keeps its k most similar items (rows); the rest is zeroed.
        if 0 < k < self.n_items:
            keep = np.argpartition(-sim, k - 1, axis=0)[:k]  # (k, I)
            cols = np.broadcast_to(np.arange(self.n_items), keep.shape)
            W = sp.csc_matrix((sim[keep, cols].ravel(), (keep.ravel(), cols.ravel())), shape=sim.shape)
        else:
            W = sp.csc_matrix(sim)
        W.eliminate_zeros()
        self.W = W.tocsr().astype(np.float32)
        return self

    def score(self, queries: Queries) -> np.ndarray:
        rows = np.repeat(np.arange(len(queries)), queries.lengths())
        H = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, queries.items)), shape=(len(queries), self.n_items)
        )
        H.data[:] = 1.0  # binary history even if an item repeats
        return np.asarray((H @ self.W).todense(), dtype=np.float32)

    def history_weights(self, query: Queries, items: np.ndarray) -> np.ndarray:
        """Each history item's similarity term in the score of each of ``items`` (the score is their sum)."""
        return np.asarray(self.W[query.history(0)][:, items].todense(), np.float32).T

    def state(self) -> dict[str, np.ndarray]:
        return {"data": self.W.data, "indices": self.W.indices, "indptr": self.W.indptr}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.W = sp.csr_matrix((state["data"], state["indices"], state["indptr"]), shape=(self.n_items, self.n_items))
