"""SASRec (Kang & McAuley 2018): causal self-attention over the item sequence.

Trained with full-softmax cross-entropy at every position (see
``sequential.py``), which is much stronger than the paper's one sampled
negative (Klenitskiy & Vasilev 2023, Petrov & Macdonald 2023).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recfuse.data.dataset import Interactions
from recfuse.models.layers import Dropout
from recfuse.models.sequential import SequentialConfig, SequentialRecommender


@dataclass
class SASRecConfig(SequentialConfig):
    """Settings of :class:`SASRec`, on top of the shared sequential and training ones."""

    learning_rate: float = 1e-3
    """Adam's step size."""
    label_smoothing: float = 0.1
    """Share of each target's probability spread evenly over the catalogue."""
    n_layers: int = 2
    """Transformer blocks."""
    n_heads: int = 1
    """Attention heads per block."""
    attn_dropout: float = 0.2
    """Dropout on the attention weights."""


def attention_mask(tokens: torch.Tensor) -> torch.Tensor:
    """``(B, 1, T, T)`` boolean mask: each position sees the real items up to itself.

    Every position may also see itself, so rows of left padding stay finite.
    """
    T = tokens.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=tokens.device).tril()
    mask = (causal & (tokens > 0)[:, None, :]) | torch.eye(T, dtype=torch.bool, device=tokens.device)  # (B, T, T)
    return mask[:, None]


class Block(nn.Module):
    """Pre-norm transformer block: attention then a position-wise feed-forward."""

    def __init__(self, d: int, n_heads: int, dropout: float, attn_dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, d), nn.GELU(), Dropout(dropout), nn.Linear(d, d))
        self.drop = Dropout(dropout)
        self.attn_drop = Dropout(attn_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=-1)
        q, k, v = (t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D/H)
        if self.training and self.attn_drop.p > 0:
            # Spelled out so the attention-weight dropout uses the fast mask (T is small).
            w = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)  # (B, H, T, T)
            w = self.attn_drop(w.masked_fill(~mask, float("-inf")).softmax(dim=-1))
            a = w @ v  # (B, H, T, D/H)
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, D/H)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, T, D)))
        return x + self.drop(self.ff(self.ln2(x)))


class SASRecModule(nn.Module):
    def __init__(self, n_items: int, c: SASRecConfig) -> None:
        super().__init__()
        d = c.embedding_size
        self.item_emb = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.pos_emb = nn.Embedding(c.max_len, d)
        self.drop = Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(d, c.n_heads, c.dropout, c.attn_dropout) for _ in range(c.n_layers))
        self.ln = nn.LayerNorm(d)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        T = tokens.shape[1]
        pos = torch.arange(T, device=tokens.device)
        x = self.drop(self.item_emb(tokens) + self.pos_emb(pos))  # (B, T, D)
        mask = attention_mask(tokens)  # (B, 1, T, T)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln(x)


class SASRec(SequentialRecommender):
    """Self-attentive sequential recommendation.

    Examples
    --------
    >>> from recfuse.data.dataset import Interactions
    >>> d = Interactions.from_sequences([("u", ["a", "b", "c"]), ("v", ["a", "b", "c"])])
    >>> m = SASRec(epochs=2, progress=False).fit(d)
    >>> m.fit_info["epochs_run"]
    2
    """

    name = "sasrec"
    Config = SASRecConfig
    config: SASRecConfig

    def build_module(self, train: Interactions | None = None, item_text: np.ndarray | None = None) -> nn.Module:
        return SASRecModule(self.n_items, self.config)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.module(tokens)
