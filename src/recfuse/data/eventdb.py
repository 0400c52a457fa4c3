"""The event database that ``recfuse serve`` writes: its tables, and reading them.

One definition of the schema for both sides of the feedback loop: the service's
store (:class:`recfuse.serve.store.EventStore`) writes through these tables and
``recfuse train --from-db`` reads them here, without importing the service.

SQLAlchemy Core over SQLite (``sqlite:///path.db``) or PostgreSQL
(``postgresql+psycopg://user@host:5432/db``).  Tables (all names start with
``table_prefix``, so several stores can share one PostgreSQL database):

* ``schema_version``: one row per migration step applied (``version``,
  ``applied_at``);
* ``events``: ``seq`` (insertion order), ``event_id`` (unique), ``user_id``,
  ``item_id``, ``ts`` (seconds), ``type``, ``rating`` (nullable),
  ``received_at``;
* ``items``: items added or updated through the API: ``item_id``, ``text``,
  ``title``, ``genres``, ``vector`` (float32 bytes of the text embedding, so a
  restart need not re-encode), ``updated_at``;
* ``meta``: key/value (``seeded_from``: the model directory whose log seeded
  the store);
* ``erased_users``: users whose data was erased (``DELETE /v1/users/{id}``):
  ``user_id``, ``erased_at``.  Their events are gone from ``events``; the
  service serves them as unknown users under any model trained before
  ``erased_at``, and :func:`events_frame` leaves out any event of theirs
  received before it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

SCHEMA_VERSION = 3  # the schema these tables describe; EventStore.migrate brings a database to it
ID_LEN = 128  # longest user, item or event id the tables hold


class StoreError(RuntimeError):
    """The database cannot be used (bad URL, newer schema than this code, ...)."""


@dataclass(frozen=True)
class ItemRecord:
    """An item added or updated through the API."""

    item_id: str
    text: str
    title: str | None
    genres: str | None
    vector: np.ndarray | None


def _bigint() -> sa.types.TypeEngine[int]:
    # SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for a log.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


@dataclass(frozen=True)
class EventTables:
    """The store's tables under one prefix, on their own :class:`sqlalchemy.MetaData`.

    Build with :func:`event_tables`.
    """

    prefix: str
    metadata: sa.MetaData
    version: sa.Table
    events: sa.Table
    items: sa.Table
    meta: sa.Table
    erased: sa.Table


def event_tables(prefix: str = "") -> EventTables:
    """The table definitions of the event database, every name starting with ``prefix``.

    Parameters
    ----------
    prefix
        Prepended to every table name.

    Returns
    -------
    EventTables
        The five tables, not yet created anywhere.

    Examples
    --------
    >>> t = event_tables("test_")
    >>> t.events.name, [c.name for c in t.items.columns][:2]
    ('test_events', ['item_id', 'text'])
    """
    md = sa.MetaData()
    version = sa.Table(
        f"{prefix}schema_version", md,
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("applied_at", sa.Float, nullable=False),
    )
    events = sa.Table(
        f"{prefix}events", md,
        sa.Column("seq", _bigint(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(ID_LEN), nullable=False, unique=True),
        sa.Column("user_id", sa.String(ID_LEN), nullable=False),
        sa.Column("item_id", sa.String(ID_LEN), nullable=False),
        sa.Column("ts", sa.Float(precision=53), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("rating", sa.Float, nullable=True),
        sa.Column("received_at", sa.Float(precision=53), nullable=False),
    )
    items = sa.Table(
        f"{prefix}items", md,
        sa.Column("item_id", sa.String(ID_LEN), primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=True),
        sa.Column("genres", sa.Text, nullable=True),
        sa.Column("vector", sa.LargeBinary, nullable=True),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
    )
    meta = sa.Table(
        f"{prefix}meta", md,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    erased = sa.Table(
        f"{prefix}erased_users", md,
        sa.Column("user_id", sa.String(ID_LEN), primary_key=True),
        sa.Column("erased_at", sa.Float(precision=53), nullable=False),
    )
    return EventTables(prefix, md, version, events, items, meta, erased)


class EventReader:
    """Read access to an event database: the stored events, API items and metadata.

    Opens the database the way the service does (same URL checks, same SQLite
    settings), so reading a store the service is writing to is safe.  The
    service's :class:`~recfuse.serve.store.EventStore` extends this class with
    migrations and writes.

    Parameters
    ----------
    url
        SQLAlchemy URL: ``sqlite:///path.db`` or ``postgresql+psycopg://user@host:5432/db``.
    table_prefix
        The prefix the store's tables were created with.

    Raises
    ------
    StoreError
        The URL does not parse, names an unsupported backend, or its driver is missing.

    Examples
    --------
    >>> db = EventReader("sqlite://")  # in memory, for the example: no tables yet
    >>> db.schema_version()
    0
    >>> db.close()
    """

    def __init__(self, url: str, table_prefix: str = "") -> None:
        self.url = url
        try:
            sa_url = sa.engine.make_url(url)
        except sa.exc.ArgumentError as e:
            raise StoreError(f"--db {url!r}: not a database URL ({e}); e.g. sqlite:///recfuse.db") from None
        self.dialect = sa_url.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise StoreError(f"--db {url!r}: backend {self.dialect!r} is not supported (sqlite or postgresql)")
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            # One connection per thread; EventStore's write lock serialises writers (SQLite allows one).
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=8, max_overflow=8, pool_pre_ping=True)
        try:
            self.engine: Engine = sa.create_engine(url, **kwargs)
        except ImportError as e:  # e.g. postgresql:// means psycopg2, which recfuse does not install
            raise StoreError(f"--db {url!r}: driver not installed ({e}); for PostgreSQL use postgresql+psycopg://...") from None
        if self.dialect == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self.prefix = table_prefix
        tables = event_tables(table_prefix)
        self.metadata = tables.metadata
        self.version_table = tables.version
        self.events = tables.events
        self.items = tables.items
        self.meta = tables.meta
        self.erased = tables.erased

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def schema_version(self) -> int:
        """The version the database is at (0: empty)."""
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(self.version_table.name):
                return 0
            return int(conn.execute(sa.select(sa.func.max(self.version_table.c.version))).scalar() or 0)

    def get_meta(self, key: str) -> str | None:
        """The ``meta`` value stored under ``key`` (None when absent)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(self.meta.c.value).where(self.meta.c.key == key)).scalar()

    def count_events(self) -> int:
        """How many events are stored."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self.events)).scalar() or 0)

    def iter_events(self, chunk: int = 50_000, with_received: bool = False,
                    conn: sa.Connection | None = None) -> Iterable[list[tuple[Any, ...]]]:
        """All events in insertion order, as ``(user_id, item_id, ts, rating, type)`` row chunks.

        ``with_received`` appends each event's ``received_at`` to its tuple.  ``conn``: read every
        chunk on this connection (inside its transaction, so all of them see one snapshot); by
        default each chunk opens its own.
        """
        e = self.events
        cols = [e.c.seq, e.c.user_id, e.c.item_id, e.c.ts, e.c.rating, e.c.type]
        if with_received:
            cols.append(e.c.received_at)
        last = 0
        while True:
            with nullcontext(conn) if conn is not None else self.engine.connect() as c:
                rows = c.execute(sa.select(*cols).where(e.c.seq > last).order_by(e.c.seq).limit(chunk)).all()
            if not rows:
                return
            last = int(rows[-1][0])
            yield [(r[1], r[2], float(r[3]), None if r[4] is None else float(r[4]), r[5], *r[6:]) for r in rows]

    def user_events(self, user_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """One user's stored events in insertion order (what ``GET /v1/users/{id}/events`` answers).

        Each is ``{"event_id", "item_id", "timestamp", "type", "rating", "received_at"}``;
        ``limit`` keeps the first ones only.

        Examples
        --------
        >>> db = EventReader("sqlite://")
        >>> db.metadata.create_all(db.engine)
        >>> db.user_events("nobody")
        []
        """
        e = self.events
        stmt = (sa.select(e.c.event_id, e.c.item_id, e.c.ts, e.c.type, e.c.rating, e.c.received_at)
                .where(e.c.user_id == user_id).order_by(e.c.seq))
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            {"event_id": r[0], "item_id": r[1], "timestamp": float(r[2]), "type": r[3],
             "rating": None if r[4] is None else float(r[4]), "received_at": float(r[5])}
            for r in rows
        ]

    def erased_users(self, conn: sa.Connection | None = None) -> dict[str, float]:
        """Users whose data was erased, with when (Unix seconds); empty before schema version 3.

        ``conn``: read on this connection (in its transaction) instead of a new one.

        Examples
        --------
        >>> db = EventReader("sqlite://")
        >>> db.metadata.create_all(db.engine)
        >>> db.erased_users()
        {}
        """
        with nullcontext(conn) if conn is not None else self.engine.connect() as c:
            if not sa.inspect(c).has_table(self.erased.name):
                return {}
            rows = c.execute(sa.select(self.erased.c.user_id, self.erased.c.erased_at)).all()
        return {str(r[0]): float(r[1]) for r in rows}

    def event_ids(self) -> list[str]:
        """Every stored event id (tests and audits)."""
        with self.engine.connect() as conn:
            return list(conn.scalars(sa.select(self.events.c.event_id)).all())

    def load_items(self, ids: Iterable[str] | None = None) -> list[ItemRecord]:
        """API items, oldest update first; ``ids``: only these."""
        t = self.items
        stmt = sa.select(t.c.item_id, t.c.text, t.c.title, t.c.genres, t.c.vector).order_by(t.c.updated_at)
        if ids is not None:
            stmt = stmt.where(t.c.item_id.in_(list(ids)))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            ItemRecord(r[0], r[1], r[2], r[3], None if r[4] is None else np.frombuffer(r[4], np.float32).copy())
            for r in rows
        ]

    def ping(self) -> bool:
        """True when the database answers (raises otherwise)."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True


def events_frame(db: EventReader) -> pl.DataFrame:
    """Every stored event, in insertion order, as one frame; erased users' data left out.

    An event of a user in ``erased_users`` is left out when it was received
    before the erasure (a write that raced the ``DELETE``); what the user did
    after it is new data and is kept.

    Columns ``user_id``, ``item_id`` (strings), ``timestamp`` (Float64 seconds),
    ``rating`` (Float32, NaN where the event had none) and ``event_type``: the
    columns :meth:`recfuse.data.dataset.Interactions.from_frame` reads.

    Examples
    --------
    >>> db = EventReader("sqlite://")
    >>> db.metadata.create_all(db.engine)
    >>> events_frame(db).columns
    ['user_id', 'item_id', 'timestamp', 'rating', 'event_type']
    """
    users: list[str] = []
    items: list[str] = []
    ts: list[float] = []
    ratings: list[float] = []
    types: list[str] = []
    erased = db.erased_users()
    for chunk in db.iter_events(with_received=bool(erased)):
        for u, i, t, r, kind, *received in chunk:
            if erased and u in erased and received[0] <= erased[u]:
                continue
            users.append(u)
            items.append(i)
            ts.append(t)
            ratings.append(math.nan if r is None else r)
            types.append(kind)
    return pl.DataFrame(
        {"user_id": users, "item_id": items, "timestamp": ts, "rating": ratings, "event_type": types},
        schema={"user_id": pl.String, "item_id": pl.String, "timestamp": pl.Float64, "rating": pl.Float32,
                "event_type": pl.String},
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; synchronous=FULL fsyncs the WAL at every commit, so an
    # acknowledged event survives power loss (see recfuse.serve.store on durability).
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
