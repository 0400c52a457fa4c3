"""One interface for every model: ``fit(train, valid) -> self``, batch ``score``.

A model directory holds ``config.json`` (model name + its typed config) and
``state.safetensors`` (named arrays); no pickle anywhere.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from safetensors.numpy import load_file, save_file

from recfuse.config import ModelConfig
from recfuse.data.dataset import Interactions
from recfuse.data.split import EvalSet, Queries

__all__ = ["ModelConfig", "Recommender", "mask_history", "top_k"]


class Recommender(ABC):
    """Base class.  Subclasses set ``name``, ``Config`` and implement the verbs.

    ``fit`` sees the training events only; ``valid`` (queries + targets) is
    there for early stopping and nothing else.
    """

    name: ClassVar[str]
    Config: ClassVar[type[ModelConfig]] = ModelConfig

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        config = config if config is not None else self.Config()
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        self.n_items = 0
        self.n_users = 0
        self.fit_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ verbs
    @abstractmethod
    def fit(self, train: Interactions, valid: EvalSet | None = None) -> Self:
        """Learn from ``train``; return ``self``."""

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


def mask_history(scores: np.ndarray, queries: Queries) -> np.ndarray:
    """Set the score of every history item of each query to ``-inf`` (in place)."""
    rows = np.repeat(np.arange(len(queries)), queries.lengths())
    scores[rows, queries.items] = -np.inf
    return scores


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` columns per row, best first; ties broken by lower item index.

    >>> top_k(np.array([[0.1, 0.5, 0.5, 0.2]]), 3)[0].tolist()
    [[1, 2, 3]]
    """
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    # lexsort: last key primary -> score descending, then item index ascending
    order = np.lexsort((part, -part_scores), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(scores, idx, axis=1)
