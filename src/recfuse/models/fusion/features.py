"""What the fusion model reads of a log: per-event time and rating buckets, request-time gaps, batches.

Every history event enters the model as three parts (content, rating, recency).  The rating part is the
event's rating against the user's own running mean, in five buckets; the recency part is the log2 bucket
of the time since the user's previous event.  The request-time gap (time since the user's last event when
the recommendation is asked for) drives the gate.  Nothing here needs torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recfuse.data.dataset import Interactions
from recfuse.data.split import Queries

N_GAP = 34  # 0 unknown/padding, 1 no previous event, 2 + floor(log2(seconds)) capped at 33
N_RATE = 6  # 0 no rating, 1..5 buckets of the per-user normalised rating
RATE_EDGES = np.array([-1.0, -0.25, 0.25, 1.0])
UNKNOWN_NOW = 0.05  # share of training positions whose request time is hidden (an offline explanation has none)
HIDDEN_USER = 0.95  # training rows drawn at or above this are asked as the unknown user


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


@dataclass(frozen=True)
class EventFeatures:
    """Per training event: gap bucket to the previous event and to the next one, and the rating bucket.

    ``floor`` is the std floor of the rating normalisation; ``signals`` says whether the log had usable
    timestamps and ratings (a model trained without one ignores it at request time too).
    """

    gap: np.ndarray  # (n_events,)
    next: np.ndarray  # (n_events,): the gap to the user's next event, 0 after their last
    rate: np.ndarray  # (n_events,)
    floor: float
    signals: tuple[bool, bool]  # (time, rating)

    @classmethod
    def of(cls, train: Interactions, use_time: bool = True, use_rating: bool = True) -> EventFeatures:
        """The features of ``train``'s events (zeros where the log lacks a signal or it is switched off).

        >>> d = Interactions.from_sequences([("u", ["a", "b", "c"])])
        >>> EventFeatures.of(d).signals
        (False, False)
        """
        n = train.n_events
        gap = np.zeros(n, np.int64)
        nxt = np.zeros(n, np.int64)
        first = np.zeros(n, bool)
        first[train.indptr[:-1][train.lengths() > 0]] = True
        if use_time and train.timestamp is not None and n:
            delta = np.diff(train.timestamp, prepend=train.timestamp[0])
            gap = np.where(first, 1, gap_bucket(delta))
            last = np.roll(first, -1)
            last[-1] = True
            nxt = np.where(last, 0, np.roll(gap, -1))
        rate = np.zeros(n, np.int64)
        floor = 1.0
        if use_rating and train.rating is not None:
            r = np.asarray(train.rating, np.float64)
            if np.isfinite(r).any():
                floor = max(0.5 * float(np.nanstd(r)), 1e-6)
                rate = rating_bucket(running_z(r, train.indptr, floor))
        return cls(gap, nxt, rate, floor, (bool(gap.any()), bool(rate.any())))


def window_batch(
    train: Interactions,
    events: EventFeatures,
    rows: np.ndarray,
    max_len: int,
    long_len: int,
    rng: np.random.Generator,
    user_swap: float | None,
    n_users: int,
) -> dict[str, np.ndarray]:
    """Training inputs for windows ``rows`` (``(B, 2)`` event offsets ``[s, e)``): the window's events and
    up to ``long_len`` older ones, their gap and rating buckets, each position's request-time gap and
    next-item label, and (``user_swap`` not None: the model has per-user vectors) the user rows.

    A user row is swapped for a random user with probability ``user_swap`` (SSE-PT's stochastic shared
    embeddings) and hidden (row 0, the unknown user) with probability 1 - :data:`HIDDEN_USER`.
    """
    T, C = max_len, long_len
    L = C + T
    owner = np.searchsorted(train.indptr, rows[:, 0], side="right") - 1
    hist = np.zeros((len(rows), L), np.int64)
    gap = np.zeros((len(rows), L), np.int64)
    rate = np.zeros((len(rows), L), np.int64)
    now = np.zeros((len(rows), T), np.int64)
    labels = np.full((len(rows), T), -100, np.int64)
    for b, (s, e) in enumerate(rows):
        lo = max(int(train.indptr[owner[b]]), int(s) - C)
        ev = np.arange(lo, e - 1)  # input events: older context + the window but its last event
        n_in = e - 1 - s
        hist[b, L - len(ev) :] = train.item[ev] + 1
        gap[b, L - len(ev) :] = events.gap[ev]
        rate[b, L - len(ev) :] = events.rate[ev]
        now[b, T - n_in :] = events.next[s : e - 1]
        labels[b, T - n_in :] = train.item[s + 1 : e]
    now[rng.random(now.shape) < UNKNOWN_NOW] = 0  # practise requests whose time is unknown
    x = trim_padding({"hist": hist, "gap": gap, "rate": rate, "now": now, "labels": labels}, T)
    if user_swap is not None:
        u = owner + 1
        draw = rng.random(len(u))
        swap = draw < user_swap
        u[swap] = rng.integers(1, n_users + 1, int(swap.sum()))
        u[draw >= HIDDEN_USER] = 0
        x["user"] = u
    return x


def query_inputs(
    queries: Queries,
    max_len: int,
    long_len: int,
    signals: tuple[bool, bool],
    floor: float,
    n_users: int | None,
) -> dict[str, np.ndarray]:
    """Request-time inputs of ``queries``: history tokens, per-event gap and rating buckets and the
    request-time gap of each window position (the last one from ``queries.time``), left-padded to
    ``long_len + max_len`` and trimmed; with ``n_users`` (per-user vectors) each query's user row
    (0 for a user the model never saw).

    >>> q = Queries.from_histories([[0, 1]])
    >>> sorted(query_inputs(q, 4, 2, (False, False), 1.0, None))
    ['gap', 'hist', 'now', 'rate']
    """
    T, C = max_len, long_len
    L = C + T
    B = len(queries)
    hist = queries.padded(L)
    gap = np.zeros((B, L), np.int64)
    rate = np.zeros((B, L), np.int64)
    now = np.zeros((B, T), np.int64)
    stamps = queries.timestamps if signals[0] else None
    ratings = queries.ratings if signals[1] else None
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
    if n_users is not None:
        u = np.asarray(queries.user, np.int64)
        x["user"] = np.where((u >= 0) & (u < n_users), u + 1, 0)
    return x
