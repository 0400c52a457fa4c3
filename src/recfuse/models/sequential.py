"""Shared machinery of the next-item models (GRU4Rec, SASRec, fusion).

Training examples are windows of a user's training sequence: the input is
``seq[s:e-1]`` and the target at every position is the next item
``seq[s+1:e]``, so every event of every user is a target once per epoch
(not one sample per prefix).  The loss is full-softmax cross-entropy over
the whole catalogue at every real position.  Item ``i`` is token ``i + 1``;
token 0 is padding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Self

import numpy as np
import torch
from torch import nn

from recfuse.data.dataset import IdMap, Interactions
from recfuse.data.split import EvalSet, Queries
from recfuse.models.base import Recommender
from recfuse.models.losses import softmax_cross_entropy
from recfuse.train.trainer import TrainConfig, Trainer, resolve_device, seed_everything


@dataclass
class SequentialConfig(TrainConfig):
    embedding_size: int = 64
    max_len: int = 50
    dropout: float = 0.2
    # Events of one user with the same timestamp (ml-100k: 76 % of events, a page of ratings sent at once)
    # are in file order, which is arbitrary.  True: each epoch trains on a fresh random order within every
    # such tie (the inputs and targets move together; time gaps stay with their positions).
    shuffle_ties: bool = False
    label_smoothing: float = 0.0  # share of each target's mass spread evenly over the catalogue (0: off)

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


class SequentialRecommender(Recommender):
    """Base for models that encode a padded item sequence into a user vector.

    Subclasses build ``self.module`` (an ``nn.Module`` with an ``item_emb``
    embedding of ``n_items + 1`` rows) in :meth:`build_module` and implement
    :meth:`encode`: ``(B, T)`` tokens -> ``(B, T, D)`` hidden states.
    """

    Config = SequentialConfig
    config: SequentialConfig
    module: nn.Module

    # ---------------------------------------------------------------- to fill
    def build_module(self) -> nn.Module:
        raise NotImplementedError

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # ---------------------------------------------------------------- fitting
    def fit(self, train: Interactions, valid: EvalSet | None = None) -> Self:
        seed_everything(self.config.seed)
        self.n_items, self.n_users = train.n_items, train.n_users
        self.device = resolve_device(self.config.device)
        self.module = self.build_module().to(self.device)
        # Warm start (the serving feedback loop, `recfuse train --warm-start DIR`): an optional
        # `self.warm_start` (state dict + the item IdMap its rows belong to) is copied into the fresh
        # module where names and shapes match; item-embedding rows are matched by external id, so new
        # items keep their fresh init.  Buffers are derived from the data and are not copied.
        warm = getattr(self, "warm_start", None)
        warm_info = None if warm is None else load_warm_start(self.module, warm.state, warm.items, train.items)
        self._train = train
        self.fit_info = Trainer(self.config).fit(self, valid, name=self.name)
        if warm_info is not None:
            self.fit_info["warm_start"] = warm_info
        del self._train
        self.__dict__.pop("_order", None)
        return self

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        train = self._train
        self._order = tie_order(train, rng) if self.config.shuffle_ties else np.arange(train.n_events)
        windows = self._windows(train, rng)
        order = rng.permutation(len(windows))
        for start in range(0, len(order), batch_size):
            rows = windows[order[start : start + batch_size]]
            yield self._window_batch(train, rows)

    def event_order(self, train: Interactions) -> np.ndarray:
        """This epoch's order of ``train``'s events (the log's, outside training or without ``shuffle_ties``)."""
        order = getattr(self, "_order", None)
        return order if order is not None and len(order) == train.n_events else np.arange(train.n_events)

    def _windows(self, train: Interactions, rng: np.random.Generator) -> np.ndarray:
        """``(n, 2)`` array of (start, end) event offsets, at most ``max_len + 1`` events each.

        The newest window ends at the user's last event; older ones are laid
        back by ``max_len`` with a random per-epoch offset (overlapping, so
        every event is a target at least once).
        """
        T = self.config.max_len
        out = []
        for u in range(train.n_users):
            lo, hi = int(train.indptr[u]), int(train.indptr[u + 1])
            if hi - lo < 2:
                continue
            end = hi
            shift = int(rng.integers(0, T)) if hi - lo > T + 1 else 0
            while end - lo >= 2:
                out.append((max(lo, end - T - 1), end))
                end = end - T + (shift if end == hi else 0)
        return np.asarray(out, dtype=np.int64).reshape(-1, 2)

    def _window_batch(self, train: Interactions, rows: np.ndarray) -> dict[str, torch.Tensor]:
        T = self.config.max_len
        tokens = np.zeros((len(rows), T), dtype=np.int64)
        labels = np.full((len(rows), T), -100, dtype=np.int64)
        order = self.event_order(train)
        for b, (s, e) in enumerate(rows):
            seq = train.item[order[s:e]]
            n = len(seq) - 1
            tokens[b, T - n :] = seq[:-1] + 1
            labels[b, T - n :] = seq[1:]
        return {"tokens": torch.from_numpy(tokens).to(self.device), "labels": torch.from_numpy(labels).to(self.device)}

    def item_vectors(self) -> torch.Tensor:
        """Output vectors of all items, ``(n_items, D)`` (tied to the input embedding)."""
        emb: nn.Embedding = self.module.item_emb  # type: ignore[assignment]
        return emb.weight[1:]

    def hidden(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """User states at every window position, ``(B, T, D)``."""
        return self.encode(batch["tokens"])

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.hidden(batch)  # (B, T, D)
        real = batch["labels"] >= 0  # (B, T)
        labels = batch["labels"][real]
        # Full softmax over the catalogue at every real position, mean over positions.
        loss = softmax_cross_entropy(h[real], self.item_vectors(), labels, smoothing=self.config.label_smoothing)
        return loss / max(len(labels), 1)

    def validate(self, valid: EvalSet) -> float:
        from recfuse.evaluate.protocol import valid_ndcg

        return valid_ndcg(self, valid)

    # ---------------------------------------------------------------- scoring
    @torch.no_grad()
    def user_vectors(self, queries: Queries) -> torch.Tensor:
        tokens = torch.from_numpy(queries.padded(self.config.max_len)).to(self.device)
        return self.encode(tokens)[:, -1]  # (B, D): the state after the newest event

    @torch.no_grad()
    def _scores(self, queries: Queries) -> torch.Tensor:
        was_training = self.module.training
        self.module.eval()
        out = self.user_vectors(queries) @ self.item_vectors().T  # (B, n_items)
        self.module.train(was_training)
        return out.float()

    def score(self, queries: Queries) -> np.ndarray:
        out = [self._scores(queries.take(slice(s, s + 512))).cpu().numpy() for s in range(0, len(queries), 512)]
        return np.concatenate(out) if out else np.zeros((0, self.n_items), dtype=np.float32)

    @torch.no_grad()
    def recommend(self, queries: Queries, k: int, exclude_history: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` on the model's device (masking and ``topk`` included): the GPU path."""
        tops, vals = [], []
        for start in range(0, len(queries), 512):
            q = queries.take(slice(start, start + 512))
            scores = self._scores(q)
            if exclude_history:
                rows = torch.from_numpy(np.repeat(np.arange(len(q)), q.lengths())).to(scores.device)
                scores[rows, torch.from_numpy(q.items).to(scores.device)] = -torch.inf
            v, i = torch.topk(scores, min(k, self.n_items), dim=1)
            tops.append(i.cpu().numpy())
            vals.append(v.cpu().numpy())
        if not tops:
            return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32)
        return np.concatenate(tops), np.concatenate(vals)

    # ------------------------------------------------------------ persistence
    def state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.device = resolve_device(self.config.device)
        self.module = self.build_module().to(self.device)
        self.module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        self.module.eval()


def tie_order(train: Interactions, rng: np.random.Generator) -> np.ndarray:
    """Event order with each run of one user's same-timestamp events shuffled.

    ``train.item[order]`` is the log as it might equally have been written:
    events whose order the timestamps do not decide are permuted, every
    other event keeps its place.  Without timestamps nothing moves.

    >>> import polars as pl
    >>> d = Interactions.from_frame(pl.DataFrame({"user_id": ["u"] * 4, "item_id": ["a", "b", "c", "d"],
    ...                                            "timestamp": [1, 5, 5, 9]}))
    >>> sorted({tuple(tie_order(d, np.random.default_rng(s)).tolist()) for s in range(20)})
    [(0, 1, 2, 3), (0, 2, 1, 3)]
    """
    n = train.n_events
    if train.timestamp is None or n == 0:
        return np.arange(n)
    user = np.repeat(np.arange(train.n_users), np.diff(train.indptr))
    new = np.ones(n, dtype=bool)
    new[1:] = (user[1:] != user[:-1]) | (train.timestamp[1:] != train.timestamp[:-1])
    group = np.cumsum(new)  # contiguous, increasing along the log
    return np.lexsort((rng.random(n), group)).astype(np.int64)


def load_warm_start(module: nn.Module, state: dict[str, np.ndarray], old_items: IdMap, new_items: IdMap) -> dict[str, int]:
    """Copy ``state`` into ``module``'s parameters where names and shapes fit; remap ``*item_emb.weight`` rows.

    Per-user vectors (fusion ``user_emb``) are not copied: the new log may order its users differently.

    Returns counts: parameters copied, item rows copied.
    """
    rows = old_items.to_index(new_items.external_ids, missing=-1)  # old index of each new item, -1 if new
    copied = items = 0
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name not in state or name.endswith("user_emb.weight"):  # user rows are not matched by id: learned afresh
                continue
            old = torch.from_numpy(np.asarray(state[name])).to(param.device, param.dtype)
            if name.endswith("item_emb.weight"):  # row 0 is padding; item i is row i + 1
                have = np.flatnonzero(rows >= 0)
                param[torch.from_numpy(have + 1)] = old[torch.from_numpy(rows[have] + 1)]
                items += len(have)
                copied += 1
            elif old.shape == param.shape:
                param.copy_(old)
                copied += 1
    return {"parameters": copied, "item_rows": items}
