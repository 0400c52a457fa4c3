"""Replicas: several ``recfuse serve`` processes over one PostgreSQL store, kept coherent by LISTEN/NOTIFY.

Every replica holds the live state (histories, popularity), the engine's user cache and the item
table in its own memory.  What one replica changes reaches the others through PostgreSQL's own
notifications, on the channel ``<table_prefix>recfuse_sync``:

* **events**: each events batch sends, inside its own transaction, notices carrying the events it
  stored (user, item, time, rating, when received); a big batch is split over several notices
  (PostgreSQL takes at most 8,000 bytes a payload);
* **erasures** (``DELETE /v1/users/{id}``): the user and the time of erasure;
* **items** (``POST /v1/items``): the item ids; a replica reads their text vectors from the store;
* **reloads** (``POST /v1/admin/reload``): the model directory, which every replica then loads (it
  must be readable by all of them at that path).

Why PostgreSQL's notifications and not a second server (Redis pub/sub or streams): the store is the
source of truth already, and a notice sent in a transaction is delivered when, and only if, that
transaction commits, to every listening session, in commit order.  A replica therefore never sees
an event that is not stored, and sees each store change in the order the store made it; there is
no second system whose failure could let the two disagree.

**No notice is missed or applied twice.**  A replica starts listening *before* it loads its live
state; it loads in one ``REPEATABLE READ`` transaction and keeps that transaction's snapshot
(``pg_current_snapshot()``).  Each notice carries the id of the transaction that sent it: one the
snapshot already sees is skipped (its effect is in what was loaded), every other one is applied.
Its own notices a replica skips by their origin.  When the listening connection breaks, the
replica reconnects (with a backoff), listens again and reloads its live state the same way.

The propagation delay is what the notice takes through PostgreSQL, a few milliseconds on one
machine (``benchmarks/replicas``); a request sent to replica B right after replica A acknowledged
an event can arrive before it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

log = logging.getLogger(__name__)

MAX_PAYLOAD = 7_900  # bytes of JSON per notice; PostgreSQL refuses payloads of 8,000 bytes or more
CHANNEL = "recfuse_sync"

# Notice kinds: the key under which a notice carries its values.
EVENTS = "e"  # [user_id, item_id, ts, rating | None, received_at] per event
ERASED = "x"  # [user_id, erased_at]
ITEMS = "i"  # item ids
RELOAD = "r"  # [model_dir]


def channel_name(table_prefix: str = "") -> str:
    """The notification channel of the store whose tables start with ``table_prefix`` (at most 63 bytes,
    PostgreSQL's identifier length).

    >>> channel_name(), channel_name("shop_")
    ('recfuse_sync', 'shop_recfuse_sync')
    """
    return f"{table_prefix}{CHANNEL}"[-63:]


def new_origin() -> str:
    """A fresh id for one replica (the process's notices carry it, so it can skip its own)."""
    return uuid.uuid4().hex[:12]


def pack(origin: str, kind: str, values: Iterable[Any], limit: int = MAX_PAYLOAD) -> list[str]:
    """``values`` as JSON notices ``{"o": origin, "t": sent, kind: [...]}`` of at most ``limit`` bytes each.

    A single value too big for one notice raises :class:`ValueError` (an id is at most 128 characters,
    so no value the store accepts comes near it).

    >>> [json.loads(p)["e"] for p in pack("a", "e", [[1], [2], [3]], limit=52)]
    [[[1], [2]], [[3]]]
    """
    head = len(json.dumps({"o": origin, "t": time.time(), kind: []}).encode())
    out: list[str] = []
    chunk: list[str] = []
    size = head
    for v in values:
        text = json.dumps(v, separators=(",", ":"))
        n = len(text.encode()) + 1
        if head + n > limit:
            raise ValueError(f"one {kind!r} value of {n} bytes does not fit a notice of {limit} bytes")
        if size + n > limit:
            out.append(_notice(origin, kind, chunk))
            chunk, size = [], head
        chunk.append(text)
        size += n
    if chunk:
        out.append(_notice(origin, kind, chunk))
    return out


def _notice(origin: str, kind: str, texts: list[str]) -> str:
    return f'{{"o":{json.dumps(origin)},"t":{time.time()!r},{json.dumps(kind)}:[{",".join(texts)}]}}'


def send(conn: sa.Connection, channel: str, notices: list[str]) -> None:
    """Queue ``notices`` on ``channel`` in ``conn``'s transaction (delivered at its commit), each
    prefixed with the transaction's id."""
    if notices:
        conn.execute(
            sa.text("SELECT pg_notify(:ch, pg_current_xact_id()::text || ' ' || p) FROM unnest(CAST(:ps AS text[])) AS p"),
            {"ch": channel, "ps": notices},
        )


@dataclass(frozen=True)
class PgSnapshot:
    """Which transactions a PostgreSQL snapshot sees (the text form of ``pg_current_snapshot()``).

    >>> s = PgSnapshot.parse("100:105:101,103")
    >>> [x for x in range(98, 107) if s.sees(x)]
    [98, 99, 100, 102, 104]
    """

    xmin: int
    xmax: int
    running: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> PgSnapshot:
        xmin, xmax, xip = text.split(":")
        return cls(int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x))

    def sees(self, xid: int) -> bool:
        """True when a transaction with id ``xid`` had committed (or aborted) before the snapshot."""
        return xid < self.xmin or (xid < self.xmax and xid not in self.running)


def conninfo(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as a libpq connection string (what psycopg connects with).

    >>> conninfo("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    'postgresql://postgres@127.0.0.1:5432/test'
    """
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


Apply = Callable[[str, list[Any]], None]
"""Applies one notice's values of one kind (:data:`EVENTS`, :data:`ERASED`, :data:`ITEMS`, :data:`RELOAD`)."""


class Listener:
    """Listens on a store's channel on its own connection and thread, and applies the other replicas' notices.

    Construct it (it connects and runs ``LISTEN`` at once), load the live state, then :meth:`start`
    with the snapshot of that load: notices of transactions the load saw are skipped.

    Parameters
    ----------
    url
        The store's SQLAlchemy URL (PostgreSQL).
    channel
        :func:`channel_name` of the store.
    origin
        This replica's id (:func:`new_origin`); its own notices are skipped.
    """

    def __init__(self, url: str, channel: str, origin: str) -> None:
        self.url, self.channel, self.origin = url, channel, origin
        self.applied = self.skipped = self.failed = self.resyncs = 0
        self.last_lag = float("nan")  # seconds from the newest applied notice's send to its apply
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn = self._connect()

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(conninfo(self.url), autocommit=True, keepalives=1, keepalives_idle=10)
        conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(self.channel)))
        return conn

    def start(self, apply: Apply, snapshot: PgSnapshot | None, resync: Callable[[], PgSnapshot | None]) -> None:
        """Apply notices from now on, in a daemon thread.

        ``snapshot``: the live state's load snapshot (``None``: apply everything); ``resync``: reloads the
        live state after a lost connection and returns the new load's snapshot.
        """
        self._apply, self._snapshot, self._resync = apply, snapshot, resync
        self._thread = threading.Thread(target=self._run, name="recfuse-sync", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and close the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)  # the thread closes the connection on its way out
        else:
            self._conn.close()

    def _run(self) -> None:
        import psycopg

        backoff = 0.1
        while not self._stop.is_set():
            try:
                for n in self._conn.notifies(timeout=0.25):
                    self._handle(n.payload)
                backoff = 0.1
            except psycopg.Error as e:
                if self._stop.is_set():
                    break
                log.warning("sync: the listening connection failed (%s); reconnecting", type(e).__name__)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                try:
                    self._conn.close()
                    self._conn = self._connect()
                    self._snapshot = self._resync()
                    self.resyncs += 1
                    log.warning("sync: listening again; live state reloaded from the store")
                except Exception as e2:  # noqa: BLE001 - still down (or the reload failed): try again next round
                    log.warning("sync: reconnecting failed (%s)", type(e2).__name__)
        self._conn.close()

    def _handle(self, payload: str) -> None:
        """Decode one notice ``"<xid> <json>"`` and apply it unless it is ours or the load saw it."""
        try:
            xid_text, body = payload.split(" ", 1)
            notice = json.loads(body)
            if notice.get("o") == self.origin:
                return
            if self._snapshot is not None and self._snapshot.sees(int(xid_text)):
                self.skipped += 1
                return
            for kind in (EVENTS, ERASED, ITEMS, RELOAD):
                if kind in notice:
                    self._apply(kind, notice[kind])
            self.applied += 1
            self.last_lag = time.time() - float(notice.get("t", time.time()))
        except Exception:
            self.failed += 1
            log.exception("sync: a notice could not be applied")
