"""Long/short-term interest fusion (first working version; see issue 3).

* **Item tower**: an ID embedding plus a learned projection of the item's
  frozen text embedding (when the dataset has item text), mixed by a learned
  per-dimension gate; an item with no events still gets its text part.
* **Short-term interest**: causal self-attention (SASRec blocks) over the
  last ``max_len`` events.
* **Long-term interest**: at every step, attention from the short-term state
  over the whole available history (up to ``long_len`` events before the
  window plus the window up to that step).
* **Fusion**: a scalar gate per user per step, ``g = sigmoid(w·[s, l, s*l])``;
  the user vector is ``g * s + (1 - g) * l`` and ``g`` (the short-term share)
  is returned by :meth:`Fusion.gates`.
* **Loss**: full-softmax cross-entropy at every position, like SASRec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import torch
from torch import nn

from recfuse.data.dataset import Interactions
from recfuse.data.split import EvalSet, Queries
from recfuse.models.layers import Dropout
from recfuse.models.sasrec import Block, SASRecConfig, attention_mask
from recfuse.models.sequential import SequentialRecommender


@dataclass
class FusionConfig(SASRecConfig):
    """SASRec's settings for the short-term branch, plus the long-term and text ones."""

    long_len: int = 200  # history events before the short window that the long-term branch reads
    use_text: bool = True  # use item text when the dataset has it


class FusionModule(nn.Module):
    def __init__(self, n_items: int, c: FusionConfig, text: torch.Tensor | None) -> None:
        super().__init__()
        d = c.embedding_size
        self.item_emb = nn.Embedding(n_items + 1, d, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        if text is not None:
            self.register_buffer("text", text)  # (n_items + 1, d_text), row 0 = padding
            self.text_proj = nn.Linear(text.shape[1], d)
            self.text_mix = nn.Parameter(torch.zeros(d))  # sigmoid(0) = half ID, half text
        else:
            self.text = None
        self.pos_emb = nn.Embedding(c.max_len, d)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        self.drop = Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(d, c.n_heads, c.dropout, c.attn_dropout) for _ in range(c.n_layers))
        self.ln = nn.LayerNorm(d)
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.ln_long = nn.LayerNorm(d)
        self.gate = nn.Linear(3 * d, 1)

    def items(self, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Item vectors for ``tokens`` (or the whole table): ID part mixed with text part."""
        ids = self.item_emb.weight if tokens is None else self.item_emb(tokens)
        if self.text is None:
            return ids
        text = self.text_proj(self.text if tokens is None else self.text[tokens])
        mix = torch.sigmoid(self.text_mix)  # (D,)
        return (1 - mix) * ids + mix * text

    def forward(self, context: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``context`` (B, C) older items, ``tokens`` (B, T) the short window -> user vectors and gates (B, T)."""
        T = tokens.shape[1]
        C = context.shape[1]
        dev = tokens.device
        x = self.drop(self.items(tokens) + self.pos_emb(torch.arange(T, device=dev)))  # (B, T, D)
        mask = attention_mask(tokens)  # (B, 1, T, T)
        for block in self.blocks:
            x = block(x, mask)
        short = self.ln(x)  # (B, T, D)

        hist = torch.cat([context, tokens], dim=1)  # (B, C + T)
        keys = self.items(hist)  # (B, C + T, D)
        causal = torch.ones(T, T, dtype=torch.bool, device=dev).tril()
        see = torch.cat([torch.ones(T, C, dtype=torch.bool, device=dev), causal], dim=1)  # (T, C + T)
        see = see & (hist > 0)[:, None, :]  # (B, T, C + T)
        att = (self.q(short) @ self.k(keys).transpose(1, 2)) * (short.shape[-1] ** -0.5)  # (B, T, C + T)
        att = att.masked_fill(~see, float("-inf")).softmax(dim=-1).nan_to_num(0.0)
        long = self.ln_long(att @ self.v(keys))  # (B, T, D)

        g = torch.sigmoid(self.gate(torch.cat([short, long, short * long], dim=-1)))  # (B, T, 1)
        return g * short + (1 - g) * long, g.squeeze(-1)


class Fusion(SequentialRecommender):
    """Long/short-term interest fusion with an inspectable gate.

    Examples
    --------
    >>> from recfuse.data.dataset import Interactions
    >>> d = Interactions.from_sequences([("u", ["a", "b", "c"]), ("v", ["a", "b", "c"])])
    >>> m = Fusion(epochs=1, progress=False).fit(d)
    >>> g = m.gates(__import__("recfuse.data.split", fromlist=["Queries"]).Queries.from_histories([[0, 1]]))
    >>> bool(0.0 <= g[0] <= 1.0)
    True
    """

    name = "fusion"
    Config = FusionConfig
    config: FusionConfig
    module: FusionModule

    def fit(self, train: Interactions, valid: EvalSet | None = None) -> Self:
        self._text = self._text_matrix(train) if self.config.use_text else None
        return super().fit(train, valid)

    @staticmethod
    def _text_matrix(data: Interactions) -> np.ndarray | None:
        if data.item_features is None or data.item_features.width < 2:
            return None
        from recfuse.text.cache import encode_items

        vectors, _ = encode_items(data)
        return np.vstack([np.zeros((1, vectors.shape[1]), np.float32), vectors.astype(np.float32)])

    def build_module(self) -> nn.Module:
        text = None if getattr(self, "_text", None) is None else torch.from_numpy(self._text)
        return FusionModule(self.n_items, self.config, text)

    # ------------------------------------------------------------ batches
    def _window_batch(self, train: Interactions, rows: np.ndarray) -> dict[str, torch.Tensor]:
        batch = super()._window_batch(train, rows)
        C = self.config.long_len
        owner = np.searchsorted(train.indptr, rows[:, 0], side="right") - 1
        context = np.zeros((len(rows), C), dtype=np.int64)
        for b, (s, _) in enumerate(rows):
            lo = max(int(train.indptr[owner[b]]), int(s) - C)
            seq = train.item[lo:s]
            if len(seq):
                context[b, C - len(seq) :] = seq + 1
        batch["context"] = torch.from_numpy(context).to(self.device)
        return batch

    def hidden(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.module(batch["context"], batch["tokens"])[0]  # (B, T, D)

    def item_vectors(self) -> torch.Tensor:
        return self.module.items()[1:]  # (n_items, D): ID and text parts mixed

    # ------------------------------------------------------------ scoring
    def _split_history(self, queries: Queries) -> tuple[torch.Tensor, torch.Tensor]:
        T, C = self.config.max_len, self.config.long_len
        full = queries.padded(T + C)  # (B, C + T)
        return torch.from_numpy(full[:, :C]).to(self.device), torch.from_numpy(full[:, C:]).to(self.device)

    @torch.no_grad()
    def user_vectors(self, queries: Queries) -> torch.Tensor:
        context, tokens = self._split_history(queries)
        return self.module(context, tokens)[0][:, -1]  # (B, D)

    @torch.no_grad()
    def gates(self, queries: Queries) -> np.ndarray:
        """Short-term share of the user vector at the newest step, ``(B,)`` in [0, 1]."""
        self.module.eval()
        context, tokens = self._split_history(queries)
        return self.module(context, tokens)[1][:, -1].float().cpu().numpy()

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self._text = state.get("text")
        super().load_state(state)
