"""Most-popular baseline: score = number of training events of the item.

``count="recbole"`` reproduces how RecBole 1.2.1's ``Pop`` counts instead, so
a RecBole table can be checked number for number (the docs' evaluation
protocol page).  RecBole trains Pop for one epoch of pointwise batches, each
of ``batch_size`` shuffled positives plus one uniformly drawn negative per
positive (an item the user has no training event with), and its
``item_cnt[item] = item_cnt[item] + 1`` adds one per *batch* an item appears
in, as a positive or as a negative, not one per event: popular items
saturate at the number of batches and tie there.  That count depends on the
shuffle and the negatives, so it changes with ``seed``, and so does the
order of tied items (:func:`tie_order`); true popularity (``count="events"``,
the default) does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Self

import numpy as np

from recfuse.config import ModelConfig
from recfuse.data.dataset import Interactions
from recfuse.data.split import EvalSet, Queries
from recfuse.models.base import Recommender

Count = Literal["events", "recbole"]
COUNTS: tuple[Count, ...] = ("events", "recbole")


@dataclass
class PopConfig(ModelConfig):
    """Settings of :class:`Popularity`."""

    count: Count = "events"
    """``events`` (one per training event) or ``recbole`` (one per batch an item is in, as RecBole 1.2.1's Pop)."""
    batch_size: int = 1024
    """Positives per batch of the ``recbole`` count (RecBole's 2048 rows, half of them negatives)."""

    def __post_init__(self) -> None:
        if self.count not in COUNTS:
            raise ValueError(f"pop count must be one of {COUNTS}, got {self.count!r}")
        if self.batch_size < 1:
            raise ValueError(f"pop batch_size must be >= 1, got {self.batch_size}")


def recbole_counts(train: Interactions, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """Per item, the number of shuffled batches it appears in as a positive or a sampled negative.

    Each positive brings one negative drawn uniformly from the items its
    user has no training event with (RecBole's uniform sampler, redrawn
    until it misses the user's items).

    >>> d = Interactions.from_sequences([("u", ["a", "b", "c"]), ("v", ["a", "d"])])
    >>> c = recbole_counts(d, batch_size=100, rng=np.random.default_rng(0))
    >>> c.tolist()  # one batch holds everything: every item shows up once
    [1.0, 1.0, 1.0, 1.0]
    """
    n_items = train.n_items
    users = np.repeat(np.arange(train.n_users, dtype=np.int64), train.lengths())
    known = np.unique(users * n_items + train.item)  # (user, item) pairs with a training event, sorted

    def has_seen(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        key = u * n_items + i
        at = np.minimum(np.searchsorted(known, key), len(known) - 1)
        return known[at] == key

    full = np.bincount(known // n_items, minlength=train.n_users) >= n_items  # users who have seen every item
    order = rng.permutation(train.n_events)
    negatives = rng.integers(0, n_items, size=train.n_events)
    clash = np.flatnonzero(has_seen(users, negatives) & ~full[users])
    while len(clash):  # redraw until every negative misses its user's items
        negatives[clash] = rng.integers(0, n_items, size=len(clash))
        clash = clash[has_seen(users[clash], negatives[clash])]
    counts = np.zeros(n_items, dtype=np.float32)
    for start in range(0, train.n_events, batch_size):
        batch = order[start : start + batch_size]
        counts[np.unique(np.concatenate([train.item[batch], negatives[batch]]))] += 1
    return counts


def tie_order(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``counts`` plus a fraction below 0.5 per item: equal counts in an arbitrary order, the rest unchanged.

    RecBole ranks with ``torch.topk``, which leaves equal scores in no
    particular order (not lowest index first), and the "recbole" count ties
    many items at the top.  Lowest index first, ml-100k's tied items would
    rank in file order of first appearance, and the count scores NDCG@10
    0.0377 (median of 20 seeds) instead of RecBole's own 0.0350.

    >>> tie_order(np.array([3.0, 1.0, 1.0]), np.random.default_rng(0)).round().tolist()
    [3.0, 1.0, 1.0]
    """
    return (counts + 0.5 * rng.random(len(counts))).astype(np.float32)


class Popularity(Recommender):
    """Ranks items by how many training events they have.

    Examples
    --------
    >>> from recfuse.data.dataset import Interactions
    >>> from recfuse.data.split import Queries
    >>> d = Interactions.from_sequences([("u", ["a", "b"]), ("v", ["b"])])
    >>> Popularity().fit(d).score(Queries.from_histories([[]])).tolist()
    [[1.0, 2.0]]
    """

    name = "pop"
    Config = PopConfig
    config: PopConfig

    def fit(self, train: Interactions, valid: EvalSet | None = None, *, item_text: np.ndarray | None = None) -> Self:
        self.n_items, self.n_users = train.n_items, train.n_users
        if self.config.count == "recbole":
            rng = np.random.default_rng(self.config.seed)
            self.counts = tie_order(recbole_counts(train, self.config.batch_size, rng), rng)
        else:
            self.counts = train.item_counts().astype(np.float32)
        return self

    def score(self, queries: Queries) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(queries), self.n_items)).copy()

    def state(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.counts = state["counts"]
