"""Long/short-term interest fusion, with item text, ratings and time.

Every history event enters as the sum of three parts, one per interest
dimension:

* **content**: the item tower, an ID embedding plus a learned projection of
  the item's frozen text embedding, mixed per dimension by a learned gate.
  An item with no training events (held out, or added after training) has
  no ID part: its vector is the text part alone.
* **rating** (sentiment): the event's rating as a deviation from the user's
  own mean, in five buckets (nothing when the data has no ratings).
* **recency** (timeliness): the log2-bucketed time since the user's previous
  event (nothing when the data has no timestamps; positions still order the
  short window).

Two encoders read those events:

* **short-term**: causal self-attention (SASRec blocks) over the last
  ``max_len`` events;
* **long-term**: attention over the whole available history (``long_len``
  older events plus the window), queried by the short-term state, so it
  pulls in the old events that matter for what the user is doing now.
  With ``long_scope="past"`` it reads only the events older than the
  window, so the two branches never read the same events.  On short
  histories (Amazon Beauty's) the long branch then has nothing to read:
  such a user has no long-term interest yet, the gate is 1 and the model
  is its short-term branch.  With "all" there, the gate collapsed onto the
  long branch, one attention layer with little dropout (README, "The
  fusion model on Beauty").
  A learned vector per training user (``user_emb``, on by default) is
  added to the long-term interest; a user the model never saw gets zero.

**Fusion**: a gate per user per step, ``g = sigmoid(MLP([s, l, now]))``,
where ``now`` embeds the time since the user's last event at request time
(at training, the gap to the next event).  The user vector is
``g * s + (1 - g) * l``: ``g`` is the short-term share, returned by
:meth:`Fusion.gates` and in every explanation.

**Trend** (``trend_days``, 30 by default; 0 turns it off, and it is inert
without timestamps): the item side of timeliness, each item's log count of
training events in the days before the request's day, added to its score
with a weight picked on valid after training (``trend_mode="calibrated"``)
or trained with the model ("learned").

**Loss**: full-softmax cross-entropy at every position, like SASRec
(``future > 0`` adds the events after the next one as further targets).

Ablations are config switches: ``use_text``, ``use_time``, ``use_rating``
and ``gate`` ("learned", "fixed" = 50/50, "short" = short-term only,
"long" = long-term only, queried by a learned vector instead of the
short-term state).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recfuse.data.dataset import Interactions
from recfuse.data.split import EvalSet, Queries, keep_events
from recfuse.models.layers import Dropout
from recfuse.models.losses import softmax_cross_entropy
from recfuse.models.sasrec import Block, SASRecConfig, attention_mask
from recfuse.models.sequential import SequentialRecommender

GATES = ("learned", "fixed", "short", "long")
SCOPES = ("all", "past")
N_GAP = 34  # 0 unknown/padding, 1 no previous event, 2 + floor(log2(seconds)) capped at 33
N_RATE = 6  # 0 no rating, 1..5 buckets of the per-user normalised rating
RATE_EDGES = np.array([-1.0, -0.25, 0.25, 1.0])
DIMENSIONS = ("content", "rating", "recency")
TREND_MODES = ("calibrated", "learned")
TREND_FILLS = ("event", "text", "mean")  # how a never-seen item gets a trend: trend_counts
TREND_ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)  # weights of the calibrated trend term, picked on valid


@dataclass
class FusionConfig(SASRecConfig):
    """SASRec's settings for the short-term branch, plus the long-term, text and signal ones.

    ``label_smoothing`` (0.1) comes with them: on ml-100k it raised valid NDCG@10 over seeds 0-1 from 0.1483
    to 0.1519, and left test level (0.1245 against 0.1270 over seeds 0-4, Wilcoxon p = 0.17;
    benchmarks/results/ml-100k-labelsmooth/).
    """

    # 3e-3, picked on valid (ml-100k seed 0, patience 20): valid NDCG@10 0.1451 at best epoch 33, against
    # 0.1417 (epoch 41) at 2e-3 and 0.1432 (epoch 95) at SASRec's 1e-3 (benchmarks/results/tune-fusion/).
    learning_rate: float = 3e-3
    long_len: int = 200  # history events before the short window that the long-term branch reads
    use_text: bool = True  # item text in the item tower, when the dataset has it
    use_time: bool = True  # time-gap features, when the dataset has timestamps
    use_rating: bool = True  # rating features, when the dataset has ratings
    gate: str = "learned"  # "learned" | "fixed" (50/50) | "short" | "long"
    id_dropout: float = 0.0  # share of items trained with their text part alone (cold-start practice)
    aux_loss: float = 0.5  # weight of each branch's own softmax loss (keeps both branches useful to the gate)
    aux_share: float = 0.25  # share of positions those branch losses are computed on (they cost a softmax each)
    smooth_branches: bool = True  # label smoothing on the branch losses too (False: on the fused vector's only)
    long_dropout: float = 0.0  # dropout on the long-term attention weights and output (0: as measured on ml-100k)
    # What the long-term branch reads: "all" = the older events and the window (as measured on ml-100k);
    # "past" = only the events older than the short-term window (nothing when the whole history fits in it).
    long_scope: str = "all"
    # Heads of the long-term attention: each reads the history with its own query, so a user's long-term
    # interest can hold several tastes at once.  1: on ml-100k, 4 heads gave valid NDCG@10 0.1526 against
    # 0.1519 over seeds 0-1, under the 0.002 a change needs (benchmarks/results/ml-100k-long-heads/).
    long_heads: int = 1
    # A learned vector per training user, added to the long-term interest: what the user has liked over all
    # their training events, whatever the history window reads (the user embedding of SSE-PT).  While
    # training, a row's user is swapped for a random one with probability ``user_swap`` (SSE-PT's stochastic
    # shared embeddings, its regulariser) and hidden (the unknown user's zero vector, as for users the
    # model never saw) with probability 0.05.  On since session 18: on the selection split loo-valid5
    # (ml-100k, 4,715 valid targets, seeds 0-4) valid NDCG@10 0.1522 against 0.1481 without it, 1.027x,
    # Wilcoxon p = 0.0097 over users (benchmarks/results/ml-100k-loo-valid5/).  On leave-one-out's own valid
    # (943 targets) it had moved only 1.008x (p = 0.40); leave-one-out test, ten seeds, 0.1320 against 0.1265
    # (benchmarks/results/ml-100k-user-emb/).  The temporal cut's valid fell (0.1097 against 0.1113).
    user_emb: bool = True
    user_swap: float = 0.5
    # Fold-in for users the model never saw (with ``user_emb``): instead of the zero vector, such a user gets a
    # vector fitted to their own history with every weight frozen (``fold_in`` Adam steps at ``fold_in_lr`` on
    # the next-event loss of the history's last ``max_len`` positions), as ALS folds in a new user.  0: off.
    # Not adopted: on ml-100k with each user held out of one of five fits (loo-valid5, 943 cold users), the
    # best of 10/30/100 steps moved the cold users' valid NDCG@10 1.0046x (10 steps, Wilcoxon p = 0.63)
    # against the zero vector (benchmarks/results/ml-100k-cold-users/).
    fold_in: int = 0
    fold_in_lr: float = 0.05
    # Positions inside the short branch's input dropout, as SASRec has them (its own dropout draw).
    # On valid it wins on Beauty (0.0705 against 0.0661) and on ml-100k (0.1431 against 0.1413 over 5 seeds, test
    # level at 0.1227); False stays the default until the other ml-100k protocols are re-measured with it.
    drop_positions: bool = False
    # Each position also learns the ``future`` events after the next one, each at ``future_weight``
    # x the next event's loss (0: next event only, as SASRec).
    future: int = 0
    future_weight: float = 0.5
    # The request-time gap inside the short-term state too (``short + W now``), not only in the gate and the
    # long-term query: the same last events call for other next items a second later (the same page of
    # ratings) than an hour later.  W starts at zero, so the model starts as without it.  Off: on ml-100k
    # (seeds 0-4) valid NDCG@10 0.1509 against 0.1525 without it; test 0.1285 against 0.1245, which does not
    # select (benchmarks/results/ml-100k-now-short/).
    now_short: bool = False
    # The trend dimension (item side of timeliness): what is popular *now*.  Each item's log training count in
    # the ``trend_days`` before the request time's bucket (buckets of trend_days / 30; never the request's own
    # bucket, so no event counts toward a request in its own day) is added to its score, scaled by
    # ``trend_mode`` = "calibrated": one weight picked on valid NDCG@10 after training (TREND_ALPHAS) |
    # "learned": a weight of the request-time gap trained with the model, the (buckets x items) table
    # entering the softmax through its rank-``trend_rank`` SVD.  0 days: off (it needs timestamps, so it is
    # inert on data without them).  30 days, calibrated, over 10 ml-100k seeds: valid NDCG@10 0.1495 against
    # 0.1436 for the same fits without it, test 0.1269 against 0.1222.  With trend_fill="event" it no longer
    # costs the cold-start slice (README, Results, session 13).
    trend_days: float = 30.0
    trend_mode: str = "calibrated"
    trend_rank: int = 8
    # A never-seen item's trend (its popularity is unknown, not zero; see trend_counts): "event", each row's
    # mean over events (the trend of the item a random recent event went to) | "text", the mean of its 10
    # nearest items with events by text | "mean", each row's mean over items.
    trend_fill: str = "event"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gate not in GATES:
            raise ValueError(f"fusion gate must be one of {GATES}, got {self.gate!r}")
        if self.long_scope not in SCOPES:
            raise ValueError(f"fusion long_scope must be one of {SCOPES}, got {self.long_scope!r}")
        if self.trend_mode not in TREND_MODES:
            raise ValueError(f"fusion trend_mode must be one of {TREND_MODES}, got {self.trend_mode!r}")
        if self.trend_fill not in TREND_FILLS:
            raise ValueError(f"fusion trend_fill must be one of {TREND_FILLS}, got {self.trend_fill!r}")
        if self.long_heads < 1 or self.embedding_size % self.long_heads:
            raise ValueError(f"fusion long_heads must be >= 1 and divide embedding_size ({self.embedding_size}), "
                             f"got {self.long_heads}")
        if self.fold_in < 0 or self.fold_in_lr <= 0:
            raise ValueError(f"fusion fold_in must be >= 0 steps at fold_in_lr > 0, got {self.fold_in}, {self.fold_in_lr}")
        if not 0.0 <= self.user_swap <= 1.0:
            raise ValueError(f"fusion user_swap must be in [0, 1], got {self.user_swap}")
        if self.trend_days < 0 or self.trend_rank < 1:
            raise ValueError(f"fusion trend_days must be >= 0 and trend_rank >= 1, got {self.trend_days}, {self.trend_rank}")


def gap_bucket(seconds: np.ndarray) -> np.ndarray:
    """Log2 bucket of a time gap in seconds: 2 for under 2 s, ..., 33 for ~136 years.

    >>> gap_bucket(np.array([0.0, 1.0, 60.0, 86400.0])).tolist()
    [2, 2, 7, 18]
    """
    s = np.maximum(np.asarray(seconds, dtype=np.float64), 1.0)
    return (2 + np.clip(np.floor(np.log2(s)), 0, N_GAP - 3)).astype(np.int64)


def rating_bucket(z: np.ndarray) -> np.ndarray:
    """Bucket 1..5 of a normalised rating (0 where it is NaN).

    >>> rating_bucket(np.array([-2.0, -0.5, 0.0, 0.5, 2.0, np.nan])).tolist()
    [1, 2, 3, 4, 5, 0]
    """
    z = np.asarray(z, dtype=np.float64)
    out = np.digitize(np.nan_to_num(z), RATE_EDGES) + 1
    return np.where(np.isnan(z), 0, out).astype(np.int64)


TREND_CELLS = 20_000_000  # largest (buckets x items) trend table; wider buckets beyond it
TREND_BUCKETS = 30  # buckets per trend window


@dataclass(frozen=True)
class Trend:
    """The trend table of a training log: ``counts[k]``, or factored, ``counts[k] ~ basis[k] @ items.T``.

    Row ``k >= 1`` of ``basis`` belongs to the requests in bucket ``k - 1``
    (``[t0 + (k - 1) * width, t0 + k * width)``, the last row also to every
    later request) and reads the events of the ``window`` buckets before that
    one; row 0 (request time unknown) is zero.  Unfactored (``items`` is
    ``None``), ``basis`` is the ``(n_buckets + 1, n_items)`` table itself.
    """

    basis: np.ndarray  # (n_buckets + 1, r), or (n_buckets + 1, n_items) unfactored
    items: np.ndarray | None  # (n_items, r), or None
    t0: float
    width: float

    def bucket(self, times: np.ndarray | None, n: int) -> np.ndarray:
        """Basis row of each request time (0 where unknown)."""
        if times is None:
            return np.zeros(n, np.int64)
        t = np.asarray(times, np.float64)
        k = np.floor((np.nan_to_num(t, nan=self.t0) - self.t0) / self.width) + 1
        k = np.clip(k, 1, len(self.basis) - 1).astype(np.int64)
        return np.where(np.isfinite(t), k, 0)


def trend_counts(
    item: np.ndarray,
    time: np.ndarray,
    n_items: int,
    window: float,
    text: np.ndarray | None = None,
    fill: str = "event",
) -> tuple[np.ndarray, float, float]:
    """``log1p`` of each item's events in the window before each time bucket: ``(n_buckets + 1, n_items)``.

    Buckets are ``window / 30`` wide (wider when the table would pass
    :data:`TREND_CELLS`); row ``k >= 1`` counts the events in buckets
    ``[k - 1 - 30, k - 1)``, strictly before request bucket ``k - 1``.  An item
    with no event at all has an unknown popularity, not a zero one; it gets
    :func:`unseen_trend` by ``fill`` (``text``: ``(n_items, d)`` item text
    vectors, for ``fill="text"``).

    >>> c, t0, w = trend_counts(np.array([0, 0, 1]), np.array([0.0, 1.0, 45.0]), 2, 30.0)
    >>> w, len(c), np.expm1(c[[1, 2, 3, 31, 32, 46, 47]]).round().tolist()  # item 1's event never counts in its own bucket 45 (row 46)
    (1.0, 48, [[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    """
    t0 = float(time.min())
    width = window / TREND_BUCKETS
    n_buckets = int((float(time.max()) - t0) // width) + 2
    if n_buckets * n_items > TREND_CELLS:
        n_buckets = max(TREND_CELLS // max(n_items, 1), 2)
        width = (float(time.max()) - t0) / (n_buckets - 2) if n_buckets > 2 else window
    span = max(round(window / width), 1)  # window in buckets
    b = np.minimum(((time - t0) // width).astype(np.int64), n_buckets - 1)
    per = np.bincount(b * n_items + item, minlength=n_buckets * n_items).reshape(n_buckets, n_items)
    cum = np.zeros((n_buckets + 1, n_items), np.float64)
    np.cumsum(per, axis=0, out=cum[1:])  # cum[k]: events in buckets < k
    k = np.arange(n_buckets)  # request bucket
    out = np.zeros((n_buckets + 1, n_items), np.float32)
    out[1:] = np.log1p(cum[k] - cum[np.maximum(k - span, 0)])
    unseen = cum[-1] == 0  # items with no event in the whole log
    if unseen.any() and not unseen.all():
        out[:, unseen] = unseen_trend(out, ~unseen, int(unseen.sum()), fill, text, None if text is None else text[unseen])
    return out, t0, width


def unseen_trend(
    table: np.ndarray,
    seen: np.ndarray,
    m: int,
    fill: str = "event",
    text: np.ndarray | None = None,
    query: np.ndarray | None = None,
) -> np.ndarray:
    """``(rows, m)``: trend columns for ``m`` items without events, from ``table``'s (``log1p`` counts)
    columns where ``seen`` is true.

    * ``"event"``: each row's mean over *events*, ``sum(n * log1p(n)) / sum(n)`` over the seen items' counts
      ``n``: the trend of the item a random event in the window went to.  An item that is asked for at all is
      such an item, so this is where a never-seen target belongs; the mean over items would put it at the level
      of the many rarely-seen ones, under everything its users compete for.
    * ``"text"``: the mean of its :data:`TREND_NEIGHBOURS` nearest seen items by text cosine (``text`` holds
      every item's vector, ``query`` the ``m`` items'); each row's mean over items without text.
    * ``"mean"``: each row's mean over the seen items.

    >>> t = np.log1p(np.array([[0.0, 0.0], [3.0, 1.0]]))
    >>> unseen_trend(t, np.array([True, True]), 1, "event").round(4).tolist()  # (3 log 4 + 1 log 2) / 4
    [[0.0], [1.213]]
    >>> unseen_trend(t, np.array([True, True]), 1, "mean").round(4).tolist()  # (log 4 + log 2) / 2
    [[0.0], [1.0397]]
    """
    if fill not in TREND_FILLS:
        raise ValueError(f"trend fill must be one of {TREND_FILLS}, got {fill!r}")
    if fill == "text" and text is not None and query is not None:
        return neighbour_mean(table, nearest_seen(text, seen, query))
    cols = table[:, seen]
    if fill == "event":
        n = np.expm1(cols.astype(np.float64))
        total = n.sum(axis=1, keepdims=True)
        row = np.where(total > 0, (n * cols).sum(axis=1, keepdims=True) / np.maximum(total, 1e-12), 0.0)
    else:
        row = cols.mean(axis=1, keepdims=True)
    return np.repeat(row.astype(table.dtype), m, axis=1)


TREND_NEIGHBOURS = 10  # items with events by text whose trend a never-seen item takes


def nearest_seen(text: np.ndarray, seen: np.ndarray, query: np.ndarray, k: int = TREND_NEIGHBOURS) -> np.ndarray:
    """``(m, k)``: indices of the ``k`` items with ``seen`` true whose ``text`` rows are nearest
    (cosine) to each of the ``m`` ``query`` vectors.

    >>> t = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    >>> nearest_seen(t, np.array([True, True, False, False]), t[2:], k=1).tolist()
    [[0], [1]]
    """
    pool = np.flatnonzero(seen)
    k = min(k, len(pool))
    unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = unit(np.asarray(query, np.float32)) @ unit(np.asarray(text, np.float32)[pool]).T  # (m, n_seen)
    return pool[np.argpartition(-sim, k - 1, axis=1)[:, :k]]


def neighbour_mean(table: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """``(rows, m)``: the mean of ``table``'s columns ``neighbours[j]`` for each of the ``m`` rows of ``neighbours``."""
    m, k = neighbours.shape
    avg = np.zeros((table.shape[1], m), np.float32)
    avg[neighbours.ravel(), np.repeat(np.arange(m), k)] += 1.0 / k  # column j averages its k neighbours
    return table @ avg


def trend_table(
    item: np.ndarray,
    time: np.ndarray,
    n_items: int,
    window: float,
    rank: int,
    text: np.ndarray | None = None,
    fill: str = "event",
) -> Trend:
    """:func:`trend_counts`, each row centred (softmax ignores a per-request constant), SVD-truncated to ``rank``."""
    counts, t0, width = trend_counts(item, time, n_items, window, text, fill)
    x = counts[1:] - counts[1:].mean(axis=1, keepdims=True)
    u, sv, vt = np.linalg.svd(x.astype(np.float64), full_matrices=False)
    r = min(rank, len(sv))
    basis = np.zeros((len(counts), rank), np.float32)
    basis[1:, :r] = u[:, :r] * sv[:r]
    items = np.zeros((n_items, rank), np.float32)
    items[:, :r] = vt[:r].T
    return Trend(basis, items, t0, width)


def trim_padding(x: dict[str, np.ndarray], window: int) -> dict[str, np.ndarray]:
    """Drop the left-padding columns that every row of a batch has, keeping ``window`` positions.

    Padding is masked out everywhere in the model, so the scores do not change;
    the work does (most histories are far shorter than ``long_len + max_len``).

    >>> x = {"hist": np.array([[0, 0, 0, 5, 6], [0, 0, 7, 8, 9]]), "now": np.zeros((2, 2))}
    >>> {k: v.shape for k, v in trim_padding(x, 2).items()}
    {'hist': (2, 3), 'now': (2, 2)}
    """
    hist = x["hist"]
    L = hist.shape[1]
    real = (hist > 0).any(axis=0)
    first = int(real.argmax()) if real.any() else L
    start = min(first, L - window)
    if start <= 0:
        return x
    return {k: (v[:, start:] if v.shape[1] == L else v) for k, v in x.items()}


def drop_last(queries: Queries) -> Queries:
    """``queries`` without each history's newest event, requested at that event's time (if it has one).

    >>> q = drop_last(Queries.from_histories([[0, 1, 2], [], [4]]))
    >>> [q.history(b).tolist() for b in range(len(q))]
    [[0, 1], [], []]
    """
    n = queries.lengths()
    keep = np.ones(len(queries.items), dtype=bool)
    last = queries.indptr[1:][n > 0] - 1
    keep[last] = False
    out = keep_events(queries, keep)
    if queries.timestamps is None:
        return replace(out, time=None)
    time = np.full(len(queries), np.nan)
    time[n > 0] = queries.timestamps[last]
    return replace(out, time=time)


def running_z(rating: np.ndarray, indptr: np.ndarray, floor: float) -> np.ndarray:
    """Each rating against the user's mean and std *so far* (that event included).

    ``(r - mean) / max(std, floor)`` over the user's events up to each one, so
    an event reads the same in training and at request time (the future
    never shifts it).  NaN ratings stay NaN and do not count.

    >>> running_z(np.array([5.0, 1.0, np.nan, 3.0]), np.array([0, 4]), 0.5).round(2).tolist()
    [0.0, -1.0, nan, 0.0]
    """
    r = np.asarray(rating, np.float64)
    ok = ~np.isnan(r)
    v = np.where(ok, r, 0.0)
    starts = np.repeat(indptr[:-1], np.diff(indptr))  # first event of each event's user

    def running(a: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(a)])
        return c[1:] - c[starts]

    n = np.maximum(running(ok.astype(np.float64)), 1.0)
    mean = running(v) / n
    var = np.maximum(running(v * v) / n - mean**2, 0.0)
    z = (r - mean) / np.maximum(np.sqrt(var), floor)
    return np.where(ok, z, np.nan)


class FusionModule(nn.Module):
    warm: torch.Tensor  # (n_items + 1,) bool: the item has an ID part (training events)
    text: torch.Tensor | None
    trend_basis: torch.Tensor | None  # (n_buckets + 1, r | n_items), with trend_clock (t0, width)
    trend_items: torch.Tensor | None  # (n_items + 1, r): learned mode; calibrated mode has trend_alpha ()
    trend_clock: torch.Tensor
    trend_alpha: torch.Tensor
    rating_floor: torch.Tensor
    signals: torch.Tensor
    branches: tuple[torch.Tensor, torch.Tensor]
    long_empty: torch.Tensor  # (B, T') bool: the long-term branch had no event to read

    def __init__(
        self, n_items: int, c: FusionConfig, text: torch.Tensor | None, trend: Trend | None = None, n_users: int = 0
    ) -> None:
        super().__init__()
        d = c.embedding_size
        self.c = c
        self.item_emb = nn.Embedding(n_items + 1, d, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        self.register_buffer("warm", torch.ones(n_items + 1, dtype=torch.bool))  # has an ID part
        if text is not None:
            self.register_buffer("text", text)  # (n_items + 1, d_text), row 0 = padding
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
        self.register_buffer("signals", torch.zeros(2, dtype=torch.bool))  # trained with (time, rating)
        self.pos_emb = nn.Embedding(c.max_len, d)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        self.drop = Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(d, c.n_heads, c.dropout, c.attn_dropout) for _ in range(c.n_layers))
        self.ln = nn.LayerNorm(d)
        self.long_query = nn.Parameter(torch.zeros(d))
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.ln_long = nn.LayerNorm(d)
        self.long_out = nn.Linear(d, d) if c.long_heads > 1 else None  # mixes the heads, as in multi-head attention
        self.user_emb = None
        if c.user_emb:
            self.user_emb = nn.Embedding(n_users + 1, d, padding_idx=0)  # row 0: a user the model never saw
            nn.init.normal_(self.user_emb.weight, std=0.02)
            self.user_emb.weight.data[0] = 0.0
        self.long_drop = Dropout(c.long_dropout)
        self.gate = nn.Sequential(nn.Linear(3 * d, d), nn.GELU(), nn.Linear(d, 1))
        if c.now_short:
            self.now_short = nn.Linear(d, d)
            nn.init.zeros_(self.now_short.weight)
            nn.init.zeros_(self.now_short.bias)
        self.trend_basis = self.trend_items = None
        if trend is not None:
            self.add_trend(trend)

    def add_trend(self, trend: Trend) -> None:
        """The trend term's buffers: factored (learned weight) or the table itself (calibrated weight)."""
        for name in ("trend_basis", "trend_items"):
            if name not in self._buffers:
                delattr(self, name)  # the plain ``None`` of a model without one
        self.register_buffer("trend_basis", torch.from_numpy(trend.basis).to(self.warm.device))  # (n_buckets + 1, r | n_items)
        self.register_buffer("trend_clock", torch.tensor([trend.t0, trend.width], dtype=torch.float64))
        if trend.items is None:
            self.trend_items = None
            self.register_buffer("trend_alpha", torch.zeros((), device=self.warm.device))  # set by calibration
            return
        pad = np.zeros((1, trend.items.shape[1]), np.float32)
        self.register_buffer("trend_items", torch.from_numpy(np.vstack([pad, trend.items])))  # (n_items + 1, r)
        self.trend_weight = nn.Linear(self.c.embedding_size, 1)  # from the request-time gap: how much "popular now" counts
        nn.init.zeros_(self.trend_weight.weight)
        nn.init.constant_(self.trend_weight.bias, float(np.log(np.expm1(0.5))))  # softplus -> 0.5

    # ---------------------------------------------------------------- items
    def items(self, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Item vectors for ``tokens`` (or the whole table ``(n_items + 1, D)``): ID part mixed with text part.

        The table is built once and gathered (projecting ``(B, L, 384)`` text per event
        cost 5x more than the whole catalogue).
        """
        ids = self.item_emb.weight  # (N + 1, D)
        keep = self.warm
        if self.training and self.c.id_dropout > 0:
            keep = keep & (torch.rand(keep.shape, device=keep.device) >= self.c.id_dropout)
        keep = keep.unsqueeze(-1).to(ids.dtype)  # (N + 1, 1)
        if self.text is None:
            table = ids * keep
        else:
            guess = self.id_from_text(self.text)  # (N + 1, D): the ID part a cold item would have
            mix = torch.sigmoid(self.text_mix)  # (D,)
            table = (1 - mix) * (ids * keep + guess * (1 - keep)) + mix * self.text_proj(self.text)
        return table if tokens is None else table[tokens]

    def trend(self, now: torch.Tensor, tbin: torch.Tensor) -> torch.Tensor:
        """The user side of the trend term, ``(B, T, r)``: ``score += trend(...) @ trend_items.T``.

        ``now`` ``(B, T)`` request-time gap buckets, ``tbin`` ``(B, T)`` request-time trend rows (0: unknown).
        """
        assert self.trend_basis is not None and self.trend_items is not None, "no learned trend term (trend_mode)"
        weight = F.softplus(self.trend_weight(self.now_emb(now)))  # (B, T, 1)
        return weight * self.trend_basis[tbin]

    # ---------------------------------------------------------------- users
    def embed(self, hist: torch.Tensor, gap: torch.Tensor, rate: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three per-event parts, ``(B, L, D)`` each."""
        return {"content": self.items(hist), "rating": self.rate_emb(rate), "recency": self.gap_emb(gap)}

    def fuse(
        self,
        parts: dict[str, torch.Tensor],
        hist: torch.Tensor,
        now: torch.Tensor,
        last_only: bool = False,
        user: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-event parts ``(B, C + T, D)`` and the embedded request-time gaps
        ``now`` ``(B, T, D)`` -> user vectors ``(B, T, D)`` and gates ``(B, T)``.

        ``user``: training-user rows ``(B,)`` (0: unknown), or the users' vectors ``(B, D)``
        themselves (a folded-in user's, :meth:`Fusion.fold_in`); read only with ``user_emb``.

        ``last_only``: only the newest position's user vector and gate (``T' = 1``), which is
        all that scoring needs; the long-term attention and the gate then run for one query
        instead of ``T`` (the short-term blocks still read the whole window).
        """
        short, long, now, empty = self.interests(parts, hist, now, last_only)
        return self.combine(short, long, now, empty, user)

    def interests(
        self, parts: dict[str, torch.Tensor], hist: torch.Tensor, now: torch.Tensor, last_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The part of :meth:`fuse` that does not read the user vector: the short-term states ``(B, T', D)``,
        the long-term reads before the user vector and LayerNorm ``(B, T', D)``, the request-time gaps
        ``(B, T', D)`` and where the long-term branch had nothing to read ``(B, T')``."""
        L, T = hist.shape[1], now.shape[1]
        C = L - T
        dev = hist.device
        e = parts["content"] + parts["rating"] + parts["recency"]  # (B, L, D)
        x = self.drop(e)
        tokens = hist[:, C:]  # (B, T)

        pos = self.pos_emb(torch.arange(T, device=dev))  # (T, D)
        if self.c.drop_positions:
            h = self.drop(e[:, C:] + pos)  # SASRec's input: window events and positions, their own dropout draw
        else:
            h = x[:, C:] + pos  # (B, T, D)
        mask = attention_mask(tokens)  # (B, 1, T, T)
        for block in self.blocks:
            h = block(h, mask)
        short = self.ln(h)  # (B, T, D)
        if self.c.now_short:
            short = short + self.now_short(now)  # (B, T, D): what follows these events after this gap
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
        if self.long_out is None:
            att = (query @ self.k(x).transpose(1, 2)) * (short.shape[-1] ** -0.5)  # (B, T', L)
            att = self.long_drop(att.masked_fill(~see, float("-inf")).softmax(dim=-1).nan_to_num(0.0))
            long = self.long_drop(att @ self.v(x))  # (B, T', D)
        else:
            B, Tq, D = query.shape
            H = self.c.long_heads

            def split(t: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, H, T, D / H)
                return t.view(B, t.shape[1], H, D // H).transpose(1, 2)

            att = (split(query) @ split(self.k(x)).transpose(-1, -2)) * ((D // H) ** -0.5)  # (B, H, T', L)
            att = self.long_drop(att.masked_fill(~see[:, None], float("-inf")).softmax(dim=-1).nan_to_num(0.0))
            heads = (att @ split(self.v(x))).transpose(1, 2).reshape(B, Tq, D)  # (B, T', D)
            long = self.long_drop(self.long_out(heads))  # (B, T', D)
        # Nothing to read (past scope, a history no longer than the window): no long-term interest
        # yet, and ``long`` is only LayerNorm's bias, the same for every user.
        empty = ~see.any(dim=-1)  # (B, T')
        return short, long, now, empty

    def combine(
        self, short: torch.Tensor, long: torch.Tensor, now: torch.Tensor, empty: torch.Tensor, user: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`interests`' outputs and the users (as in :meth:`fuse`) -> user vectors and gates."""
        if self.user_emb is not None and user is not None:
            u = user if user.is_floating_point() else self.user_emb(user)  # (B, D)
            long = long + u[:, None, :]  # the user's standing taste
        long = self.ln_long(long)

        if self.c.gate == "learned":
            g = torch.sigmoid(self.gate(torch.cat([short, long, now], dim=-1)))  # (B, T', 1)
        else:
            value = {"fixed": 0.5, "short": 1.0, "long": 0.0}[self.c.gate]
            g = torch.full_like(short[..., :1], value)
        if self.c.gate != "long":
            g = g.masked_fill(empty.unsqueeze(-1), 1.0)  # the user vector is the short-term one
        self.branches = (short, long)  # kept for the auxiliary losses
        self.long_empty = empty
        return g * short + (1 - g) * long, g.squeeze(-1)

    def forward(
        self,
        hist: torch.Tensor,
        gap: torch.Tensor,
        rate: torch.Tensor,
        now: torch.Tensor,
        last_only: bool = False,
        user: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fuse(self.embed(hist, gap, rate), hist, self.now_emb(now), last_only, user)


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

    # ---------------------------------------------------------------- fitting
    def fit(self, train: Interactions, valid: EvalSet | None = None) -> Self:
        c = self.config
        self._text = self._text_matrix(train) if c.use_text else None
        self._warm: np.ndarray | None = np.concatenate([[True], train.item_counts() > 0])
        self._n_users = train.n_users
        self._gap, self._next, self._rate, self._floor = self._event_features(train)
        self._trend = None
        timed = c.trend_days > 0 and c.use_time and train.timestamp is not None and train.n_events > 0
        if timed and c.trend_mode == "learned":
            stamps = np.asarray(train.timestamp, np.float64)
            self._trend = trend_table(train.item, stamps, train.n_items, c.trend_days * 86400.0, c.trend_rank,
                                      self._item_text(), c.trend_fill)
            self._tbin = self._trend.bucket(train.timestamp, train.n_events)  # each event as a request's target
        super().fit(train, valid)
        if timed and c.trend_mode == "calibrated":
            self._calibrate_trend(train, valid)
        return self

    def _calibrate_trend(self, train: Interactions, valid: EvalSet | None) -> None:
        """Add the trend table to the trained model and pick its weight on valid NDCG@10 (0 without valid)."""
        from recfuse.evaluate.protocol import valid_ndcg

        started = time.perf_counter()
        counts, t0, width = trend_counts(train.item, np.asarray(train.timestamp, np.float64), train.n_items,
                                         self.config.trend_days * 86400.0, self._item_text(), self.config.trend_fill)
        self._trend = Trend(counts, None, t0, width)
        self.module.add_trend(self._trend)
        found: dict[str, float] = {}
        if valid is not None and len(valid):
            for a in TREND_ALPHAS:
                self.module.trend_alpha.fill_(a)
                found[str(a)] = valid_ndcg(self, valid)
        best = max(found, key=lambda a: found[a]) if found else "0.0"
        self.module.trend_alpha.fill_(float(best))
        self.fit_info["trend"] = {"alpha": float(best), "valid_ndcg@10": found, "days": self.config.trend_days,
                                  "seconds": time.perf_counter() - started}

    def _item_text(self) -> np.ndarray | None:
        """``(n_items, d_text)`` text vectors without the padding row (None without text)."""
        text = getattr(self, "_text", None)
        return None if text is None else text[1:]

    @staticmethod
    def _text_matrix(data: Interactions) -> np.ndarray | None:
        if data.item_features is None or data.item_features.width < 2:
            return None
        from recfuse.text.cache import encode_items

        vectors, _ = encode_items(data)
        return np.vstack([np.zeros((1, vectors.shape[1]), np.float32), vectors.astype(np.float32)])

    def _event_features(self, train: Interactions) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Per training event: gap bucket to the previous event, to the next, and rating bucket."""
        n = train.n_events
        gap = np.zeros(n, np.int64)
        nxt = np.zeros(n, np.int64)
        first = np.zeros(n, bool)
        first[train.indptr[:-1][train.lengths() > 0]] = True
        if self.config.use_time and train.timestamp is not None and n:
            delta = np.diff(train.timestamp, prepend=train.timestamp[0])
            gap = np.where(first, 1, gap_bucket(delta))
            last = np.roll(first, -1)
            last[-1] = True
            nxt = np.where(last, 0, np.roll(gap, -1))
        rate = np.zeros(n, np.int64)
        floor = 1.0
        if self.config.use_rating and train.rating is not None:
            r = np.asarray(train.rating, np.float64)
            if np.isfinite(r).any():
                floor = max(0.5 * float(np.nanstd(r)), 1e-6)
                rate = rating_bucket(running_z(r, train.indptr, floor))
        self._signals = (bool(gap.any()), bool(rate.any()))
        return gap, nxt, rate, floor

    def build_module(self) -> nn.Module:
        text = getattr(self, "_text", None)
        module = FusionModule(self.n_items, self.config, None if text is None else torch.from_numpy(text),
                              getattr(self, "_trend", None), getattr(self, "_n_users", 0))
        if getattr(self, "_warm", None) is not None:
            module.warm.copy_(torch.from_numpy(self._warm))
        module.rating_floor.fill_(getattr(self, "_floor", 1.0))
        module.signals.copy_(torch.tensor(getattr(self, "_signals", (False, False))))
        return module

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        self._rng = rng
        yield from super().train_batches(rng, batch_size)

    def _window_batch(self, train: Interactions, rows: np.ndarray) -> dict[str, torch.Tensor]:
        T, C = self.config.max_len, self.config.long_len
        L = C + T
        owner = np.searchsorted(train.indptr, rows[:, 0], side="right") - 1
        hist = np.zeros((len(rows), L), np.int64)
        gap = np.zeros((len(rows), L), np.int64)
        rate = np.zeros((len(rows), L), np.int64)
        now = np.zeros((len(rows), T), np.int64)
        labels = np.full((len(rows), T), -100, np.int64)
        K = self.config.future
        future = np.full((len(rows), T, K), -100, np.int64)  # later targets of each position
        order = self.event_order(train)  # tied events shuffled per epoch (shuffle_ties), else the log's order
        for b, (s, e) in enumerate(rows):
            lo = max(int(train.indptr[owner[b]]), int(s) - C)
            ev = np.arange(lo, e - 1)  # input events: older context + the window but its last event
            n_in = e - 1 - s
            moved = order[ev]  # the events at those positions this epoch; time gaps stay with the positions
            hist[b, L - len(ev) :] = train.item[moved] + 1
            gap[b, L - len(ev) :] = self._gap[ev]
            rate[b, L - len(ev) :] = self._rate[moved]
            now[b, T - n_in :] = self._next[s : e - 1]
            labels[b, T - n_in :] = train.item[order[s + 1 : e]]
            for j in range(1, K + 1):  # position i's j-th later target: event s + 1 + i + j, if the user has it
                later = np.arange(s + 1 + j, e + j)
                ok = later < train.indptr[owner[b] + 1]
                future[b, T - n_in :, j - 1] = np.where(ok, train.item[order[np.minimum(later, train.n_events - 1)]], -100)
        # The request time is sometimes unknown (bucket 0, e.g. an offline explanation): practise it.
        now[self._rng.random(now.shape) < 0.05] = 0
        x = trim_padding({"hist": hist, "gap": gap, "rate": rate, "now": now, "labels": labels}, T)
        if self.config.user_emb:
            u = owner + 1
            draw = self._rng.random(len(u))
            swap = draw < self.config.user_swap
            u[swap] = self._rng.integers(1, self._n_users + 1, int(swap.sum()))
            u[draw >= 0.95] = 0  # practise the unknown user
            x["user"] = u
        if K:
            x["future"] = future
        if self.module.trend_items is not None:  # each position's request time is its target's (ties share it)
            tbin = np.zeros((len(rows), T), np.int64)
            for b, (s, e) in enumerate(rows):
                tbin[b, T - (e - 1 - s) :] = self._tbin[s + 1 : e]
            x["tbin"] = np.where(now > 0, tbin, 0)  # request time unknown: no trend either
        return {k: torch.from_numpy(v).to(self.device) for k, v in x.items()}

    def hidden(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.module(batch["hist"], batch["gap"], batch["rate"], batch["now"], user=batch.get("user"))[0]  # (B, T, D)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Full-softmax CE of the fused vector, plus ``aux_loss`` x the CE of each branch alone.

        Without the branch losses the gate saturates early toward whichever
        branch learns first, and the other one stops getting gradient
        (``(1 - g) -> 0``): each branch must be a good predictor on its own
        for the gate to have a real choice.
        """
        fused = self.hidden(batch)  # (B, T, D)
        real = batch["labels"] >= 0  # (B, T)
        labels = batch["labels"][real]
        module = self.module
        if module.trend_items is not None:
            # The trend term rides along in the softmax: [user, trend weight x basis row] . [item, item factors].
            fused = torch.cat([fused, module.trend(batch["now"], batch["tbin"]).to(fused.dtype)], dim=-1)  # (B, T, D + r)
        rows, targets, weights = [fused[real]], [labels], [torch.ones_like(labels, dtype=fused.dtype)]
        n_branch = 0  # rows of the branch losses, at the end of ``rows``
        if "future" in batch:
            later = batch["future"]  # (B, T, K)
            for j in range(later.shape[-1]):
                ok = later[..., j] >= 0
                rows.append(fused[ok])
                targets.append(later[..., j][ok])
                weights.append(torch.full((int(ok.sum()),), self.config.future_weight, dtype=fused.dtype, device=fused.device))
        w = self.config.aux_loss
        if w > 0 and self.config.gate in ("learned", "fixed"):
            # The catalogue softmax is most of a step's cost: the branch losses use a random
            # share of the positions (an unbiased estimate of the same loss).
            short, long = (b[real] for b in module.branches)  # (N, D) each
            if module.trend_items is not None:  # each branch with the same trend term
                short, long = (torch.cat([b, fused[real][:, b.shape[-1] :]], dim=-1) for b in (short, long))
            pick = torch.rand(len(labels), device=labels.device) < self.config.aux_share
            n_pick = int(pick.sum())
            if n_pick:
                scale = w * len(labels) / n_pick  # each branch's mean CE weighs w x the fused one's
                # Where the long branch is empty the gate has no choice (the fused vector is the short
                # one, already in the loss) and the long vector is a constant: no branch losses there.
                pick = pick & ~module.long_empty[real]
                rows += [short[pick], long[pick]]
                targets += [labels[pick]] * 2
                weights += [torch.full((2 * int(pick.sum()),), scale, dtype=fused.dtype, device=fused.device)]
                n_branch = 2 * int(pick.sum())
        # One catalogue softmax for the fused vector and both branch samples: (N + 2M) rows.
        # Items with no training events are never a target: as negatives they would only learn
        # "never happens" through the shared text projection, which buries every cold item.
        unseen = ~module.warm[1:]  # (n_items,)
        bias = None
        if bool(unseen.any()):
            bias = torch.zeros(len(unseen), dtype=fused.dtype, device=fused.device).masked_fill(unseen, float("-inf"))
        table = self.item_vectors()  # (n_items, D)
        if module.trend_items is not None:
            table = torch.cat([table, module.trend_items[1:].to(table.dtype)], dim=-1)  # (n_items, D + r)
        eps = self.config.label_smoothing
        smoothing: float | torch.Tensor = eps
        if eps and not self.config.smooth_branches and n_branch:  # the branch rows come last
            smoothing = torch.full((sum(len(r) for r in rows),), eps, device=fused.device)
            smoothing[-n_branch:] = 0.0
        loss = softmax_cross_entropy(torch.cat(rows), table, torch.cat(targets), torch.cat(weights), bias,
                                     smoothing=smoothing)
        loss = loss / max(len(labels), 1)
        if module.text is not None:
            # Teach the text -> ID map on the warm items (the ID table itself is not moved by it).
            warm = module.warm
            guess = module.id_from_text(module.text[warm])
            loss = loss + F.mse_loss(guess, module.item_emb.weight[warm].detach()) * guess.shape[-1]
        return loss

    def item_vectors(self) -> torch.Tensor:
        return self.module.items()[1:]  # (n_items, D): ID and text parts mixed

    # ---------------------------------------------------------------- queries
    def _query_inputs(self, queries: Queries) -> dict[str, torch.Tensor]:
        """History tokens, per-event gap and rating buckets, and the request-time gap, padded."""
        T, C = self.config.max_len, self.config.long_len
        L = C + T
        B = len(queries)
        hist = queries.padded(L)
        gap = np.zeros((B, L), np.int64)
        rate = np.zeros((B, L), np.int64)
        now = np.zeros((B, T), np.int64)
        trained_time, trained_rating = (bool(x) for x in self.module.signals)
        stamps = queries.timestamps if trained_time else None
        ratings = queries.ratings if trained_rating else None
        floor = float(self.module.rating_floor)
        for b in range(B):
            lo, hi = int(queries.indptr[b]), int(queries.indptr[b + 1])
            n = min(hi - lo, L)
            if n == 0:
                continue
            if stamps is not None:
                ts = np.asarray(stamps[lo:hi], np.float64)
                g = np.concatenate([[1], gap_bucket(np.diff(ts))])
                gap[b, L - n :] = g[-n:]
                m = min(hi - lo, T)
                nxt = np.concatenate([g[1:], [0]])[-m:]
                if queries.time is not None and np.isfinite(queries.time[b]):
                    nxt[-1] = gap_bucket(np.array([queries.time[b] - ts[-1]]))[0]
                now[b, T - m :] = nxt
            if ratings is not None:
                r = np.asarray(ratings[lo:hi], np.float64)
                rate[b, L - n :] = rating_bucket(running_z(r, np.array([0, len(r)]), floor))[-n:]
        x = trim_padding({"hist": hist, "gap": gap, "rate": rate, "now": now}, T)
        if self.config.user_emb:
            n_users = getattr(self, "_n_users", 0)
            u = np.asarray(queries.user, np.int64)
            x["user"] = np.where((u >= 0) & (u < n_users), u + 1, 0)  # a user the model never saw: 0
        trend = getattr(self, "_trend", None)
        if trend is not None:
            tbin = np.zeros((B, T), np.int64)
            tbin[:, -1] = trend.bucket(queries.time, B)
            x["tbin"] = np.where(now > 0, tbin, 0)
        return {k: torch.from_numpy(v).to(self.device) for k, v in x.items()}

    def user_input(self, x: dict[str, torch.Tensor], queries: Queries) -> torch.Tensor | None:
        """What the module reads as ``user`` for ``queries`` (``x`` from :meth:`_query_inputs`): the
        training-user rows, or with ``fold_in`` their vectors ``(B, D)``, folded in for users the
        model never saw."""
        user = x.get("user")
        if user is None or not self.config.fold_in:
            return user
        new = (user == 0).cpu().numpy() & (queries.lengths() >= 2)
        if not new.any():
            return user
        assert self.module.user_emb is not None
        vectors = self.module.user_emb(user).detach().clone()  # (B, D); row 0 is the zero vector
        rows = np.flatnonzero(new)
        vectors[torch.from_numpy(rows).to(vectors.device)] = self.fold_in(queries.take(rows))
        return vectors

    def fold_in(self, queries: Queries) -> torch.Tensor:
        """A vector per query fitted to that query's history alone, ``(B, D)`` (zero where it has fewer than
        two events), for users the model never saw.

        Every weight stays frozen and only the vectors move: ``fold_in`` Adam steps at ``fold_in_lr`` on the
        next-event cross-entropy (with the model's label smoothing) of the history's last ``max_len``
        positions, each read from the events before it, as in training.  The loss is summed over queries,
        so each vector follows its own history's mean loss.
        """
        c, module = self.config, self.module
        rows = np.flatnonzero(queries.lengths() >= 2)
        if module.user_emb is None or not c.fold_in or not len(rows):
            return torch.zeros(len(queries), c.embedding_size, device=self.device)
        warm = module.warm[1:]  # (n_items,): items that can be a target
        chunk = max(1, int(2e7) // (c.max_len * self.n_items))  # queries per pass: (chunk, T, n_items) logits
        was_training = module.training
        module.eval()
        with torch.inference_mode(False), torch.enable_grad():  # the server scores in inference mode
            out = torch.zeros(len(queries), c.embedding_size, device=self.device)
            with torch.no_grad():
                table = self.item_vectors().float()  # (n_items, D)
            bias = torch.zeros(len(warm), device=self.device).masked_fill(~warm, float("-inf"))
            for start in range(0, len(rows), chunk):
                q = queries.take(rows[start : start + chunk])
                x = self._query_inputs(drop_last(q))
                with torch.no_grad():
                    short, long, now, empty = module.interests(
                        module.embed(x["hist"], x["gap"], x["rate"]), x["hist"], module.now_emb(x["now"])
                    )  # (b, T, D) each, (b, T)
                T = short.shape[1]
                labels = torch.from_numpy(q.padded(T)).to(self.device) - 1  # (b, T): the event after each position
                ok = (x["hist"][:, -T:] > 0) & (labels >= 0)
                ok &= warm[labels.clamp(min=0)]
                n_ok = ok.sum(dim=1).clamp(min=1)  # (b,)
                u = torch.zeros(len(q), c.embedding_size, device=self.device, requires_grad=True)
                opt = torch.optim.Adam([u], lr=c.fold_in_lr)
                eps = c.label_smoothing
                for _ in range(c.fold_in):
                    fused, _ = module.combine(short, long, now, empty, u)  # (b, T, D)
                    logp = (fused.float() @ table.T + bias).log_softmax(dim=-1)  # (b, T, n_items)
                    nll = -logp.gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)  # (b, T)
                    if eps:
                        nll = (1 - eps) * nll - eps * logp[..., warm].mean(dim=-1)
                    loss = (nll.masked_fill(~ok, 0.0).sum(dim=1) / n_ok).sum()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                out[torch.from_numpy(rows[start : start + chunk]).to(self.device)] = u.detach()
        module.train(was_training)
        return out

    @torch.no_grad()
    def user_vectors(self, queries: Queries) -> torch.Tensor:
        x = self._query_inputs(queries)
        user = self.user_input(x, queries)
        return self.module(x["hist"], x["gap"], x["rate"], x["now"], last_only=True, user=user)[0][:, -1]  # (B, D)

    @torch.no_grad()
    def _scores(self, queries: Queries) -> torch.Tensor:
        if getattr(self, "_trend", None) is None:
            return super()._scores(queries)
        was_training = self.module.training
        self.module.eval()
        x = self._query_inputs(queries)
        user = self.module(x["hist"], x["gap"], x["rate"], x["now"], last_only=True, user=self.user_input(x, queries))[0][:, -1]
        out = user @ self.item_vectors().T + self._trend_scores(x)  # (B, n_items)
        self.module.train(was_training)
        return out.float()

    def _trend_scores(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        """The trend term of the newest position, ``(B, n_items)``."""
        module = self.module
        assert module.trend_basis is not None
        if module.trend_items is None:  # calibrated: the table itself, one weight
            return module.trend_alpha * module.trend_basis[x["tbin"][:, -1]]
        return module.trend(x["now"][:, -1:], x["tbin"][:, -1:])[:, -1] @ module.trend_items[1:].T

    @property
    def calibrated_trend(self) -> bool:
        """Whether the score has a calibrated trend term (one weight on a fixed table), which a server can add
        to cached user-vector scores: :meth:`trend_term`."""
        return getattr(self, "_trend", None) is not None and self.module.trend_items is None

    @torch.no_grad()
    def trend_term(self, times: np.ndarray | None, lengths: np.ndarray) -> torch.Tensor:
        """The calibrated trend term of requests at ``times`` whose histories have ``lengths`` events, ``(B, n_items)``.

        Zero where the request time is unknown or the history is empty, as in :meth:`score`.
        """
        assert self.calibrated_trend, "no calibrated trend term"
        trend = self._trend
        assert trend is not None
        lengths = np.asarray(lengths)
        rows = np.where(lengths > 0, trend.bucket(times, len(lengths)), 0)  # bucket: row 0 where the time is unknown
        table = self.module.trend_basis
        assert table is not None
        return self.module.trend_alpha * table[torch.from_numpy(rows).to(table.device)]  # (B, n_items)

    @torch.no_grad()
    def gates(self, queries: Queries) -> np.ndarray:
        """Short-term share of the user vector at request time, ``(B,)`` in [0, 1]."""
        self.module.eval()
        x = self._query_inputs(queries)
        user = self.user_input(x, queries)
        return self.module(x["hist"], x["gap"], x["rate"], x["now"], last_only=True, user=user)[1][:, -1].float().cpu().numpy()

    # ---------------------------------------------------------------- explain
    def explain(self, queries: Queries, k: int = 10, n_history: int = 3, exclude_history: bool = True) -> list[dict[str, Any]]:
        """Top-``k`` items per query, each with why.

        Attribution is **gradient x input** on the per-event inputs: for a
        recommended item with score ``s``, event ``j``'s contribution is
        ``sum(ds/dx_j * x_j)`` over its three parts (content, rating,
        recency), plus the request-time gap for recency.  The top
        ``n_history`` events by contribution are the "because you ..."
        items; the dimension with the largest total absolute contribution
        dominates.  The gate (short-term share) is the user's at request
        time, shared by all of their items.

        Returns one dict per query: ``{"gate", "items": [{"item", "score",
        "history": [(item, contribution), ...], "dimension", "dimensions"}]}``
        with dense item indices.
        """
        self.module.eval()
        top, scores = self.recommend(queries, k, exclude_history=exclude_history)
        out = []
        for b in range(len(queries)):
            q = queries.take(np.array([b]))
            x = self._query_inputs(q)
            kb = top.shape[1]
            user_in = self.user_input(x, q)  # (1,) row or (1, D) folded-in vector
            rep = {name: t.expand(kb, *t.shape[1:]) for name, t in x.items()}  # one copy per item
            if user_in is not None:
                rep["user"] = user_in.expand(kb, *user_in.shape[1:])
            parts = {n: p.detach().requires_grad_(True) for n, p in self.module.embed(rep["hist"], rep["gap"], rep["rate"]).items()}
            now = self.module.now_emb(rep["now"]).detach().requires_grad_(True)
            user, g = self.module.fuse(parts, rep["hist"], now, last_only=True, user=rep.get("user"))
            items = self.item_vectors()[torch.from_numpy(top[b]).to(self.device)]  # (k, D)
            s = (user[:, -1] * items.detach()).sum()
            s.backward()
            grad = lambda t: t.grad if t.grad is not None else torch.zeros_like(t)
            contrib = {n: (grad(p) * p).sum(-1).detach() for n, p in parts.items()}  # (k, L) each
            now_c = (grad(now) * now).sum(-1)[:, -1].detach()  # (k,)
            per_event = torch.stack(list(contrib.values())).sum(0)  # (k, L)
            if "tbin" in x:  # the trend term is the item side of recency
                now_c = now_c + self._trend_scores(x).detach()[0, torch.from_numpy(top[b]).to(self.device)].abs()
            hist = rep["hist"][0].cpu().numpy()
            real = np.flatnonzero(hist > 0)
            entries = []
            for i in range(kb):
                ev = per_event[i].float().cpu().numpy()[real]
                order = np.argsort(-ev)[:n_history]
                history = [(int(hist[real[j]] - 1), float(ev[j])) for j in order]
                dims = {n: float(contrib[n][i].abs().sum()) for n in DIMENSIONS}
                dims["recency"] += float(now_c[i].abs())
                entries.append(
                    {
                        "item": int(top[b, i]),
                        "score": float(scores[b, i]),
                        "history": history,
                        "dimension": max(dims, key=lambda n: dims[n]),
                        "dimensions": dims,
                    }
                )
            out.append({"gate": float(g[0, -1].detach()), "items": entries})
        return out

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
        # No events yet: popularity unknown, so the trend_fill of the items with events (as trend_counts gives
        # never-seen items).
        if module.trend_basis is not None:
            seen, known = module.warm[1:].cpu().numpy(), module.text[1:].cpu().numpy()  # the items so far
            fill = self.config.trend_fill
            if module.trend_items is not None:  # factored: a new item's row is its text neighbours' mean row, or
                rows = module.trend_items[1:].cpu().numpy()  # 0 (the centred table's row mean) otherwise
                new = (neighbour_mean(rows.T, nearest_seen(known, seen, text)).T
                       if fill == "text" and seen.any() else np.zeros((n, rows.shape[1]), np.float32))
                module.trend_items = torch.cat([module.trend_items, torch.from_numpy(new).to(dev)])
            else:
                table = module.trend_basis.cpu().numpy()  # (n_buckets + 1, n_items)
                new = (unseen_trend(table, seen, n, fill, known, text) if seen.any()
                       else np.zeros((len(table), n), np.float32))
                module.trend_basis = torch.cat([module.trend_basis, torch.from_numpy(new).to(dev)], dim=1)
        module.text = torch.cat([module.text, torch.from_numpy(text).to(dev)])
        module.warm = torch.cat([module.warm, torch.zeros(n, dtype=torch.bool, device=dev)])
        old = module.item_emb.weight.data
        module.item_emb = nn.Embedding(len(old) + n, old.shape[1], padding_idx=0).to(dev)
        module.item_emb.weight.data[: len(old)] = old
        module.item_emb.weight.data[len(old) :] = 0.0
        first = self.n_items
        self.n_items += n
        return np.arange(first, first + n)

    # ---------------------------------------------------------------- state
    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self._text = state.get("text")
        self._n_users = len(state["user_emb.weight"]) - 1 if "user_emb.weight" in state else 0
        self._warm = state.get("warm")
        self._trend = None
        if "trend_basis" in state:
            t0, width = (float(v) for v in state["trend_clock"])
            items = state["trend_items"][1:] if "trend_items" in state else None
            self._trend = Trend(state["trend_basis"], items, t0, width)
        super().load_state(state)

