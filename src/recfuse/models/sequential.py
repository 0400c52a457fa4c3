"""Shared machinery of the next-item models (GRU4Rec, SASRec, fusion).

Training examples are windows of a user's training sequence: the input is
``seq[s:e-1]`` and the target at every position is the next item
``seq[s+1:e]``, so every event of every user is a target once per epoch
(not one sample per prefix).  The loss is full-softmax cross-entropy over
the whole catalogue at every real position (a sampled softmax above
``sampled_above`` items).  Item ``i`` is token ``i + 1``;
token 0 is padding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import torch
from torch import nn

from recfuse.data.dataset import IdMap, Interactions
from recfuse.data.split import EvalSet, Queries
from recfuse.models.base import Recommender
from recfuse.models.losses import sampled_softmax_cross_entropy, softmax_cross_entropy
from recfuse.train import distributed
from recfuse.train.trainer import TrainConfig, Trainer, resolve_device, seed_everything
from recfuse.train.validation import valid_ndcg


@dataclass
class SequentialConfig(TrainConfig):
    """Settings shared by the next-item models; each declares its own ``label_smoothing`` default."""

    embedding_size: int = 64
    """Width of item and user vectors."""
    max_len: int = 50
    """Newest events a query's short-term window reads (and the length of a training window)."""
    dropout: float = 0.2
    """Dropout on the input and hidden states."""
    sampled_above: int = 50_000
    """Train with the logQ-corrected sampled softmax when the catalogue has more items than this (0: always)."""
    sampled_in_batch: int = 512
    """Negatives per batch of the sampled softmax drawn from the batch's own targets (popularity-shaped)."""
    sampled_uniform: int = 512
    """Negatives per batch of the sampled softmax drawn uniformly from the catalogue."""

    @property
    def label_smoothing(self) -> float:
        """Share of each target's probability spread evenly over the catalogue, declared by each model's config."""
        raise NotImplementedError(f"{type(self).__name__} declares no label_smoothing")

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.sampled_above < 0:
            raise ValueError(f"sampled_above must be >= 0, got {self.sampled_above}")
        if self.sampled_in_batch < 0 or self.sampled_uniform < 0 or self.sampled_in_batch + self.sampled_uniform == 0:
            raise ValueError("sampled_in_batch and sampled_uniform must be >= 0 and not both 0")


@dataclass(frozen=True)
class WarmStart:
    """A previous model's weights and the item ids its item rows belong to, to start a fit from."""

    state: dict[str, np.ndarray]
    items: IdMap


class SequentialRecommender(Recommender):
    """Base for models that encode a padded item sequence into a user vector.

    Subclasses build ``self.module`` (an ``nn.Module`` with an ``item_emb``
    embedding of ``n_items + 1`` rows) in :meth:`build_module` and implement
    :meth:`encode`: ``(B, T)`` tokens -> ``(B, T, D)`` hidden states.
    """

    Config = SequentialConfig
    config: SequentialConfig
    module: nn.Module

    def __init__(self, config: SequentialConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.device = resolve_device(self.config.device)
        self.warm_start: WarmStart | None = None  # weights to start the next fit from (set before ``fit``)
        self._train: Interactions | None = None  # the log being trained on, while ``fit`` runs

    # ---------------------------------------------------------------- to fill
    def build_module(self, train: Interactions | None = None, item_text: np.ndarray | None = None) -> nn.Module:
        """A fresh module for ``train`` (``None``: sized from ``n_items``, to load a saved state into)."""
        raise NotImplementedError

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # ---------------------------------------------------------------- fitting
    def fit(self, train: Interactions, valid: EvalSet | None = None, *, item_text: np.ndarray | None = None) -> Self:
        seed_everything(self.config.seed)
        self.n_items, self.n_users = train.n_items, train.n_users
        self.device = resolve_device(self.config.device)
        self.module = self.build_module(train, item_text).to(self.device)
        # Warm start (the serving feedback loop, `recfuse train --warm-start DIR`): ``warm_start`` (state dict
        # + the item IdMap its rows belong to) is copied into the fresh module where names and shapes match;
        # item-embedding rows are matched by external id, so new items keep their fresh init.  Buffers are
        # derived from the data and are not copied.
        warm = self.warm_start
        warm_info = None if warm is None else load_warm_start(self.module, warm.state, warm.items, train.items)
        self._train = train
        try:
            self.fit_info = Trainer(self.config).fit(self, valid, name=self.name)
        finally:
            self._train = None
        if warm_info is not None:
            self.fit_info["warm_start"] = warm_info
        self.after_fit(train, valid)
        return self

    def after_fit(self, train: Interactions, valid: EvalSet | None) -> None:
        """Called once training has ended (the best state loaded): post-hoc calibration, if a model has any."""

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        train = self._train
        assert train is not None, "train_batches runs inside fit"
        windows = self._windows(train, rng)
        order = rng.permutation(len(windows))
        for start in range(0, len(order), batch_size):
            rows = distributed.shard(windows[order[start : start + batch_size]])  # this process's share
            yield self.window_batch(train, rows, rng)

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

    def window_batch(self, train: Interactions, rows: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """The training batch of windows ``rows`` (``(B, 2)`` event offsets ``[s, e)``)."""
        T = self.config.max_len
        tokens = np.zeros((len(rows), T), dtype=np.int64)
        labels = np.full((len(rows), T), -100, dtype=np.int64)
        for b, (s, e) in enumerate(rows):
            seq = train.item[s:e]
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
        # Catalogue softmax at every real position, mean over positions.
        loss = self.catalogue_loss(h[real], self.item_vectors(), labels)
        return loss / distributed.positions(len(labels))

    @property
    def sampled(self) -> bool:
        """Whether training uses the sampled softmax (a catalogue of more than ``sampled_above`` items)."""
        return self.n_items > self.config.sampled_above

    def catalogue_loss(self, h: torch.Tensor, table: torch.Tensor, target: torch.Tensor,
                       weight: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Summed softmax CE of ``h`` ``(N, D)`` over ``table`` ``(V, D)``: full, or sampled (see :attr:`sampled`)."""
        c = self.config
        if self.sampled:
            return sampled_softmax_cross_entropy(h, table, target, weight, bias, n_in_batch=c.sampled_in_batch,
                                                 n_uniform=c.sampled_uniform, smoothing=c.label_smoothing)
        return softmax_cross_entropy(h, table, target, weight, bias, smoothing=c.label_smoothing)

    def validate(self, valid: EvalSet) -> float:
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

    def history_weights(self, query: Queries, items: np.ndarray) -> np.ndarray:
        """Gradient x input of each recommended item's score on each history event's item embedding."""
        module = self.module
        module.eval()
        T = self.config.max_len
        n = min(len(query.items), T)  # events the window reads, newest last
        tokens = torch.from_numpy(query.padded(T)).to(self.device).expand(len(items), T)  # (k, T)
        captured: list[torch.Tensor] = []

        def keep(_: nn.Module, __: object, out: torch.Tensor) -> None:
            out.retain_grad()
            captured.append(out)

        emb: nn.Module = module.item_emb  # type: ignore[assignment]
        hook = emb.register_forward_hook(keep)
        try:
            with torch.enable_grad():
                user = self.encode(tokens)[:, -1]  # (k, D)
                targets = self.item_vectors()[torch.from_numpy(np.asarray(items)).to(self.device)].detach()
                (user * targets).sum().backward()
        finally:
            hook.remove()
        e = captured[0]  # (k, T, D)
        grad = e.grad if e.grad is not None else torch.zeros_like(e)
        weights = (grad * e).sum(-1).detach().float().cpu().numpy()[:, T - n :]  # (k, n)
        full = np.zeros((len(items), len(query.items)), np.float32)
        full[:, len(query.items) - n :] = weights  # events older than the window weigh nothing
        module.zero_grad(set_to_none=True)
        return full

    # ------------------------------------------------------------ persistence
    def state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.device = resolve_device(self.config.device)
        self.module = self.build_module().to(self.device)
        self.module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        self.module.eval()


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
