"""One interface for every model: ``fit(train, valid) -> self``, batch ``score``.

A model directory holds ``config.json`` (model name + its typed config) and
``state.safetensors`` (named arrays); no pickle anywhere.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np
from safetensors.numpy import load_file, save_file

from recfuse.config import ModelConfig
from recfuse.data.dataset import Interactions
from recfuse.data.split import EvalSet, Queries

if TYPE_CHECKING:
    import torch

__all__ = ["Explainer", "ItemAdder", "ModelConfig", "Recommender", "VectorScorer", "mask_history", "top_k"]


class Recommender(ABC):
    """Base class.  Subclasses set ``name``, ``Config`` and implement the verbs.

    ``fit`` sees the training events only; ``valid`` (queries + targets) is
    there for early stopping and nothing else.
    """

    name: ClassVar[str]
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    reads_text: ClassVar[bool] = False  # whether ``fit`` uses ``item_text``

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        config = config if config is not None else self.Config()
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        self.n_items = 0
        self.n_users = 0
        self.fit_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ verbs
    @abstractmethod
    def fit(self, train: Interactions, valid: EvalSet | None = None, *, item_text: np.ndarray | None = None) -> Self:
        """Learn from ``train``; return ``self``.

        ``item_text``: ``(n_items, d)`` item text vectors, rows in ``train``'s item order (from
        :func:`recfuse.text.cache.encode_items`); read by models with ``reads_text``, ignored by the rest.
        """

    @abstractmethod
    def score(self, queries: Queries) -> np.ndarray:
        """Scores ``(B, n_items)`` (float32; higher is better) for each query."""

    def recommend(self, queries: Queries, k: int, exclude_history: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and scores per query, ``(B, k)`` each.

        History items are never recommended when ``exclude_history``.
        """
        scores = self.score(queries)
        if exclude_history:
            mask_history(scores, queries)
        return top_k(scores, k)

    def explain(self, queries: Queries, k: int = 10, n_history: int = 3, exclude_history: bool = True) -> list[dict[str, Any]]:
        """Top-``k`` items per query, each with the history items that weigh most for it.

        Returns one dict per query: ``{"gate", "items": [{"item", "score", "history": [(item, weight), ...],
        "dimension", "dimensions"}]}`` with dense item indices.  A model explains at the level it can:
        :meth:`history_weights` says how much each history item counts toward each recommended item
        (ItemKNN: its similarity term of the score; factor models: the item factors' dot product; sequential
        models: gradient x input on the history's embeddings).  A model without such weights (popularity)
        names ``"popularity"`` and no history.  ``gate`` (the short-term share) is the fusion model's alone.

        >>> from recfuse.data.dataset import Interactions
        >>> from recfuse.models.itemknn import ItemKNN
        >>> d = Interactions.from_sequences([("u", ["a", "b"]), ("v", ["a", "b"]), ("w", ["a", "c"])])
        >>> why = ItemKNN().fit(d).explain(Queries.from_histories([[1]]), k=1)[0]  # history: b
        >>> why["items"][0]["item"], why["items"][0]["history"][0][0], why["gate"]
        (0, 1, None)
        """
        top, scores = self.recommend(queries, k, exclude_history=exclude_history)
        out = []
        for b in range(len(queries)):
            hist = queries.history(b)
            weights = self.history_weights(queries.take(np.array([b])), top[b]) if len(hist) else None
            entries = []
            for i in range(top.shape[1]):
                entry: dict[str, Any] = {"item": int(top[b, i]), "score": float(scores[b, i])}
                if weights is None:
                    entry |= {"history": [], "dimension": "popularity", "dimensions": {"popularity": 1.0}}
                else:
                    w = np.asarray(weights[i], np.float64)
                    order = np.argsort(-w, kind="stable")[:n_history]
                    entry |= {"history": [(int(hist[j]), float(w[j])) for j in order], "dimension": "history",
                              "dimensions": {"history": float(np.abs(w).sum())}}
                entries.append(entry)
            out.append({"gate": None, "items": entries})
        return out

    def history_weights(self, query: Queries, items: np.ndarray) -> np.ndarray | None:
        """``(len(items), len(history))``: how much each event of the one-query ``query`` counts toward each of
        ``items`` (``None``: the model's scores do not depend on the history)."""
        return None

    # ------------------------------------------------------------ persistence
    def state(self) -> dict[str, np.ndarray]:
        """Named arrays that, with the config, reproduce the fitted model."""
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`state`."""

    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` + ``state.safetensors`` under ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "model": self.name,
            "config": dataclasses.asdict(self.config),
            "n_items": self.n_items,
            "n_users": self.n_users,
        }
        (path / "config.json").write_text(json.dumps(meta, indent=2))
        state = {k: np.ascontiguousarray(v) for k, v in self.state().items()}
        save_file(state, str(path / "state.safetensors"))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load any registered model from a directory written by :meth:`save`."""
        from recfuse.models import MODELS

        path = Path(path)
        meta = json.loads((path / "config.json").read_text())
        model_cls = MODELS[meta["model"]]
        model = model_cls(model_cls.Config(**meta["config"]))
        model.n_items, model.n_users = int(meta["n_items"]), int(meta["n_users"])
        model.load_state(load_file(str(path / "state.safetensors")))
        return model


# ---------------------------------------------------------------- capabilities
# What a service (or any caller) may ask of a model beyond ``score``/``recommend``; each is checked with
# ``isinstance(model, ...)``, so the caller never needs to know which model it holds.


@runtime_checkable
class VectorScorer(Protocol):
    """Scores are ``user @ item_table()[1:].T`` plus :meth:`score_offsets`: user vectors can be cached.

    ``item_table`` is computed once per model version; ``encode_users`` turns queries into user vectors
    ``(B, D)`` and gates ``(B,)`` (the short-term share) with that table.
    """

    @property
    def knows_users(self) -> bool: ...

    def item_table(self) -> torch.Tensor: ...

    def encode_users(self, queries: Queries, table: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]: ...

    def score_offsets(self, times: np.ndarray | None, lengths: np.ndarray) -> torch.Tensor | None: ...


@runtime_checkable
class Explainer(Protocol):
    """Explains its top-``k``: one ``{"gate", "items": [{"item", "score", "history", "dimension", ...}]}`` per query."""

    def explain(self, queries: Queries, k: int = 10, n_history: int = 3, exclude_history: bool = True) -> list[dict[str, Any]]: ...


@runtime_checkable
class ItemAdder(Protocol):
    """Takes new items by their text vector alone, without retraining (when ``takes_new_items``)."""

    @property
    def takes_new_items(self) -> bool: ...

    def add_items(self, text: np.ndarray) -> np.ndarray: ...

    def set_item_text(self, index: int, vector: np.ndarray) -> None: ...


def mask_history(scores: np.ndarray, queries: Queries) -> np.ndarray:
    """Set the score of every history item of each query to ``-inf`` (in place)."""
    rows = np.repeat(np.arange(len(queries)), queries.lengths())
    scores[rows, queries.items] = -np.inf
    return scores


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` columns per row, best first; ties broken by lower item index, the K-th place included.

    The answer for ``k`` is the first ``k`` columns of the answer for any larger ``k``, so a metric
    at K does not depend on which other cut-offs were asked for.  NaN ranks last.

    Parameters
    ----------
    scores
        ``(n_rows, n_items)`` scores, higher is better.
    k
        How many columns per row (at most ``n_items``).

    Returns
    -------
    tuple of numpy.ndarray
        ``(indices, scores)``, both ``(n_rows, min(k, n_items))``.

    Examples
    --------
    >>> top_k(np.array([[0.1, 0.5, 0.5, 0.2]]), 3)[0].tolist()
    [[1, 2, 3]]
    >>> top_k(np.array([[1.0, 0.0, 2.0, 2.0]]), 1)[0].tolist()  # the tie at the cut goes to the lower index
    [[2]]
    """
    k = min(k, scores.shape[1])
    if k <= 0:
        return np.zeros((scores.shape[0], 0), np.int64), np.zeros((scores.shape[0], 0), scores.dtype)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    # lexsort: last key primary -> score descending, then item index ascending
    order = np.lexsort((part, -part_scores), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    # argpartition picks an arbitrary subset of the items tied at the K-th score; rows where more items
    # than fit share that score (or a NaN reached the cut) are ranked again with a stable full sort.
    kth = np.take_along_axis(scores, idx[:, -1:], axis=1)  # (n_rows, 1)
    redo = np.flatnonzero(((scores >= kth).sum(axis=1) != k) | np.isnan(kth[:, 0]))
    if len(redo):
        idx[redo] = np.argsort(-scores[redo], axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(scores, idx, axis=1)
