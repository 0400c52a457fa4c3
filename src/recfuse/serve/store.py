"""The event store: SQLAlchemy Core over SQLite (embedded default) or PostgreSQL (by URL).

One code path for both.  Durability and idempotence are the database's job:

* an events batch is **one transaction**, ``INSERT ... ON CONFLICT (event_id)
  DO NOTHING RETURNING event_id``: the returned ids are the ones this batch
  stored; the others were there already (a retry) and are acknowledged, not
  stored twice.  The service answers only after ``COMMIT`` returns.
* SQLite runs in WAL mode with ``synchronous=FULL``: every commit fsyncs the
  WAL, so an acknowledged event survives a crash of the process *and* of the
  machine (power loss).  ``NORMAL`` would survive a process crash (SIGKILL)
  but could lose the last commits on power loss: not durable enough for
  "acknowledged means stored".  The cost is one fsync per batch, which is
  why clients should send events in batches.

The schema carries a version (table ``<prefix>schema_version``); on start,
:meth:`EventStore.migrate` creates a new database or runs the missing
migration steps of an old one, in order, each in its own transaction.

Tables (all names start with ``table_prefix``, so several stores can share one
PostgreSQL database, e.g. one per test):

* ``events``: ``seq`` (insertion order), ``event_id`` (unique), ``user_id``,
  ``item_id``, ``ts`` (seconds), ``type``, ``rating`` (nullable),
  ``received_at``;
* ``items``: items added or updated through the API: ``item_id``, ``text``,
  ``title``, ``genres``, ``vector`` (float32 bytes of the text embedding, so a
  restart need not re-encode), ``updated_at``;
* ``meta``: key/value (``seeded_from``: the model directory whose log seeded
  the store).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

SCHEMA_VERSION = 2
DEFAULT_URL = "sqlite:///recfuse.db"
ID_LEN = 128


class StoreError(RuntimeError):
    """The database cannot be used (bad URL, newer schema than this code, ...)."""


@dataclass(frozen=True)
class Event:
    """One interaction, external ids."""

    event_id: str
    user_id: str
    item_id: str
    timestamp: float
    type: str = "view"
    rating: float | None = None


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


class EventStore:
    """Events and API-added items in a SQL database.

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
    2
    >>> store.add_events([Event("e1", "u1", "i1", 1.0)]).stored
    ['e1']
    >>> store.add_events([Event("e1", "u1", "i1", 1.0)]).duplicates  # a retry
    ['e1']
    >>> store.count_events()
    1
    """

    def __init__(self, url: str = DEFAULT_URL, table_prefix: str = "") -> None:
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
            # One connection per thread; the write lock below serialises writers (SQLite allows one).
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=8, max_overflow=8, pool_pre_ping=True)
        try:
            self.engine: Engine = sa.create_engine(url, **kwargs)
        except ImportError as e:  # e.g. postgresql:// means psycopg2, which recfuse does not install
            raise StoreError(f"--db {url!r}: driver not installed ({e}); for PostgreSQL use postgresql+psycopg://...") from None
        if self.dialect == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        # SQLite has one writer; queueing writers here is cheaper than busy retries.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None
        self.prefix = table_prefix
        self.metadata = sa.MetaData()
        p = table_prefix
        self.version_table = sa.Table(
            f"{p}schema_version", self.metadata,
            sa.Column("version", sa.Integer, primary_key=True),
            sa.Column("applied_at", sa.Float, nullable=False),
        )
        self.events = sa.Table(
            f"{p}events", self.metadata,
            sa.Column("seq", _bigint(), primary_key=True, autoincrement=True),
            sa.Column("event_id", sa.String(ID_LEN), nullable=False, unique=True),
            sa.Column("user_id", sa.String(ID_LEN), nullable=False),
            sa.Column("item_id", sa.String(ID_LEN), nullable=False),
            sa.Column("ts", sa.Float(precision=53), nullable=False),
            sa.Column("type", sa.String(32), nullable=False),
            sa.Column("rating", sa.Float, nullable=True),
            sa.Column("received_at", sa.Float(precision=53), nullable=False),
        )
        self.items = sa.Table(
            f"{p}items", self.metadata,
            sa.Column("item_id", sa.String(ID_LEN), primary_key=True),
            sa.Column("text", sa.Text, nullable=False),
            sa.Column("title", sa.Text, nullable=True),
            sa.Column("genres", sa.Text, nullable=True),
            sa.Column("vector", sa.LargeBinary, nullable=True),
            sa.Column("updated_at", sa.Float(precision=53), nullable=False),
        )
        self.meta = sa.Table(
            f"{p}meta", self.metadata,
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )

    # ------------------------------------------------------------- schema
    def _migrations(self) -> list[Callable[[Connection], None]]:
        """Step ``i`` takes the schema from version ``i`` to ``i + 1``."""

        def v1(conn: Connection) -> None:  # events and API items
            for t in (self.events, self.items):
                t.create(conn, checkfirst=True)

        def v2(conn: Connection) -> None:  # per-user lookups for feedback/exports; the meta table
            sa.Index(f"{self.prefix}events_user", self.events.c.user_id).create(conn, checkfirst=True)
            self.meta.create(conn, checkfirst=True)

        return [v1, v2]

    def schema_version(self) -> int:
        """The version the database is at (0: empty)."""
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(self.version_table.name):
                return 0
            return int(conn.execute(sa.select(sa.func.max(self.version_table.c.version))).scalar() or 0)

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

    def close(self) -> None:
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
            with self._locked(), self.engine.begin() as conn:
                stored = list(conn.scalars(stmt, rows).all())
        new = set(stored)
        dups += [str(r["event_id"]) for r in rows if r["event_id"] not in new]
        return AddResult(stored=stored, duplicates=dups)

    def upsert_items(self, items: Sequence[ItemRecord]) -> None:
        """Insert or replace API items, in one transaction."""
        if not items:
            return
        now = time.time()
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
        with self._locked(), self.engine.begin() as conn:
            conn.execute(stmt, rows)

    def set_meta(self, key: str, value: str) -> None:
        ins = self._insert()(self.meta)
        stmt = ins.on_conflict_do_update(index_elements=["key"], set_={"value": ins.excluded.value})
        with self._locked(), self.engine.begin() as conn:
            conn.execute(stmt, {"key": key, "value": value})

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(self.meta.c.value).where(self.meta.c.key == key)).scalar()

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

    # ------------------------------------------------------------- reading
    def count_events(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self.events)).scalar() or 0)

    def iter_events(self, chunk: int = 50_000) -> Iterable[list[tuple[str, str, float, float | None, str]]]:
        """All events in insertion order, as ``(user_id, item_id, ts, rating, type)`` row chunks."""
        e = self.events
        last = 0
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(e.c.seq, e.c.user_id, e.c.item_id, e.c.ts, e.c.rating, e.c.type)
                    .where(e.c.seq > last).order_by(e.c.seq).limit(chunk)
                ).all()
            if not rows:
                return
            last = int(rows[-1][0])
            yield [(r[1], r[2], float(r[3]), None if r[4] is None else float(r[4]), r[5]) for r in rows]

    def event_ids(self) -> list[str]:
        """Every stored event id (tests and audits)."""
        with self.engine.connect() as conn:
            return list(conn.scalars(sa.select(self.events.c.event_id)).all())

    def load_items(self) -> list[ItemRecord]:
        """API items, oldest update first."""
        t = self.items
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.item_id, t.c.text, t.c.title, t.c.genres, t.c.vector).order_by(t.c.updated_at)).all()
        return [
            ItemRecord(r[0], r[1], r[2], r[3], None if r[4] is None else np.frombuffer(r[4], np.float32).copy())
            for r in rows
        ]

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True

    def _locked(self) -> Any:
        from contextlib import nullcontext

        return self._write_lock if self._write_lock is not None else nullcontext()


@dataclass
class AddResult:
    stored: list[str]
    duplicates: list[str]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # fsync the WAL at every commit: see the module docstring
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
