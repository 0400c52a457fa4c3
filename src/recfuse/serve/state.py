"""Live user state: every user's history in memory, so a request needs no database read.

Loaded from the store at start; appended to after each committed events
batch (before the 2xx), so the very next request sees the event.  Histories
are kept in **external** ids: a reloaded model may index items differently,
and each request translates with the engine that serves it (the translation
is cached per user and engine, and extended incrementally as events arrive).
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from recfuse.data.dataset import IdMap

# History stamps, shared by every LiveState of the process: a live state rebuilt from the store (a replica
# resyncing) never hands out a stamp an older one did, so the engine's user cache cannot confuse them.
_STAMPS = itertools.count(1)


@dataclass
class History:
    """One user's events in time order (ties keep arrival order)."""

    items: list[str] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    ratings: list[float] = field(default_factory=list)  # NaN when the event had none
    stamp: int = 0  # changes at every change of this history, never repeats (the engine's cache key)
    # Translation cache: (id map it was made with, number of events translated, indices).
    _cache: tuple[int, int, np.ndarray] | None = None

    def add(self, item: str, ts: float, rating: float | None) -> None:
        r = float("nan") if rating is None else float(rating)
        if not self.ts or ts >= self.ts[-1]:
            self.items.append(item)
            self.ts.append(ts)
            self.ratings.append(r)
        else:  # a late event: keep time order
            pos = bisect.bisect_right(self.ts, ts)
            self.items.insert(pos, item)
            self.ts.insert(pos, ts)
            self.ratings.insert(pos, r)
            self._cache = None


@dataclass(frozen=True)
class Snapshot:
    """A user's history as dense arrays for one engine; unknown items dropped."""

    items: np.ndarray  # int64 item indices
    timestamps: np.ndarray  # float64 seconds
    ratings: np.ndarray  # float32, NaN = none
    version: int = -1  # the history's stamp when taken (a new one at each change, never reused); -1: not from it

    def __len__(self) -> int:
        return len(self.items)


class LiveState:
    """Histories of all users plus item popularity (the cold-start answer).

    Examples
    --------
    >>> s = LiveState()
    >>> s.add([("u", "b", 2.0, None), ("u", "a", 1.0, 4.0)])
    >>> snap = s.snapshot("u", IdMap(["a", "b"]))
    >>> snap.items.tolist(), snap.timestamps.tolist()
    ([0, 1], [1.0, 2.0])
    >>> s.popular(1)
    ['b']
    >>> s.remove("u"), s.snapshot("u", IdMap(["a", "b"])), s.n_events
    (2, None, 0)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, History] = {}
        self._counts: Counter[str] = Counter()
        self._stamps = _STAMPS
        self.n_events = 0

    def add(self, events: Iterable[tuple[str, str, float, float | None]]) -> None:
        """Append ``(user_id, item_id, ts, rating)`` events (already committed).

        A big batch is added in chunks, the lock released in between, so that readers (the HTTP event
        loop) never wait long for it.
        """
        it = iter(events)
        while chunk := list(itertools.islice(it, 1000)):
            with self._lock:
                for user, item, ts, rating in chunk:
                    h = self._users.get(user)
                    if h is None:
                        h = self._users[user] = History()
                    h.add(item, float(ts), rating)
                    h.stamp = next(self._stamps)
                    self._counts[item] += 1
                    self.n_events += 1

    def remove(self, user: str) -> int:
        """Forget ``user``'s history (their events leave the popularity counts too); returns how many
        events it held."""
        with self._lock:
            h = self._users.pop(user, None)
            if h is None:
                return 0
            for item in h.items:
                self._counts[item] -= 1
                if self._counts[item] <= 0:
                    del self._counts[item]
            self.n_events -= len(h.items)
            return len(h.items)

    @property
    def stamp(self) -> int:
        """A stamp newer than every history's now."""
        with self._lock:
            return next(self._stamps)

    def knows(self, user: str) -> bool:
        with self._lock:
            return user in self._users

    @property
    def n_users(self) -> int:
        return len(self._users)

    def snapshot(self, user: str, items: IdMap, token: int = 0) -> Snapshot | None:
        """The user's history in ``items``' indices, or ``None`` for an unknown user.

        ``token`` names the id map (a number that changes whenever the map
        does); translations are cached under it.
        """
        with self._lock:
            h = self._users.get(user)
            if h is None:
                return None
            n = len(h.items)
            cache = h._cache
            if cache is not None and cache[0] == token and cache[1] == n:
                idx = cache[2]
            elif cache is not None and cache[0] == token and cache[1] < n:
                tail = items.to_index(h.items[cache[1] :], missing=-1)
                idx = np.concatenate([cache[2], tail])
            else:
                idx = items.to_index(h.items, missing=-1)
            h._cache = (token, n, idx)
            stamp = h.stamp
            ts = np.array(h.ts, np.float64)
            ratings = np.array(h.ratings, np.float32)
        keep = idx >= 0
        if not keep.all():
            return Snapshot(idx[keep], ts[keep], ratings[keep], stamp)
        return Snapshot(idx, ts, ratings, stamp)

    def popular(self, k: int, exclude: set[str] | None = None) -> list[str]:
        """The ``k`` most frequent items in the store, ``exclude`` left out."""
        with self._lock:
            top = self._counts.most_common(k + len(exclude or ()))
        return [i for i, _ in top if not exclude or i not in exclude][:k]
