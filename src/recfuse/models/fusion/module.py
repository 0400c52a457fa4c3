"""The fusion network: item tower, short- and long-term branches, the gate.

Shapes: ``B`` queries (or training windows), ``L = C + T`` history positions
(``C`` older events read by the long-term branch only, ``T`` the short-term
window), ``D`` the embedding size.  Token 0 is padding; item ``i`` is token
``i + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recfuse.models.fusion.config import FusionConfig
from recfuse.models.fusion.features import N_GAP, N_RATE
from recfuse.models.layers import Dropout
from recfuse.models.sasrec import Block, attention_mask

DIMENSIONS = ("content", "rating", "recency")


@dataclass
class FusionOutput:
    """What one forward pass computes, per position ``T'`` (all of the window, or the newest one)."""

    user: torch.Tensor  # (B, T', D): the fused user vector, g * short + (1 - g) * long
    gate: torch.Tensor  # (B, T'): g, the short-term share
    short: torch.Tensor  # (B, T', D): the short-term interest
    long: torch.Tensor  # (B, T', D): the long-term interest (user vector added, normalised)
    long_empty: torch.Tensor  # (B, T') bool: the long-term branch had no event to read


class FusionModule(nn.Module):
    """The network behind :class:`~recfuse.models.fusion.Fusion`.

    Parameters
    ----------
    n_items
        Catalogue size.
    c
        The model's settings.
    text
        ``(n_items + 1, d_text)`` frozen item text vectors, row 0 padding, or ``None`` (no text tower).
    n_users
        Training users that get a learned vector (with ``c.user_emb``).
    """

    warm: torch.Tensor  # (n_items + 1,) bool: the item has an ID part (training events)
    text: torch.Tensor | None
    rating_floor: torch.Tensor
    signals: torch.Tensor  # (2,) bool: trained with (time, rating)
    trend_table: torch.Tensor | None  # (n_buckets + 1, n_items): with trend_clock (t0, width), trend_alpha
    trend_clock: torch.Tensor
    trend_alpha: torch.Tensor

    def __init__(self, n_items: int, c: FusionConfig, text: torch.Tensor | None, n_users: int = 0) -> None:
        super().__init__()
        d = c.embedding_size
        self.c = c
        self.item_emb = nn.Embedding(n_items + 1, d, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        self.register_buffer("warm", torch.ones(n_items + 1, dtype=torch.bool))
        if text is not None:
            self.register_buffer("text", text)
            self.text_proj = nn.Linear(text.shape[1], d)
            self.text_mix = nn.Parameter(torch.zeros(d))  # sigmoid(0): half ID, half text
            # An item without events gets an ID part *predicted from its text*, so that it lives
            # on the same scale as warm items (a text-only vector ranked every cold item low).
            self.id_from_text = nn.Linear(text.shape[1], d)
        else:
            self.text = None
        self.gap_emb = nn.Embedding(N_GAP, d, padding_idx=0)
        self.rate_emb = nn.Embedding(N_RATE, d, padding_idx=0)
        self.now_emb = nn.Embedding(N_GAP, d, padding_idx=0)
        for emb in (self.gap_emb, self.rate_emb, self.now_emb):
            nn.init.normal_(emb.weight, std=0.02)
            emb.weight.data[0] = 0.0
        self.register_buffer("rating_floor", torch.ones(()))  # std floor of the rating normalisation
        self.register_buffer("signals", torch.zeros(2, dtype=torch.bool))
        self.pos_emb = nn.Embedding(c.max_len, d)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        self.drop = Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(d, c.n_heads, c.dropout, c.attn_dropout) for _ in range(c.n_layers))
        self.ln = nn.LayerNorm(d)
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.ln_long = nn.LayerNorm(d)
        self.user_emb: nn.Embedding | None = None
        if c.user_emb:
            self.user_emb = nn.Embedding(n_users + 1, d, padding_idx=0)  # row 0: a user the model never saw
            nn.init.normal_(self.user_emb.weight, std=0.02)
            self.user_emb.weight.data[0] = 0.0
        self.gate = nn.Sequential(nn.Linear(3 * d, d), nn.GELU(), nn.Linear(d, 1))
        self.trend_table = None

    @property
    def n_users(self) -> int:
        """Training users with a learned vector (0 without ``user_emb``)."""
        return 0 if self.user_emb is None else self.user_emb.num_embeddings - 1

    def add_trend(self, table: torch.Tensor, t0: float, width: float) -> None:
        """Register the trend table ``(n_buckets + 1, n_items)`` and its clock; its weight starts at 0."""
        if "trend_table" not in self._buffers:
            delattr(self, "trend_table")  # the plain ``None`` of a model without one
        dev = self.warm.device
        self.register_buffer("trend_table", table.to(dev))
        self.register_buffer("trend_clock", torch.tensor([t0, width], dtype=torch.float64))
        self.register_buffer("trend_alpha", torch.zeros((), device=dev))

    # ---------------------------------------------------------------- items
    def items(self, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Item vectors for ``tokens`` (or the whole table ``(n_items + 1, D)``): ID part mixed with text part.

        The table is built once and gathered (projecting ``(B, L, d_text)`` text per event costs far more
        than projecting the catalogue once).
        """
        ids = self.item_emb.weight  # (N + 1, D)
        keep = self.warm
        if self.training and self.c.id_dropout > 0:
            keep = keep & (torch.rand(keep.shape, device=keep.device) >= self.c.id_dropout)
        keep_f = keep.unsqueeze(-1).to(ids.dtype)  # (N + 1, 1)
        if self.text is None:
            table = ids * keep_f
        else:
            guess = self.id_from_text(self.text)  # (N + 1, D): the ID part a cold item would have
            mix = torch.sigmoid(self.text_mix)  # (D,)
            table = (1 - mix) * (ids * keep_f + guess * (1 - keep_f)) + mix * self.text_proj(self.text)
        return table if tokens is None else table[tokens]

    # ---------------------------------------------------------------- users
    def embed(
        self, hist: torch.Tensor, gap: torch.Tensor, rate: torch.Tensor, table: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The three per-event parts, ``(B, L, D)`` each (``table``: a precomputed :meth:`items`)."""
        content = self.items(hist) if table is None else table[hist]
        return {"content": content, "rating": self.rate_emb(rate), "recency": self.gap_emb(gap)}

    def fuse(
        self,
        parts: dict[str, torch.Tensor],
        hist: torch.Tensor,
        now: torch.Tensor,
        user: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> FusionOutput:
        """Per-event parts ``(B, L, D)``, tokens ``(B, L)``, the embedded request-time gaps ``now``
        ``(B, T, D)`` and the users' rows ``(B,)`` (0: unknown; read with ``user_emb``) -> the interests.

        ``last_only``: only the newest position (``T' = 1``), all that scoring needs; the long-term
        attention and the gate then run for one query instead of ``T``.
        """
        L, T = hist.shape[1], now.shape[1]
        C = L - T
        dev = hist.device
        e = parts["content"] + parts["rating"] + parts["recency"]  # (B, L, D)
        x = self.drop(e)
        tokens = hist[:, C:]  # (B, T)

        pos = self.pos_emb(torch.arange(T, device=dev))  # (T, D)
        if self.c.long_scope == "past":
            h = self.drop(e[:, C:] + pos)  # SASRec's input: window events and positions, their own dropout draw
        else:
            h = x[:, C:] + pos  # (B, T, D)
        mask = attention_mask(tokens)  # (B, 1, T, T)
        for block in self.blocks:
            h = block(h, mask)
        short = self.ln(h)  # (B, T, D)
        if last_only:
            short, now = short[:, -1:], now[:, -1:]  # (B, 1, D): T' = 1 from here on

        # The long-term branch is asked "what of your past matters now": the short-term state and the
        # time since the last event (after a long absence, old favourites).
        query = self.q(now + (0 if self.c.gate == "long" else short))  # (B, T', D)
        causal = torch.ones(T, T, dtype=torch.bool, device=dev).tril()[T - short.shape[1] :]  # (T', T)
        if self.c.long_scope == "past":
            causal = torch.zeros_like(causal)  # the window is the short-term branch's alone
        see = torch.cat([torch.ones(len(causal), C, dtype=torch.bool, device=dev), causal], dim=1)  # (T', L)
        see = see & (hist > 0)[:, None, :]  # (B, T', L)
        att = (query @ self.k(x).transpose(1, 2)) * (short.shape[-1] ** -0.5)  # (B, T', L)
        att = att.masked_fill(~see, float("-inf")).softmax(dim=-1).nan_to_num(0.0)
        long = att @ self.v(x)  # (B, T', D)
        # Nothing to read (past scope, a history no longer than the window): no long-term interest
        # yet, and ``long`` is only LayerNorm's bias, the same for every user.
        empty = ~see.any(dim=-1)  # (B, T')
        if self.user_emb is not None and user is not None:
            long = long + self.user_emb(user)[:, None, :]  # the user's standing taste
        long = self.ln_long(long)

        if self.c.gate == "learned":
            g = torch.sigmoid(self.gate(torch.cat([short, long, now], dim=-1)))  # (B, T', 1)
        else:
            value = {"fixed": 0.5, "short": 1.0, "long": 0.0}[self.c.gate]
            g = torch.full_like(short[..., :1], value)
        if self.c.gate != "long":
            g = g.masked_fill(empty.unsqueeze(-1), 1.0)  # the user vector is the short-term one
        return FusionOutput(g * short + (1 - g) * long, g.squeeze(-1), short, long, empty)

    def forward(
        self,
        hist: torch.Tensor,
        gap: torch.Tensor,
        rate: torch.Tensor,
        now: torch.Tensor,
        user: torch.Tensor | None = None,
        last_only: bool = False,
        table: torch.Tensor | None = None,
    ) -> FusionOutput:
        """Inputs of :func:`~recfuse.models.fusion.features.query_inputs` (as tensors) -> :class:`FusionOutput`."""
        return self.fuse(self.embed(hist, gap, rate, table), hist, self.now_emb(now), user, last_only)
