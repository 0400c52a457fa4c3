"""The fusion recommender: fit, score, serve-side vectors, new items, persistence.

See :mod:`recfuse.models.fusion` for what the model is; this file is how it
is trained and asked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recfuse.data.dataset import Interactions
from recfuse.data.split import EvalSet, Queries
from recfuse.models.fusion.config import FusionConfig
from recfuse.models.fusion.features import EventFeatures, query_inputs, window_batch
from recfuse.models.fusion.module import FusionModule, FusionOutput
from recfuse.models.fusion.trend import TREND_ALPHAS, Trend, trend_rows, unseen_trend
from recfuse.models.sequential import SequentialRecommender
from recfuse.train import distributed
from recfuse.train.validation import valid_ndcg


def request_times(queries: Queries) -> np.ndarray | None:
    """The queries' request times, ``None`` when their histories carry no timestamps (no trend then)."""
    return None if queries.timestamps is None else queries.time


@dataclass(frozen=True)
class FitState:
    """What a fit derives from the training log before its first epoch (dropped when the fit ends)."""

    events: EventFeatures


class Fusion(SequentialRecommender):
    """Long/short-term interest fusion with an inspectable gate.

    Examples
    --------
    >>> from recfuse.data.dataset import Interactions
    >>> from recfuse.data.split import Queries
    >>> d = Interactions.from_sequences([("u", ["a", "b", "c"]), ("v", ["a", "b", "c"])])
    >>> m = Fusion(epochs=1, progress=False).fit(d)
    >>> g = m.gates(Queries.from_histories([[0, 1]]))
    >>> bool(0.0 <= g[0] <= 1.0)
    True
    """

    name = "fusion"
    Config = FusionConfig
    config: FusionConfig
    module: FusionModule
    reads_text: ClassVar[bool] = True

    def __init__(self, config: FusionConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self._fitting: FitState | None = None

    # ---------------------------------------------------------------- fitting
    def build_module(self, train: Interactions | None = None, item_text: np.ndarray | None = None) -> nn.Module:
        """A fresh network for ``train`` with ``item_text`` ``(n_items, d_text)`` (used with ``use_text``)."""
        c = self.config
        if train is None:
            return FusionModule(self.n_items, c, None)
        text = None
        if c.use_text and item_text is not None:
            item_text = np.asarray(item_text, np.float32)
            if item_text.shape[0] != train.n_items:
                raise ValueError(f"item_text has {item_text.shape[0]} rows for {train.n_items} items")
            text = torch.from_numpy(np.vstack([np.zeros((1, item_text.shape[1]), np.float32), item_text]))
        events = EventFeatures.of(train, c.use_time, c.use_rating)
        self._fitting = FitState(events)
        module = FusionModule(train.n_items, c, text, train.n_users)
        module.warm.copy_(torch.from_numpy(np.concatenate([[True], train.item_counts() > 0])))
        module.rating_floor.fill_(events.floor)
        module.signals.copy_(torch.tensor(events.signals))
        return module

    def after_fit(self, train: Interactions, valid: EvalSet | None) -> None:
        self._fitting = None
        c = self.config
        if c.trend_days > 0 and c.use_time and train.timestamp is not None and train.n_events > 0:
            self._calibrate_trend(train, valid)

    def _calibrate_trend(self, train: Interactions, valid: EvalSet | None) -> None:
        """Add the trend table to the trained model and pick its weight on valid NDCG@10 (0 without valid)."""
        started = time.perf_counter()
        trend = Trend.of(train.item, np.asarray(train.timestamp, np.float64), train.n_items,
                         self.config.trend_days * 86400.0)
        self.module.add_trend(torch.from_numpy(trend.table), trend.t0, trend.width)
        found: dict[str, float] = {}
        if valid is not None and len(valid):
            for a in TREND_ALPHAS:
                self.module.trend_alpha.fill_(a)
                found[str(a)] = valid_ndcg(self, valid)
        best = max(found, key=lambda a: found[a]) if found else "0.0"
        self.module.trend_alpha.fill_(float(best))
        self.fit_info["trend"] = {"alpha": float(best), "valid_ndcg@10": found, "days": self.config.trend_days,
                                  "seconds": time.perf_counter() - started}

    def window_batch(self, train: Interactions, rows: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        assert self._fitting is not None, "window_batch runs inside fit"
        c = self.config
        x = window_batch(train, self._fitting.events, rows, c.max_len, c.long_len, rng,
                         c.user_swap if c.user_emb else None, train.n_users)
        return {k: torch.from_numpy(v).to(self.device) for k, v in x.items()}

    def outputs(self, x: dict[str, torch.Tensor], last_only: bool = False, table: torch.Tensor | None = None) -> FusionOutput:
        """The network on a batch of inputs (a training batch, or :meth:`inputs` of queries)."""
        return self.module(x["hist"], x["gap"], x["rate"], x["now"], x.get("user"), last_only, table)

    def hidden(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.outputs(batch).user  # (B, T, D)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Catalogue-softmax CE of the fused vector, plus ``aux_loss`` x the CE of each branch alone.

        Without the branch losses the gate saturates early toward whichever
        branch learns first, and the other one stops getting gradient
        (``(1 - g) -> 0``): each branch must be a good predictor on its own
        for the gate to have a real choice.
        """
        out = self.outputs(batch)
        fused = out.user  # (B, T, D)
        real = batch["labels"] >= 0  # (B, T)
        labels = batch["labels"][real]
        module = self.module
        rows, targets, weights = [fused[real]], [labels], [torch.ones_like(labels, dtype=fused.dtype)]
        w = self.config.aux_loss
        if w > 0 and self.config.gate in ("learned", "fixed"):
            # The catalogue softmax is most of a step's cost: the branch losses use a random
            # share of the positions (an unbiased estimate of the same loss).
            short, long = out.short[real], out.long[real]  # (N, D) each
            pick = torch.rand(len(labels), device=labels.device) < self.config.aux_share
            n_pick = int(pick.sum())
            if n_pick:
                scale = w * len(labels) / n_pick  # each branch's mean CE weighs w x the fused one's
                # Where the long branch is empty the gate has no choice (the fused vector is the short
                # one, already in the loss) and the long vector is a constant: no branch losses there.
                pick = pick & ~out.long_empty[real]
                rows += [short[pick], long[pick]]
                targets += [labels[pick]] * 2
                weights += [torch.full((2 * int(pick.sum()),), scale, dtype=fused.dtype, device=fused.device)]
        # One catalogue softmax for the fused vector and both branch samples: (N + 2M) rows.
        # Items with no training events are never a target: as negatives they would only learn
        # "never happens" through the shared text projection, which buries every cold item.
        unseen = ~module.warm[1:]  # (n_items,)
        bias = None
        if bool(unseen.any()):
            bias = torch.zeros(len(unseen), dtype=fused.dtype, device=fused.device).masked_fill(unseen, float("-inf"))
        loss = self.catalogue_loss(torch.cat(rows), self.item_vectors(), torch.cat(targets), torch.cat(weights), bias)
        loss = loss / distributed.positions(len(labels))
        if module.text is not None:
            # Teach the text -> ID map on the warm items (the ID table itself is not moved by it).
            warm = module.warm
            guess = module.id_from_text(module.text[warm])
            loss = loss + F.mse_loss(guess, module.item_emb.weight[warm].detach()) * guess.shape[-1]
        return loss

    def item_vectors(self) -> torch.Tensor:
        return self.module.items()[1:]  # (n_items, D): ID and text parts mixed

    def item_table(self) -> torch.Tensor:
        """The item tower's whole table ``(n_items + 1, D)``, row 0 padding: compute it once, pass it to
        :meth:`encode_users`, and score with its rows ``1:`` (what the service caches per model version)."""
        return self.module.items()

    @property
    def knows_users(self) -> bool:
        """Whether a query's ``user`` (a training user's index) changes its vector (``user_emb``)."""
        return self.module.user_emb is not None

    # ---------------------------------------------------------------- queries
    def inputs(self, queries: Queries) -> dict[str, torch.Tensor]:
        """The network's inputs for ``queries``, on the model's device (see :func:`query_inputs`)."""
        module = self.module
        trained_time, trained_rating = (bool(s) for s in module.signals)
        x = query_inputs(queries, self.config.max_len, self.config.long_len, (trained_time, trained_rating),
                         float(module.rating_floor), module.n_users if module.user_emb is not None else None)
        return {k: torch.from_numpy(v).to(self.device) for k, v in x.items()}

    @torch.no_grad()
    def encode_users(self, queries: Queries, table: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """User vectors ``(B, D)`` and gates ``(B,)`` at request time.

        ``table``: the item table :meth:`FusionModule.items` computed once (the service caches it);
        by default it is recomputed.
        """
        was_training = self.module.training
        self.module.eval()
        out = self.outputs(self.inputs(queries), last_only=True, table=table)
        self.module.train(was_training)
        return out.user[:, -1], out.gate[:, -1]

    def user_vectors(self, queries: Queries) -> torch.Tensor:
        return self.encode_users(queries)[0]

    @torch.no_grad()
    def score_offsets(self, times: np.ndarray | None, lengths: np.ndarray) -> torch.Tensor | None:
        """The per-request item term added to ``user @ items.T`` (the trend), ``(B, n_items)``, or ``None``.

        ``times``: the request times (``None`` for untimed histories), ``lengths``: the history lengths.
        Zero where the request time is unknown or the history is empty.  The same as
        ``weight * table[offset_rows(times, lengths)]`` with ``(table, weight) = offset_table()``.
        """
        module = self.module
        if module.trend_table is None:
            return None
        rows = self.offset_rows(times, lengths)
        return module.trend_alpha * module.trend_table[torch.from_numpy(rows).to(module.trend_table.device)]

    def offset_table(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The table behind :meth:`score_offsets` and its weight, ``((R, n_items), ())``, or ``None``.

        A request in row ``r`` (:meth:`offset_rows`) adds ``weight * table[r]``: an item index can
        fold the ``R`` rows into the item vectors (the service's :class:`~recfuse.serve.index.ItemIndex`).
        """
        module = self.module
        return None if module.trend_table is None else (module.trend_table, module.trend_alpha)

    def offset_rows(self, times: np.ndarray | None, lengths: np.ndarray) -> np.ndarray:
        """The :meth:`offset_table` row of each request, ``(B,)`` int64 (0: time unknown or empty history)."""
        module = self.module
        lengths = np.asarray(lengths)
        if module.trend_table is None:
            return np.zeros(len(lengths), np.int64)
        t0, width = module.trend_clock.tolist()  # one call: iterating a tensor costs more than the gather
        rows = trend_rows(times, len(lengths), t0, width, len(module.trend_table))
        return np.where(lengths > 0, rows, 0)

    @torch.no_grad()
    def _scores(self, queries: Queries) -> torch.Tensor:
        was_training = self.module.training
        self.module.eval()
        user, _ = self.encode_users(queries)
        out = user @ self.item_vectors().T  # (B, n_items)
        extra = self.score_offsets(request_times(queries), queries.lengths())
        self.module.train(was_training)
        return (out if extra is None else out + extra).float()

    @torch.no_grad()
    def gates(self, queries: Queries) -> np.ndarray:
        """Short-term share of the user vector at request time, ``(B,)`` in [0, 1]."""
        return self.encode_users(queries)[1].float().cpu().numpy()

    def explain(self, queries: Queries, k: int = 10, n_history: int = 3, exclude_history: bool = True) -> list[dict[str, Any]]:
        """Top-``k`` items per query, each with why: see :func:`recfuse.models.fusion.explain.explain`."""
        from recfuse.models.fusion.explain import explain

        return explain(self, queries, k, n_history, exclude_history)

    # ---------------------------------------------------------------- items
    def add_items(self, text: np.ndarray) -> np.ndarray:
        """Append new items known only by their text embedding; returns their indices.

        They have no ID part (as cold items), so they are ranked by text alone,
        at once, without retraining.
        """
        module = self.module
        if module.text is None:
            raise ValueError("this fusion model has no text tower; new items need one (train with item text)")
        text = np.asarray(text, np.float32).reshape(-1, module.text.shape[1])
        n = len(text)
        dev = module.text.device
        if module.trend_table is not None:  # no events yet: the trend of the item a random recent event went to
            seen = module.warm[1:].cpu().numpy()
            table = module.trend_table.cpu().numpy()  # (n_buckets + 1, n_items)
            new = unseen_trend(table, seen, n) if seen.any() else np.zeros((len(table), n), np.float32)
            module.trend_table = torch.cat([module.trend_table, torch.from_numpy(new).to(dev)], dim=1)
        module.text = torch.cat([module.text, torch.from_numpy(text).to(dev)])
        module.warm = torch.cat([module.warm, torch.zeros(n, dtype=torch.bool, device=dev)])
        old = module.item_emb.weight.data
        module.item_emb = nn.Embedding(len(old) + n, old.shape[1], padding_idx=0).to(dev)
        module.item_emb.weight.data[: len(old)] = old
        module.item_emb.weight.data[len(old) :] = 0.0
        first = self.n_items
        self.n_items += n
        return np.arange(first, first + n)

    def set_item_text(self, index: int, vector: np.ndarray) -> None:
        """Replace item ``index``'s text vector (its description changed)."""
        if self.module.text is None:
            raise ValueError("this fusion model has no text tower")
        self.module.text[index + 1] = torch.from_numpy(np.asarray(vector, np.float32))  # row 0 is padding

    @property
    def takes_new_items(self) -> bool:
        """Whether :meth:`add_items` works (the model has a text tower)."""
        return self.module.text is not None

    # ---------------------------------------------------------------- state
    def load_state(self, state: dict[str, np.ndarray]) -> None:
        text = state.get("text")
        n_users = len(state["user_emb.weight"]) - 1 if "user_emb.weight" in state else 0
        module = FusionModule(self.n_items, self.config, None if text is None else torch.from_numpy(text), n_users)
        if "trend_table" in state:
            t0, width = (float(v) for v in state["trend_clock"])
            module.add_trend(torch.from_numpy(state["trend_table"]), t0, width)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        self.module = module.to(self.device)
        self.module.eval()
