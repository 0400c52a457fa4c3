"""The trend term: the item side of timeliness, what is popular *now*.

Each item's log count of training events in the ``trend_days`` before the
request's time bucket (never the request's own bucket, so no event counts
toward a request made the same day) is added to its score with one weight,
picked on valid NDCG@10 after training among :data:`TREND_ALPHAS`.  A
weight of 0 turns it off, so valid decides whether the term is used at all.
The term needs timestamps: on a log without them it is never built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TREND_CELLS = 20_000_000  # largest (buckets x items) trend table; wider buckets beyond it
TREND_BUCKETS = 30  # buckets per trend window
TREND_ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)  # weights of the trend term, picked on valid


@dataclass(frozen=True)
class Trend:
    """A trend table: ``table[k]`` is added (times the picked weight) to the scores of requests in row ``k``.

    Row ``k >= 1`` belongs to the requests in bucket ``k - 1``
    (``[t0 + (k - 1) * width, t0 + k * width)``, the last row also to every
    later request) and counts the events of the window before that bucket;
    row 0 (request time unknown) is zero.
    """

    table: np.ndarray  # (n_buckets + 1, n_items)
    t0: float
    width: float

    def bucket(self, times: np.ndarray | None, n: int) -> np.ndarray:
        """Table row of each of ``n`` request times (0 where unknown).

        >>> Trend(np.zeros((3, 1)), 0.0, 10.0).bucket(np.array([5.0, 15.0, 99.0, np.nan]), 4).tolist()
        [1, 2, 2, 0]
        """
        return trend_rows(times, n, self.t0, self.width, len(self.table))

    @classmethod
    def of(cls, item: np.ndarray, time: np.ndarray, n_items: int, window: float) -> Trend:
        """The trend table of a training log's events (``item``, ``time`` in seconds) over ``window`` seconds.

        Buckets are ``window / 30`` wide (wider when the table would pass
        :data:`TREND_CELLS`); row ``k >= 1`` holds ``log1p`` of each item's
        events in buckets ``[k - 1 - 30, k - 1)``, strictly before request
        bucket ``k - 1``.  An item with no event at all has an unknown
        popularity, not a zero one: it gets :func:`unseen_trend`.

        >>> t = Trend.of(np.array([0, 0, 1]), np.array([0.0, 1.0, 45.0]), 2, 30.0)
        >>> t.width, len(t.table), np.expm1(t.table[[1, 2, 3, 31, 32, 46, 47]]).round().tolist()
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
            out[:, unseen] = unseen_trend(out, ~unseen, int(unseen.sum()))
        return cls(out, t0, width)


def trend_rows(times: np.ndarray | None, n: int, t0: float, width: float, n_rows: int) -> np.ndarray:
    """Row of a trend table with clock ``(t0, width)`` and ``n_rows`` rows for each of ``n`` request times
    (0 where a time is unknown, the last row for every time past the log)."""
    if times is None:
        return np.zeros(n, np.int64)
    t = np.asarray(times, np.float64)
    k = np.floor((np.nan_to_num(t, nan=t0) - t0) / width) + 1
    k = np.clip(k, 1, n_rows - 1).astype(np.int64)
    return np.where(np.isfinite(t), k, 0)


def unseen_trend(table: np.ndarray, seen: np.ndarray, m: int) -> np.ndarray:
    """``(rows, m)``: trend columns for ``m`` items without events, from ``table``'s (``log1p`` counts)
    columns where ``seen`` is true.

    Each row's mean over *events*, ``sum(n * log1p(n)) / sum(n)`` over the seen items' counts ``n``: the
    trend of the item a random event in the window went to.  An item that is asked for at all is such an
    item, so this is where a never-seen target belongs; the mean over items would put it at the level of
    the many rarely-seen ones, under everything its users compete for.

    >>> t = np.log1p(np.array([[0.0, 0.0], [3.0, 1.0]]))
    >>> unseen_trend(t, np.array([True, True]), 1).round(4).tolist()  # (3 log 4 + 1 log 2) / 4
    [[0.0], [1.213]]
    """
    cols = table[:, seen]
    n = np.expm1(cols.astype(np.float64))
    total = n.sum(axis=1, keepdims=True)
    row = np.where(total > 0, (n * cols).sum(axis=1, keepdims=True) / np.maximum(total, 1e-12), 0.0)
    return np.repeat(row.astype(table.dtype), m, axis=1)
