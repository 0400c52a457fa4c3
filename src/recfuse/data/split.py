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

The cold-start item protocol (:func:`hold_out_items`) is a transformation of
a finished split: a random share of items disappears from everything a model
can see (training events and every query history) while staying in the
catalogue and among the test targets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from recfuse.data.dataset import Interactions

MIN_EVENTS = 3

#: The protocol seed that picks the held-out items of the cold-start protocol: fixed, so every model
#: and every run sees the same items held out (recorded in ``results.json`` ``protocol.cold_items``).
COLD_ITEMS_SEED = 20240601


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
    info: dict[str, Any]  # scalars; plus the ``cold_items`` index array after :func:`hold_out_items`


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


def leave_one_out(data: Interactions, min_events: int = MIN_EVENTS, valid_events: int = 1) -> Split:
    """Last event = test, second-to-last = valid, the rest = train.

    Users with fewer than ``min_events`` events keep all their events in
    training and are not evaluated (``info["users_not_evaluated"]`` counts them).

    ``valid_events > 1`` makes the ``valid_events`` events before the test
    event valid (fewer for a user who would otherwise keep no training
    event), each one its own query whose history is everything before it,
    earlier valid events included.  The test queries are exactly those of
    ``valid_events=1``; the model trains on less.  It is a split for
    *selection* (about ``valid_events`` times as many valid targets, so a
    decision on valid has the power one event per user lacks), not for the
    leave-one-out figures themselves (split ``loo-valid5``).

    Examples
    --------
    >>> d = Interactions.from_sequences([("u", ["a", "b", "c", "d"]), ("v", ["a", "b"])])
    >>> s = leave_one_out(d)
    >>> d.items.to_external(s.test.targets).tolist(), s.test.queries.lengths().tolist()
    (['d'], [3])
    >>> s.train.n_events  # u's a, b plus both of v's events
    4
    >>> s = leave_one_out(d, valid_events=5)  # u keeps a for training; b and c are valid
    >>> d.items.to_external(s.valid.targets).tolist(), s.valid.queries.lengths().tolist(), s.train.n_events
    (['b', 'c'], [1, 2], 3)
    """
    if valid_events < 1:
        raise ValueError(f"leave-one-out: valid_events must be >= 1, got {valid_events}")
    if min_events < 3:
        raise ValueError(f"leave-one-out: min_events must be >= 3 (a training, a valid and a test event), got {min_events}")
    lengths = data.lengths()
    evaluated = np.flatnonzero(lengths >= min_events)
    last = data.indptr[evaluated + 1] - 1
    n_valid = np.minimum(valid_events, lengths[evaluated] - 2)  # every evaluated user keeps a training event
    valid_pos = _ragged_index(last - n_valid, last)  # per user in time order
    role = np.zeros(data.n_events, dtype=np.int8)  # 0 train, 1 valid, 2 test
    role[last] = 2
    role[valid_pos] = 1
    train = data.select(role == 0)
    ts = data.timestamp
    valid = EvalSet(
        _queries_from_prefix(data, np.repeat(evaluated, n_valid), valid_pos, None if ts is None else ts[valid_pos]),
        np.arange(len(valid_pos) + 1, dtype=np.int64),
        data.item[valid_pos],
    )
    test = EvalSet(
        _queries_from_prefix(data, evaluated, last, None if ts is None else ts[last]),
        np.arange(len(evaluated) + 1, dtype=np.int64),
        data.item[last],
    )
    info: dict[str, float | int | str] = {
        "users_evaluated": len(evaluated),
        "users_not_evaluated": int(data.n_users - len(evaluated)),
        "min_events": min_events,
    }
    if valid_events > 1:
        info.update(valid_events=valid_events, valid_queries=len(valid_pos))
    return Split(full=data, train=train, valid=valid, test=test, kind="leave_one_out", info=info)


def _time_cuts(data: Interactions, test_frac: float, valid_frac: float) -> tuple[np.ndarray, Interactions, dict[str, Any]]:
    """Per event 0 (train), 1 (valid) or 2 (test) by a global cut in time; the training events; ``info`` with the cut times."""
    if data.timestamp is None:
        raise ValueError(f"{data.name}: a temporal split needs timestamps; this dataset has none")
    if not (0 < test_frac < 1 and 0 <= valid_frac < 1 and test_frac + valid_frac < 1):
        raise ValueError("temporal split: need 0 < test_frac, 0 <= valid_frac, test_frac + valid_frac < 1")
    ts = data.timestamp
    t_test = float(np.quantile(ts, 1 - test_frac))
    t_valid = float(np.quantile(ts, 1 - test_frac - valid_frac))
    role = np.where(ts >= t_test, 2, np.where(ts >= t_valid, 1, 0)).astype(np.int8)
    return role, data.select(role == 0), {"t_valid": t_valid, "t_test": t_test}


def temporal(data: Interactions, test_frac: float = 0.1, valid_frac: float = 0.1) -> Split:
    """A global cut by time: the last ``test_frac`` of events (by timestamp) are
    test, the ``valid_frac`` before them valid, everything earlier train.

    A query is made for every user with at least one event before the phase
    and at least one new item (not in their history) inside it; its targets
    are those new items.  At test time the history is train + valid events.
    Users first seen inside a phase are counted in ``info`` (cold users).
    """
    role, train, info = _time_cuts(data, test_frac, valid_frac)

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

    valid = phase(1, info["t_valid"], "valid")
    test = phase(2, info["t_test"], "test")
    return Split(full=data, train=train, valid=valid, test=test, kind="temporal", info=info)


def temporal_events(data: Interactions, test_frac: float = 0.1, valid_frac: float = 0.1) -> Split:
    """The global cut of :func:`temporal`, evaluated event by event (next-item, no retraining).

    Training data is the same (events before the valid cut).  Every event
    inside a phase whose item is new to its user becomes one query: the
    history is all of that user's events before it (earlier events of the
    phase included, as a deployed model would have received them without
    being retrained), the target is its item, and the request time is its
    timestamp.  Users need an event before the phase.  On ml-100k the test
    phase then gives thousands of queries instead of one per user (90), so
    early stopping and the comparison rest on far more targets; they come
    from few users, so ``info`` reports both counts.
    """
    role, train, info = _time_cuts(data, test_frac, valid_frac)

    def phase(code: int, name: str) -> EvalSet:
        users: list[int] = []
        ends: list[int] = []
        targets: list[int] = []
        n_users = 0
        for u in range(data.n_users):
            lo, hi = data.indptr[u], data.indptr[u + 1]
            r = role[lo:hi]
            before = int(np.sum(r < code))  # events sorted by time, so phases are contiguous
            if before == 0 or not np.any(r == code):
                continue
            seen = set(data.item[lo : lo + before].tolist())
            n_before = len(users)
            for j in range(lo + before, hi):
                if role[j] != code:
                    break
                item = int(data.item[j])
                if item not in seen:
                    users.append(u)
                    ends.append(j)
                    targets.append(item)
                seen.add(item)
            n_users += len(users) > n_before
        info[f"{name}_users"] = n_users
        info[f"{name}_queries"] = len(users)
        ends_arr = np.asarray(ends, dtype=np.int64)
        time = np.asarray(data.timestamp)[ends_arr].astype(np.float64)  # the target event's own time
        q = _queries_from_prefix(data, np.asarray(users, dtype=np.int64), ends_arr, time)
        return EvalSet(q, np.arange(len(targets) + 1, dtype=np.int64), np.asarray(targets, dtype=np.int64))

    valid = phase(1, "valid")
    test = phase(2, "test")
    return Split(full=data, train=train, valid=valid, test=test, kind="temporal_events", info=info)


# ------------------------------------------------------------------ cold-start items
def drop_history_items(queries: Queries, drop: np.ndarray) -> tuple[Queries, int]:
    """``queries`` with every history event of an item where ``drop[item]`` removed.

    Timestamps and ratings of the removed events go with them; request times
    stay.  Returns the new queries and the number of events removed.

    Examples
    --------
    >>> q = Queries.from_histories([[0, 1, 2], [1]])
    >>> out, n = drop_history_items(q, np.array([False, True, False]))
    >>> [out.history(b).tolist() for b in range(len(out))], n
    ([[0, 2], []], 2)
    """
    keep = ~np.asarray(drop, dtype=bool)[queries.items]
    return keep_events(queries, keep), int((~keep).sum())


def keep_events(queries: Queries, keep: np.ndarray) -> Queries:
    """``queries`` with only the history events where ``keep`` (one boolean per event) is true.

    Timestamps and ratings go with their events; users and request times stay.
    """
    owner = np.repeat(np.arange(len(queries)), queries.lengths())
    indptr = np.zeros(len(queries) + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner[keep], minlength=len(queries)), out=indptr[1:])
    pick = lambda a: None if a is None else a[keep]
    return Queries(
        user=queries.user, indptr=indptr, items=queries.items[keep], timestamps=pick(queries.timestamps),
        ratings=pick(queries.ratings), time=queries.time,
    )


def select_targets(evalset: EvalSet, keep: np.ndarray) -> tuple[EvalSet, np.ndarray]:
    """The queries with at least one kept target, each restricted to its kept targets.

    ``keep`` is one boolean per target (aligned with ``evalset.targets``).
    Returns the new eval set and, for each of its queries, its row in
    ``evalset`` (so per-query results can be matched back).

    Examples
    --------
    >>> e = EvalSet(Queries.from_histories([[0], [1], [2]]), np.array([0, 1, 3, 4]), np.array([5, 6, 7, 8]))
    >>> sub, rows = select_targets(e, np.array([False, True, False, True]))
    >>> rows.tolist(), sub.targets.tolist(), sub.target_indptr.tolist()
    ([1, 2], [6, 8], [0, 1, 2])
    """
    keep = np.asarray(keep, dtype=bool)
    owner = np.repeat(np.arange(len(evalset)), np.diff(evalset.target_indptr))
    per_query = np.bincount(owner[keep], minlength=len(evalset))
    rows = np.flatnonzero(per_query > 0)
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(per_query[rows], out=indptr[1:])
    # Targets of the kept rows stay in row order, so a plain mask keeps them aligned with ``indptr``.
    return EvalSet(evalset.queries.take(rows), indptr, evalset.targets[keep]), rows


def hold_out_items(split: Split, frac: float, seed: int = COLD_ITEMS_SEED) -> Split:
    """The cold-start item protocol: hold a random ``frac`` of items out of everything a model sees.

    * Held-out items are drawn uniformly (``numpy.random.default_rng(seed)``,
      without replacement, ``round(frac * n)``) among the ``n`` items that
      have at least one event in ``split.full``.
    * **Train**: every event of a held-out item is removed.
    * **Histories**: every held-out item event is removed from the ranking
      input of every valid and test query (so no model ever sees them, not
      even at request time).
    * **Valid** (early stopping, tuning): only warm targets are kept; a query
      left without a target is dropped.  Under leave-one-out that means: the
      valid queries whose target is warm.
    * **Test**: unchanged queries and targets, cold ones included; the
      catalogue is unchanged (held-out items are still ranked).  A test
      *target* is cold when its item is held out; a query can have both
      kinds under the temporal split.

    ``info["cold_items"]`` is the sorted array of held-out item indices;
    the other ``cold_*`` keys of ``info`` count what was removed.
    ``full`` stays the whole log (it is the record, not a model input).

    Examples
    --------
    >>> d = Interactions.from_sequences([(f"u{u}", [f"i{(u + j) % 10}" for j in range(6)]) for u in range(20)])
    >>> s = hold_out_items(leave_one_out(d), 0.2, seed=0)
    >>> cold = s.info["cold_items"]
    >>> len(cold), bool(np.isin(s.train.item, cold).any()), bool(np.isin(s.test.queries.items, cold).any())
    (2, False, False)
    >>> len(s.test) == len(leave_one_out(d).test), bool(np.isin(s.test.targets, cold).any())
    (True, True)
    """
    if not 0 < frac < 1:
        raise ValueError(f"cold-items fraction must be in (0, 1), got {frac}")
    data = split.full
    candidates = np.flatnonzero(data.item_counts() > 0)
    n_cold = round(frac * len(candidates))
    if n_cold == 0 or n_cold == len(candidates):
        raise ValueError(f"cold-items fraction {frac} holds out {n_cold} of {len(candidates)} items; need at least one "
                         "item held out and one kept")
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(candidates, size=n_cold, replace=False)).astype(np.int64)
    is_cold = np.zeros(data.n_items, dtype=bool)
    is_cold[cold] = True

    train = split.train.select(~is_cold[split.train.item])
    valid_q, valid_removed = drop_history_items(split.valid.queries, is_cold)
    test_q, test_removed = drop_history_items(split.test.queries, is_cold)
    valid, _ = select_targets(
        EvalSet(valid_q, split.valid.target_indptr, split.valid.targets), ~is_cold[split.valid.targets]
    )
    test = EvalSet(test_q, split.test.target_indptr, split.test.targets)
    target_cold = is_cold[test.targets]
    owner = np.repeat(np.arange(len(test)), np.diff(test.target_indptr))
    n_cold_targets = np.bincount(owner[target_cold], minlength=len(test))
    n_targets = np.diff(test.target_indptr)
    info: dict[str, Any] = {
        **split.info,
        "cold_items_frac": float(frac),
        "cold_items_seed": int(seed),
        "cold_items_n": n_cold,
        "cold_items_candidates": len(candidates),
        "cold_train_events_removed": int(split.train.n_events - train.n_events),
        "cold_history_events_removed": valid_removed + test_removed,
        "cold_valid_queries_dropped": int(len(split.valid) - len(valid)),
        "cold_valid_targets_dropped": int(len(split.valid.targets) - len(valid.targets)),
        "cold_test_queries": int(np.sum(n_cold_targets > 0)),
        "warm_test_queries": int(np.sum(n_targets - n_cold_targets > 0)),
        "cold_test_targets": int(target_cold.sum()),
        "warm_test_targets": int((~target_cold).sum()),
        "cold_items": cold,
    }
    return replace(split, train=train, valid=valid, test=test, info=info)


def cold_target_mask(split: Split) -> np.ndarray:
    """One boolean per test target: is its item held out?  All false outside the cold-start protocol."""
    cold = split.info.get("cold_items")
    if cold is None:
        return np.zeros(len(split.test.targets), dtype=bool)
    return np.isin(split.test.targets, np.asarray(cold))


# ------------------------------------------------------------------ cold-start users
def hold_out_users(split: Split, fold: int, n_folds: int = 5, seed: int = 0) -> Split:
    """The cold-start user protocol: fold ``fold`` of ``n_folds`` of the users becomes users no model saw.

    * Users are dealt into ``n_folds`` folds by a random permutation
      (``numpy.random.default_rng(seed)``), so over the folds every user is
      held out exactly once.
    * **Train**: every event of a held-out user is removed.
    * **Valid and test**: the same queries and targets; a held-out user's
      queries keep their histories (what a new user has done so far) but
      name no user (``user = -1``), as a request from someone the model
      never saw.

    ``info["cold_users"]`` is the sorted array of held-out user indices.

    Examples
    --------
    >>> d = Interactions.from_sequences([(f"u{u}", [f"i{(u + j) % 10}" for j in range(6)]) for u in range(20)])
    >>> s = hold_out_users(leave_one_out(d), fold=0, n_folds=4)
    >>> cold = s.info["cold_users"]
    >>> len(cold), bool(np.isin(s.train.user, cold).any()), len(s.test) == 20
    (5, False, True)
    >>> sorted(np.concatenate([hold_out_users(leave_one_out(d), k, 4).info["cold_users"] for k in range(4)]).tolist()) == list(range(20))
    True
    >>> bool((s.test.queries.user[np.isin(leave_one_out(d).test.queries.user, cold)] == -1).all())
    True
    """
    if not 0 <= fold < n_folds or n_folds < 2:
        raise ValueError(f"cold-users fold must be in [0, {n_folds}) with at least 2 folds, got fold {fold} of {n_folds}")
    data = split.full
    order = np.random.default_rng(seed).permutation(data.n_users)
    cold = np.sort(order[fold::n_folds]).astype(np.int64)
    is_cold = np.zeros(data.n_users, dtype=bool)
    is_cold[cold] = True

    def hide(e: EvalSet) -> EvalSet:
        user = np.asarray(e.queries.user, np.int64)
        return replace(e, queries=replace(e.queries, user=np.where(is_cold[user], -1, user)))

    train = split.train.select(~is_cold[split.train.user])
    info: dict[str, Any] = {
        **split.info,
        "cold_users_fold": int(fold),
        "cold_users_folds": int(n_folds),
        "cold_users_seed": int(seed),
        "cold_users_n": len(cold),
        "cold_train_events_removed": int(split.train.n_events - train.n_events),
        "cold_users": cold,
    }
    return replace(split, train=train, valid=hide(split.valid), test=hide(split.test), info=info)


def leave_one_out_valid5(data: Interactions) -> Split:
    """:func:`leave_one_out` with the five events before each test event as valid: the selection split."""
    return leave_one_out(data, valid_events=5)


SPLITS: dict[str, Callable[..., Split]] = {
    "loo": leave_one_out,
    "loo-valid5": leave_one_out_valid5,
    "temporal": temporal,
    "temporal-events": temporal_events,
}
