"""Most-popular baseline: score = number of training events of the item."""

from __future__ import annotations

from typing import Self

import numpy as np

from recfuse.data.dataset import Interactions
from recfuse.data.split import EvalSet, Queries
from recfuse.models.base import Recommender


class Popularity(Recommender):
    """Ranks items by how many training events they have.

    Examples
    --------
    >>> from recfuse.data.dataset import Interactions
    >>> from recfuse.data.split import Queries
    >>> d = Interactions.from_sequences([("u", ["a", "b"]), ("v", ["b"])])
    >>> Popularity().fit(d).score(Queries.from_histories([[]])).tolist()
    [[1.0, 2.0]]
    """

    name = "pop"

    def fit(self, train: Interactions, valid: EvalSet | None = None) -> Self:
        self.n_items, self.n_users = train.n_items, train.n_users
        self.counts = train.item_counts().astype(np.float32)
        return self

    def score(self, queries: Queries) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(queries), self.n_items)).copy()

    def state(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.counts = state["counts"]
