"""GRU4Rec (Hidasi et al. 2016): a recurrent network over the item sequence.

Trained like SASRec with full-softmax cross-entropy at every position (the
"GRU4Rec with CE loss" variant that Hidasi & Czapp 2023 show is strong).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recfuse.models.layers import Dropout
from recfuse.models.sequential import SequentialConfig, SequentialRecommender


@dataclass
class GRU4RecConfig(SequentialConfig):
    hidden_size: int = 128
    n_layers: int = 1
    dropout: float = 0.2


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

    def build_module(self) -> nn.Module:
        return GRU4RecModule(self.n_items, self.config)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.module(tokens)
