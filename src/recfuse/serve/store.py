"""The event store: SQLAlchemy Core over SQLite (embedded default) or PostgreSQL (by URL).

One code path for both.  Durability and idempotence are the database's job:

* an events batch is **one transaction**, ``INSERT ... ON CONFLICT (event_id)
  DO NOTHING RETURNING event_id``: the returned ids are the ones this batch
  stored; the others were there already (a retry) and are acknowledged, not
  stored twice.  The service answers only after ``COMMIT`` returns.
* on PostgreSQL, concurrent batches that share event ids (a client retrying
  while its first attempt is still in flight) wait on each other's index
  entries; rows are inserted in ``event_id`` order so that two batches always
  take them in the same order and cannot deadlock, while ``seq`` still
  numbers them in the order the client sent them.  A deadlock or
  serialization failure that happens anyway (another writer on the same
  tables) is retried a few times with a short random backoff.
* SQLite runs in WAL mode with ``synchronous=FULL``: every commit fsyncs the
  WAL, so an acknowledged event survives a crash of the process *and* of the
  machine (power loss).  ``NORMAL`` would survive a process crash (SIGKILL)
  but could lose the last commits on power loss: not durable enough for
  "acknowledged means stored".  The cost is one fsync per batch, which is
  why clients should send events in batches.

* with :meth:`EventStore.enable_sync` (what a service on PostgreSQL does), each write transaction
  also announces what it changed to the other replicas on the same store, inside the transaction
  (:mod:`recfuse.serve.sync`).

The schema carries a version (table ``<prefix>schema_version``); on start,
:meth:`EventStore.migrate` creates a new database or runs the missing
migration steps of an old one, in order, each in its own transaction.

The tables themselves, and every read, are defined once in
:mod:`recfuse.data.eventdb` (``recfuse train --from-db`` reads them there);
this module adds the writes and the migrations.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recfuse.data.eventdb import SCHEMA_VERSION, EventReader, ItemRecord, StoreError

__all__ = ["DEFAULT_URL", "SCHEMA_VERSION", "AddResult", "Event", "EventStore", "ItemRecord", "StoreError"]

DEFAULT_URL = "sqlite:///recfuse.db"
RETRIES = 5  # attempts of a write transaction that PostgreSQL aborted as a deadlock or serialization failure
_RETRY_STATES = {"40P01", "40001"}  # deadlock_detected, serialization_failure
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """One interaction, external ids."""

    event_id: str
    user_id: str
    item_id: str
    timestamp: float
    type: str = "view"
    rating: float | None = None


class EventStore(EventReader):
    """Events and API-added items in a SQL database: the reads of :class:`EventReader` plus writes.

    Parameters
    ----------
    url
        SQLAlchemy URL: ``sqlite:///path.db`` (file, created if missing) or
        ``postgresql+psycopg://user@host:5432/db``.
    table_prefix
        Prepended to every table name.

    Examples
    --------
    >>> store = EventStore("sqlite://")  # in memory, for the example
    >>> store.migrate()
    3
    >>> store.add_events([Event("e1", "u1", "i1", 1.0)]).stored
    ['e1']
    >>> store.add_events([Event("e1", "u1", "i1", 1.0)]).duplicates  # a retry
    ['e1']
    >>> store.count_events()
    1
    """

    def __init__(self, url: str = DEFAULT_URL, table_prefix: str = "") -> None:
        super().__init__(url, table_prefix)
        # SQLite has one writer; queueing writers here is cheaper than busy retries.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None
        self.channel: str | None = None  # set by enable_sync: every write then notifies the other replicas
        self.origin = ""

    # ------------------------------------------------------------- replicas
    def enable_sync(self, origin: str) -> str:
        """Notify other replicas of every write from now on (PostgreSQL only, :mod:`recfuse.serve.sync`);
        ``origin`` names this replica.  Returns the channel."""
        from recfuse.serve.sync import channel_name

        if self.dialect != "postgresql":
            raise StoreError(f"{self.url}: replicas need a PostgreSQL store (an SQLite file has one process)")
        self.channel, self.origin = channel_name(self.prefix), origin
        return self.channel

    def _notify(self, conn: Connection, kind: str, values: Iterable[Any]) -> None:
        """Send ``values`` to the other replicas in ``conn``'s transaction (nothing unless sync is on)."""
        if self.channel is not None:
            from recfuse.serve.sync import pack, send

            send(conn, self.channel, pack(self.origin, kind, values))

    def announce(self, kind: str, values: Iterable[Any]) -> None:
        """Send ``values`` to the other replicas now, outside any write (a model reload)."""
        if self.channel is not None:
            with self.engine.begin() as conn:
                self._notify(conn, kind, values)

    def read_live(self, consume: Callable[[list[tuple[Any, ...]], dict[str, float]], None]) -> tuple[Any, dict[str, float]]:
        """Feed every stored event (chunks as :meth:`iter_events` with ``with_received``) to ``consume``
        with the erased users, all read in one snapshot; returns ``(snapshot, erased users)``.

        On PostgreSQL the snapshot is a :class:`~recfuse.serve.sync.PgSnapshot` (which write
        transactions the read saw: a replica skips their notices); on SQLite ``None``.
        """
        if self.dialect != "postgresql":
            erased = self.erased_users()
            for chunk in self.iter_events(with_received=True):
                consume(chunk, erased)
            return None, erased
        from recfuse.serve.sync import PgSnapshot

        with self.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
            snapshot = PgSnapshot.parse(str(conn.scalar(sa.text("SELECT pg_current_snapshot()::text"))))
            erased = self.erased_users(conn)
            for chunk in self.iter_events(with_received=True, conn=conn):
                consume(chunk, erased)
        return snapshot, erased

    # ------------------------------------------------------------- schema
    def _migrations(self) -> list[Callable[[Connection], None]]:
        """Step ``i`` takes the schema from version ``i`` to ``i + 1``."""

        def v1(conn: Connection) -> None:  # events and API items
            for t in (self.events, self.items):
                t.create(conn, checkfirst=True)

        def v2(conn: Connection) -> None:  # per-user lookups for feedback/exports; the meta table
            sa.Index(f"{self.prefix}events_user", self.events.c.user_id).create(conn, checkfirst=True)
            self.meta.create(conn, checkfirst=True)

        def v3(conn: Connection) -> None:  # users whose data was erased (DELETE /v1/users/{id})
            self.erased.create(conn, checkfirst=True)

        return [v1, v2, v3]

    def migrate(self, target: int = SCHEMA_VERSION) -> int:
        """Create or upgrade the schema to ``target``; returns the version reached."""
        steps = self._migrations()
        with self.engine.begin() as conn:
            self.version_table.create(conn, checkfirst=True)
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"{self.url}: schema version {current} is newer than this recfuse ({SCHEMA_VERSION}); upgrade recfuse"
            )
        for version in range(current, target):
            with self.engine.begin() as conn:
                steps[version](conn)
                conn.execute(sa.insert(self.version_table).values(version=version + 1, applied_at=time.time()))
        return max(current, target)

    def drop(self) -> None:
        """Drop every table of this store (tests; irreversible)."""
        self.metadata.drop_all(self.engine)
        self.engine.dispose()

    # ------------------------------------------------------------- writing
    def _insert(self) -> Any:
        """The dialect's ``insert`` (it has ``on_conflict_do_nothing`` / ``_do_update``)."""
        from sqlalchemy.dialects import postgresql, sqlite

        return sqlite.insert if self.dialect == "sqlite" else postgresql.insert

    def add_events(self, events: Sequence[Event]) -> AddResult:
        """Store a batch in one transaction; committed when this returns.

        Returns which event ids were stored now and which were there already
        (in the table, or earlier in this batch).
        """
        now = time.time()
        seen: set[str] = set()
        rows, dups = [], []
        for e in events:
            if e.event_id in seen:
                dups.append(e.event_id)
                continue
            seen.add(e.event_id)
            rows.append({
                "event_id": e.event_id, "user_id": e.user_id, "item_id": e.item_id, "ts": float(e.timestamp),
                "type": e.type, "rating": None if e.rating is None or math.isnan(e.rating) else float(e.rating),
                "received_at": now,
            })
        stored: list[str] = []
        if rows:
            stmt = (
                self._insert()(self.events)
                .on_conflict_do_nothing(index_elements=["event_id"])
                .returning(self.events.c.event_id)
            )
            stored = self._retrying(lambda conn: self._insert_events(conn, stmt, rows))
        new = set(stored)
        dups += [str(r["event_id"]) for r in rows if r["event_id"] not in new]
        return AddResult(stored=stored, duplicates=dups)

    def _insert_events(self, conn: Connection, stmt: Any, rows: list[dict[str, Any]]) -> list[str]:
        """Insert ``rows`` (client order) on ``conn``; returns the event ids stored."""
        if self.dialect != "postgresql":
            return list(conn.scalars(stmt, rows).all())
        # Take seq numbers in client order, then insert in event_id order (see the module docstring).  One
        # statement over arrays: a multi-row VALUES list of a big batch costs the driver far more to build,
        # and builds it holding the GIL, which the HTTP event loop needs.
        seqs = conn.scalars(
            sa.text("SELECT nextval(pg_get_serial_sequence(:t, 'seq')) FROM generate_series(1, :n)"),
            {"t": self.events.name, "n": len(rows)},
        ).all()
        order = sorted(range(len(rows)), key=lambda n: rows[n]["event_id"])
        cols = {name: [rows[n][name] for n in order] for name in self._COLUMNS}
        cols["seq"] = [int(seqs[n]) for n in order]
        stored = list(conn.scalars(self._unnest_insert(conn), cols).all())
        if self.channel is not None and stored:
            from recfuse.serve.sync import EVENTS

            new = set(stored)
            self._notify(conn, EVENTS, ([r["user_id"], r["item_id"], r["ts"], r["rating"], r["received_at"]]
                                        for r in rows if r["event_id"] in new))
        return stored

    _COLUMNS: ClassVar[tuple[str, ...]] = ("event_id", "user_id", "item_id", "ts", "type", "rating", "received_at")
    _ARRAY_TYPES: ClassVar[dict[str, str]] = {"seq": "bigint[]", "event_id": "text[]", "user_id": "text[]", "item_id": "text[]",
                    "ts": "float8[]", "type": "text[]", "rating": "float8[]", "received_at": "float8[]"}

    def _unnest_insert(self, conn: Connection) -> sa.TextClause:
        """``INSERT ... SELECT FROM unnest(arrays) ORDER BY event_id ON CONFLICT DO NOTHING RETURNING``."""
        names = ["seq", *self._COLUMNS]
        quote = conn.dialect.identifier_preparer.quote
        arrays = ", ".join(f"CAST(:{c} AS {self._ARRAY_TYPES[c]})" for c in names)
        return sa.text(
            f"INSERT INTO {quote(self.events.name)} ({', '.join(names)}) "
            f"SELECT * FROM unnest({arrays}) AS t({', '.join(names)}) ORDER BY event_id "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
        )

    def _retrying(self, work: Callable[[Connection], Any]) -> Any:
        """Run ``work`` in one transaction; rerun it when PostgreSQL aborts it as a deadlock or a
        serialization failure (at most :data:`RETRIES` attempts, with a short random backoff)."""
        for attempt in range(RETRIES):
            try:
                with self._locked(), self.engine.begin() as conn:
                    return work(conn)
            except sa.exc.DBAPIError as e:
                state = getattr(e.orig, "sqlstate", None)
                if state not in _RETRY_STATES or attempt == RETRIES - 1:
                    raise
                log.warning("write transaction aborted (%s); retrying", state)
                time.sleep(random.uniform(0.01, 0.05) * 2**attempt)
        raise AssertionError("unreachable")

    def erase_user(self, user_id: str) -> int:
        """Delete every event of ``user_id`` and record the erasure, in one transaction.

        Returns how many events were deleted.  The user is kept in
        ``erased_users`` (id and time, nothing else), so that models trained
        before now serve them as an unknown user and a retrain from the store
        leaves out any of their events received before now.

        Examples
        --------
        >>> store = EventStore("sqlite://")
        >>> _ = store.migrate()
        >>> _ = store.add_events([Event("e1", "u1", "i1", 1.0), Event("e2", "u2", "i1", 1.0)])
        >>> store.erase_user("u1"), store.event_ids(), list(store.erased_users())
        (1, ['e2'], ['u1'])
        """
        def work(conn: Connection) -> int:
            n = conn.execute(sa.delete(self.events).where(self.events.c.user_id == user_id)).rowcount
            ins = self._insert()(self.erased)
            at = time.time()
            conn.execute(
                ins.on_conflict_do_update(index_elements=["user_id"], set_={"erased_at": ins.excluded.erased_at}),
                {"user_id": user_id, "erased_at": at},
            )
            if self.channel is not None:
                from recfuse.serve.sync import ERASED

                self._notify(conn, ERASED, [[user_id, at]])
            return int(n or 0)

        return int(self._retrying(work))

    def upsert_items(self, items: Sequence[ItemRecord]) -> None:
        """Insert or replace API items, in one transaction."""
        if not items:
            return
        now = time.time()
        # One row per item (the last copy wins): PostgreSQL refuses to update a row twice in one
        # statement; sorted by id so that concurrent upserts lock rows in the same order.
        items = sorted({it.item_id: it for it in items}.values(), key=lambda it: it.item_id)
        rows = [
            {"item_id": it.item_id, "text": it.text, "title": it.title, "genres": it.genres,
             "vector": None if it.vector is None else np.asarray(it.vector, np.float32).tobytes(), "updated_at": now}
            for it in items
        ]
        ins = self._insert()(self.items)
        stmt = ins.on_conflict_do_update(
            index_elements=["item_id"],
            set_={c: getattr(ins.excluded, c) for c in ("text", "title", "genres", "vector", "updated_at")},
        )
        def work(conn: Connection) -> None:
            conn.execute(stmt, rows)
            if self.channel is not None:
                from recfuse.serve.sync import ITEMS

                self._notify(conn, ITEMS, [r["item_id"] for r in rows])

        self._retrying(work)

    def set_meta(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` in ``meta`` (replacing any earlier value)."""
        ins = self._insert()(self.meta)
        stmt = ins.on_conflict_do_update(index_elements=["key"], set_={"value": ins.excluded.value})
        with self._locked(), self.engine.begin() as conn:
            conn.execute(stmt, {"key": key, "value": value})

    def seed(self, events: Iterable[Event], source: str, chunk: int = 20_000) -> int:
        """Load a model's training log once (marked in ``meta``); returns events stored now.

        Event ids are deterministic (``seed-<row>``), so a seed interrupted
        half-way is completed, not duplicated, on the next start.
        """
        if self.get_meta("seeded_from") is not None:
            return 0
        batch: list[Event] = []
        n = 0
        for e in events:
            batch.append(e)
            if len(batch) >= chunk:
                n += len(self.add_events(batch).stored)
                batch = []
        if batch:
            n += len(self.add_events(batch).stored)
        self.set_meta("seeded_from", source)
        return n

    def _locked(self) -> Any:
        """The SQLite write lock, or a no-op context where the database queues writers itself."""
        from contextlib import nullcontext

        return self._write_lock if self._write_lock is not None else nullcontext()


@dataclass
class AddResult:
    """What :meth:`EventStore.add_events` did: ids stored now, ids already there."""

    stored: list[str]
    duplicates: list[str]

