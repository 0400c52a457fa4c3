"""Splits: leave-one-out by time and a global temporal cut.

Both produce a :class:`Split`: the training events (an ``Interactions`` that
shares the id maps of the full log) and two :class:`EvalSet` objects.  An
evaluation query carries the user's history *as it was just before the
target*: everything a model may look at when it ranks.  Nothing at or after
the target time (for that user) is ever in the history or in training.

Protocol defaults, stated once (RecBole's sequential quick-start config):

* every interaction is an implicit positive (ratings ride along as features);
* each user's events are sorted by time, stable (ties keep file order);
* leave-one-out: last event = test, second-to-last = valid, rest = train;
  users with fewer than ``min_events`` (3) events are kept in training but out
  of evaluation;
* at valid time the history is the training events; at test time it is the
  training events plus the valid event (it happened before the test event);
* full ranking over all items with the history items masked out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recfuse.data.dataset import Interactions

MIN_EVENTS = 3


@dataclass(frozen=True, eq=False)
class Queries:
    """A batch of ranking requests: one user and their history each.

    The history is ragged: query ``b`` owns ``items[indptr[b]:indptr[b+1]]`` in
    time order.  ``user`` is ``-1`` for an anonymous session.  ``time`` is when
    the request happens (the target's timestamp offline, "now" online);
    ``timestamps``/``ratings``/``time`` are ``None`` when the data has none.
    """

    user: np.ndarray
    indptr: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray | None = None
    ratings: np.ndarray | None = None
    time: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.user)

    def history(self, b: int) -> np.ndarray:
        """History items of query ``b``."""
        return self.items[self.indptr[b] : self.indptr[b + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def take(self, rows: np.ndarray | slice) -> Queries:
        """A sub-batch (rows in the given order)."""
        rows = np.arange(len(self))[rows] if isinstance(rows, slice) else np.asarray(rows, dtype=np.int64)
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        idx = _ragged_index(starts, ends)
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(ends - starts, out=indptr[1:])
        pick = lambda a: None if a is None else a[idx]
        return Queries(
            user=self.user[rows],
            indptr=indptr,
            items=self.items[idx],
            timestamps=pick(self.timestamps),
            ratings=pick(self.ratings),
            time=None if self.time is None else self.time[rows],
        )

    def padded(self, max_len: int, pad: int = 0, offset: int = 1) -> np.ndarray:
        """The last ``max_len`` history items per query, left-padded: ``(B, max_len)``.

        Items are shifted by ``offset`` so that ``pad`` (0) never collides with item 0.
        """
        out = np.full((len(self), max_len), pad, dtype=np.int64)
        for b in range(len(self)):
            h = self.history(b)[-max_len:]
            if len(h):
                out[b, max_len - len(h) :] = h + offset
        return out

    @classmethod
    def from_histories(cls, histories: list[np.ndarray], user: np.ndarray | None = None) -> Queries:
        """Queries from plain item-index lists (no timestamps or ratings)."""
        indptr = np.zeros(len(histories) + 1, dtype=np.int64)
        np.cumsum([len(h) for h in histories], out=indptr[1:])
        items = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]) if histories else np.zeros(0, np.int64)
        u = np.full(len(histories), -1, dtype=np.int64) if user is None else np.asarray(user, dtype=np.int64)
        return cls(user=u, indptr=indptr, items=items)


@dataclass(frozen=True, eq=False)
class EvalSet:
    """Queries plus their target items (ragged; one item under leave-one-out)."""

    queries: Queries
    target_indptr: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.queries)

    def target(self, b: int) -> np.ndarray:
        return self.targets[self.target_indptr[b] : self.target_indptr[b + 1]]

    def take(self, rows: np.ndarray) -> EvalSet:
        rows = np.asarray(rows, dtype=np.int64)
        starts, ends = self.target_indptr[rows], self.target_indptr[rows + 1]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(ends - starts, out=indptr[1:])
        return EvalSet(self.queries.take(rows), indptr, self.targets[_ragged_index(starts, ends)])


@dataclass(frozen=True, eq=False)
class Split:
    """Training events and the two evaluation sets.

    ``full`` is the whole log the split came from (needed to build queries for
    the service-like path); models must be fitted on ``train`` only.
    """

    full: Interactions
    train: Interactions
    valid: EvalSet
    test: EvalSet
    kind: str
    info: dict[str, float | int | str]


def _ragged_index(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, e)`` for each pair, vectorised."""
    lens = ends - starts
    if lens.sum() == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    return np.arange(lens.sum(), dtype=np.int64) + offsets


def _queries_from_prefix(data: Interactions, users: np.ndarray, ends: np.ndarray, time: np.ndarray | None) -> Queries:
    """Queries whose history is ``data``'s events ``indptr[u]:end`` for each user."""
    starts = data.indptr[users]
    idx = _ragged_index(starts, ends)
    indptr = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(ends - starts, out=indptr[1:])
    return Queries(
        user=users.astype(np.int64),
        indptr=indptr,
        items=data.item[idx],
        timestamps=None if data.timestamp is None else data.timestamp[idx],
        ratings=None if data.rating is None else data.rating[idx],
        time=time,
    )


def leave_one_out(data: Interactions, min_events: int = MIN_EVENTS) -> Split:
    """Last event = test, second-to-last = valid, the rest = train.

    Users with fewer than ``min_events`` events keep all their events in
    training and are not evaluated (``info["users_not_evaluated"]`` counts them).

    Examples
    --------
    >>> d = Interactions.from_sequences([("u", ["a", "b", "c", "d"]), ("v", ["a", "b"])])
    >>> s = leave_one_out(d)
    >>> d.items.to_external(s.test.targets).tolist(), s.test.queries.lengths().tolist()
    (['d'], [3])
    >>> s.train.n_events  # u's a, b plus both of v's events
    4
    """
    lengths = data.lengths()
    evaluated = np.flatnonzero(lengths >= min_events)
    last = data.indptr[evaluated + 1] - 1
    role = np.zeros(data.n_events, dtype=np.int8)  # 0 train, 1 valid, 2 test
    role[last] = 2
    role[last - 1] = 1
    train = data.select(role == 0)
    ts = data.timestamp
    one = np.arange(len(evaluated) + 1, dtype=np.int64)
    valid = EvalSet(
        _queries_from_prefix(data, evaluated, last - 1, None if ts is None else ts[last - 1]),
        one,
        data.item[last - 1],
    )
    test = EvalSet(
        _queries_from_prefix(data, evaluated, last, None if ts is None else ts[last]),
        one,
        data.item[last],
    )
    info: dict[str, float | int | str] = {
        "users_evaluated": len(evaluated),
        "users_not_evaluated": int(data.n_users - len(evaluated)),
        "min_events": min_events,
    }
    return Split(full=data, train=train, valid=valid, test=test, kind="leave_one_out", info=info)


def temporal(data: Interactions, test_frac: float = 0.1, valid_frac: float = 0.1) -> Split:
    """A global cut by time: the last ``test_frac`` of events (by timestamp) are
    test, the ``valid_frac`` before them valid, everything earlier train.

    A query is made for every user with at least one event before the phase
    and at least one new item (not in their history) inside it; its targets
    are those new items.  At test time the history is train + valid events.
    Users first seen inside a phase are counted in ``info`` (cold users).
    """
    if data.timestamp is None:
        raise ValueError(f"{data.name}: a temporal split needs timestamps; this dataset has none")
    if not (0 < test_frac < 1 and 0 <= valid_frac < 1 and test_frac + valid_frac < 1):
        raise ValueError("temporal split: need 0 < test_frac, 0 <= valid_frac, test_frac + valid_frac < 1")
    ts = data.timestamp
    t_test = float(np.quantile(ts, 1 - test_frac))
    t_valid = float(np.quantile(ts, 1 - test_frac - valid_frac))
    role = np.where(ts >= t_test, 2, np.where(ts >= t_valid, 1, 0)).astype(np.int8)
    train = data.select(role == 0)
    info: dict[str, float | int | str] = {"t_valid": t_valid, "t_test": t_test}

    def phase(code: int, cut: float, name: str) -> EvalSet:
        users, ends, tgt_lists = [], [], []
        cold = 0
        for u in range(data.n_users):
            lo, hi = data.indptr[u], data.indptr[u + 1]
            r = role[lo:hi]
            before = int(np.sum(r < code))  # events sorted by time, so phases are contiguous
            inside = data.item[lo:hi][r == code]
            if len(inside) == 0:
                continue
            if before == 0:
                cold += 1
                continue
            seen = set(data.item[lo : lo + before].tolist())
            new = [i for i in dict.fromkeys(inside.tolist()) if i not in seen]
            if new:
                users.append(u)
                ends.append(lo + before)
                tgt_lists.append(new)
        info[f"{name}_cold_users"] = cold
        info[f"{name}_users"] = len(users)
        u_arr = np.asarray(users, dtype=np.int64)
        q = _queries_from_prefix(data, u_arr, np.asarray(ends, dtype=np.int64), np.full(len(users), cut))
        tindptr = np.zeros(len(users) + 1, dtype=np.int64)
        np.cumsum([len(t) for t in tgt_lists], out=tindptr[1:])
        targets = np.concatenate([np.asarray(t, np.int64) for t in tgt_lists]) if tgt_lists else np.zeros(0, np.int64)
        return EvalSet(q, tindptr, targets)

    valid = phase(1, t_valid, "valid")
    test = phase(2, t_test, "test")
    return Split(full=data, train=train, valid=valid, test=test, kind="temporal", info=info)


SPLITS: dict[str, Callable[..., Split]] = {"loo": leave_one_out, "temporal": temporal}
