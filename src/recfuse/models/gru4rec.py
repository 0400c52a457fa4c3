"""GRU4Rec (Hidasi et al. 2016): a recurrent network over the item sequence.

Trained like SASRec with full-softmax cross-entropy at every position (the
"GRU4Rec with CE loss" variant that Hidasi & Czapp 2023 show is strong).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recfuse.data.dataset import Interactions
from recfuse.models.layers import Dropout
from recfuse.models.sequential import SequentialConfig, SequentialRecommender


@dataclass
class GRU4RecConfig(SequentialConfig):
    """Settings of :class:`GRU4Rec`, on top of the shared sequential and training ones."""

    learning_rate: float = 1e-3
    """Adam's step size."""
    label_smoothing: float = 0.0
    """Share of each target's probability spread evenly over the catalogue."""
    hidden_size: int = 128
    """Width of the GRU state."""
    n_layers: int = 1
    """Stacked GRU layers."""


class GRU4RecModule(nn.Module):
    def __init__(self, n_items: int, c: GRU4RecConfig) -> None:
        super().__init__()
        self.item_emb = nn.Embedding(n_items + 1, c.embedding_size, padding_idx=0)
        self.drop = Dropout(c.dropout)
        self.gru = nn.GRU(c.embedding_size, c.hidden_size, num_layers=c.n_layers, batch_first=True)
        self.out = nn.Linear(c.hidden_size, c.embedding_size)
        nn.init.normal_(self.item_emb.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h, _ = self.gru(self.drop(self.item_emb(tokens)))  # (B, T, H)
        return self.out(self.drop(h))  # (B, T, D)


class GRU4Rec(SequentialRecommender):
    """Session-based recurrent recommender.

    Examples
    --------
    >>> from recfuse.data.dataset import Interactions
    >>> d = Interactions.from_sequences([("u", ["a", "b", "c"]), ("v", ["a", "b", "c"])])
    >>> from recfuse.data.split import Queries
    >>> GRU4Rec(epochs=1, progress=False).fit(d).score(Queries.from_histories([[0]])).shape
    (1, 3)
    """

    name = "gru4rec"
    Config = GRU4RecConfig
    config: GRU4RecConfig

    def build_module(self, train: Interactions | None = None, item_text: np.ndarray | None = None) -> nn.Module:
        return GRU4RecModule(self.n_items, self.config)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.module(tokens)
