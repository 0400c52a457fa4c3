"""Matrix factorisation through the ``implicit`` library (ALS and BPR).

We do not re-implement the solvers: ``implicit`` fits the factors, recfuse
keeps them as plain arrays (saved with safetensors) and scores with one
matrix product.  ALS can also *fold in* a history it has not seen (an
anonymous session, or events that arrived after training) by solving the
user's least-squares problem against the fixed item factors — the same
update ALS itself makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np

from recfuse.data.dataset import Interactions
from recfuse.data.split import EvalSet, Queries
from recfuse.models.base import ModelConfig, Recommender


@dataclass
class ALSConfig(ModelConfig):
    """Settings of :class:`ALS` (implicit's alternating least squares)."""

    embedding_size: int = 64
    """Factors per user and item."""
    reg: float = 0.1
    """L2 regularisation of the factors."""
    alpha: float = 1.0
    """Confidence weight of an observed event."""
    epochs: int = 20
    """Alternating sweeps."""
    fold_in: bool = True
    """Rank from the query's history (training events and later ones) rather than the fitted user row."""


@dataclass
class BPRConfig(ModelConfig):
    """Settings of :class:`BPR` (implicit's Bayesian personalised ranking)."""

    embedding_size: int = 64
    """Factors per user and item."""
    reg: float = 0.01
    """L2 regularisation of the factors."""
    learning_rate: float = 0.05
    """SGD step size."""
    epochs: int = 100
    """Passes over the events."""


class _FactorModel(Recommender):
    user_factors: np.ndarray
    item_factors: np.ndarray

    def _user_vectors(self, queries: Queries) -> np.ndarray:
        users = queries.user
        known = (users >= 0) & (users < len(self.user_factors))
        out = np.zeros((len(queries), self.item_factors.shape[1]), dtype=np.float32)
        out[known] = self.user_factors[users[known]]
        return out

    def score(self, queries: Queries) -> np.ndarray:
        return self._user_vectors(queries) @ self.item_factors.T

    def history_weights(self, query: Queries, items: np.ndarray) -> np.ndarray:
        """The dot product of each recommended item's factors with each history item's."""
        return self.item_factors[items] @ self.item_factors[query.history(0)].T

    def state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors, self.item_factors = state["user_factors"], state["item_factors"]


class ALS(_FactorModel):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) via ``implicit``.

    Examples
    --------
    >>> from recfuse.data.dataset import Interactions
    >>> d = Interactions.from_sequences([("u", ["a", "b"]), ("v", ["a", "b"]), ("w", ["c"])])
    >>> ALS(embedding_size=2, epochs=5).fit(d).item_factors.shape
    (3, 2)
    """

    name = "als"
    Config = ALSConfig
    config: ALSConfig

    def fit(self, train: Interactions, valid: EvalSet | None = None, *, item_text: np.ndarray | None = None) -> Self:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        c = self.config
        self.n_items, self.n_users = train.n_items, train.n_users
        # implicit runs its own threads; a BLAS thread pool on top only oversubscribes the cores
        # (implicit warns about it when the model is built, hence the limit around both).
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=c.embedding_size, regularization=c.reg, alpha=c.alpha, iterations=c.epochs,
                random_state=c.seed, calculate_training_loss=False,
            )
            model.fit(train.matrix(), show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        return self

    def _user_vectors(self, queries: Queries) -> np.ndarray:
        if not self.config.fold_in:
            return super()._user_vectors(queries)
        Y = self.item_factors.astype(np.float64)
        d = Y.shape[1]
        base = Y.T @ Y + self.config.reg * np.eye(d)
        out = np.zeros((len(queries), d), dtype=np.float32)
        conf = self.config.alpha  # implicit: confidence = alpha * value, value 1 for every event
        for b in range(len(queries)):
            h = np.unique(queries.history(b))
            if len(h) == 0:
                continue
            Yh = Y[h]
            A = base + (conf - 1.0) * (Yh.T @ Yh)
            out[b] = np.linalg.solve(A, conf * Yh.sum(axis=0))
        return out


class BPR(_FactorModel):
    """Bayesian personalised ranking (Rendle et al. 2009) via ``implicit``.

    One thread, so that a seed gives the same factors every time.
    """

    name = "bpr"
    Config = BPRConfig
    config: BPRConfig

    def fit(self, train: Interactions, valid: EvalSet | None = None, *, item_text: np.ndarray | None = None) -> Self:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        c = self.config
        self.n_items, self.n_users = train.n_items, train.n_users
        model = BayesianPersonalizedRanking(
            factors=c.embedding_size, learning_rate=c.learning_rate, regularization=c.reg,
            iterations=c.epochs, random_state=c.seed, num_threads=1,
        )
        model.fit(train.matrix(), show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        return self
