"""The service object: store, live state, engine, batcher, phraser and metrics; what the routes call.

:class:`Service` is built once per process, in the app's lifespan
(:func:`recfuse.serve.app.create_app`), and reached from a route through the
:data:`ServiceDep` dependency.  Routes do HTTP (parsing, status codes, the
JSON they answer); the service does the work that touches the model, the
store or the live state.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from recfuse.bundle import Bundle
from recfuse.llm.generators import GenerationError, LocalGenerator, generator_from_option
from recfuse.serve import sync
from recfuse.serve.engine import (
    Batcher,
    Engine,
    EngineError,
    Job,
    ModelLoadError,
    SharedLock,
    encode,
    load_engine,
    text_encoder,
)
from recfuse.serve.metrics import Metrics
from recfuse.serve.schemas import EventIn, ItemIn, timestamp_problem
from recfuse.serve.state import LiveState, Snapshot
from recfuse.serve.store import DEFAULT_URL, Event, EventStore, ItemRecord
from recfuse.serve.sync import Listener, PgSnapshot, new_origin
from recfuse.serve.words import Phraser

log = logging.getLogger(__name__)

Rejected = tuple[str | None, str]
"""An event refused before it reached the store: its id (``None`` when unusable) and the reason."""


@dataclass
class ServeConfig:
    """Everything ``recfuse serve`` can set.

    ``admin_key`` / ``api_key`` default to ``RECFUSE_ADMIN_KEY`` /
    ``RECFUSE_API_KEY`` from the environment; ``llm`` (who phrases
    ``explain=text`` and the profile) to ``RECFUSE_LLM_URL`` / ``RECFUSE_LLM``,
    else the templates.

    Examples
    --------
    >>> ServeConfig(Path("models/ml-100k-fusion"), db="sqlite:///events.db").max_batch
    64
    """

    model_dir: Path
    db: str = DEFAULT_URL
    table_prefix: str = ""
    admin_key: str | None = None
    api_key: str | None = None
    preload_text: bool = True
    threads: int | None = None  # torch threads; None leaves torch's setting alone
    max_batch: int = 64
    max_wait_ms: float = 0.0
    seed: bool = True
    switch_interval_ms: float = 1.0  # GIL switch interval (Python: 5): how long a thread waits for another to yield
    user_cache: int = 100_000  # user vectors kept between requests (0: none)
    # Who phrases explain=text and the profile: as `recfuse explain --llm` (None: RECFUSE_LLM_URL / RECFUSE_LLM,
    # else the templates); seconds one request may spend on it; generations in flight at most.
    llm: str | None = None
    llm_timeout: float = 10.0
    llm_concurrency: int = 4
    # On a PostgreSQL store, keep this process coherent with every other `recfuse serve` on the same store
    # (LISTEN/NOTIFY, recfuse.serve.sync); SQLite serves one process and ignores it.
    sync: bool = True
    # How the top-k items are found: "auto" (exact below recfuse.serve.index.EXACT_BELOW items, an HNSW
    # graph above), "exact" or "hnsw" (recfuse.serve.index).
    index: str = "auto"

    def __post_init__(self) -> None:
        self.admin_key = self.admin_key if self.admin_key is not None else (os.environ.get("RECFUSE_ADMIN_KEY") or None)
        self.api_key = self.api_key if self.api_key is not None else (os.environ.get("RECFUSE_API_KEY") or None)

    def to_json(self) -> str:
        """This configuration as JSON, keys left out (a worker process reads them from its environment).

        >>> ServeConfig.from_json(ServeConfig(Path("m"), admin_key="k").to_json()).admin_key is None
        True
        """
        import json

        fields = {k: v for k, v in vars(self).items() if k not in ("admin_key", "api_key")}
        return json.dumps({**fields, "model_dir": str(self.model_dir)})

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        import json

        fields = json.loads(text)
        return cls(**{**fields, "model_dir": Path(fields["model_dir"])})


def settle_heap() -> None:
    """Collect garbage, then move every object alive to the collector's permanent generation.

    A loaded service holds some 250,000 tracked objects (the model, torch, the web stack); a full
    collection walks all of them, about 0.1 s on one core, and every request in flight waits that long.
    Frozen (``gc.freeze``), they are never walked again: collections see only what requests allocate.
    Called once the service has loaded and after each model swap (it thaws first, so an old model's
    objects can be collected).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _preload_text() -> None:
    """Load the text encoder in the background (the first query then does not wait) and settle the heap."""
    text_encoder()
    settle_heap()


class Service:
    """Store + live state + engine + batcher + phraser (words, :mod:`recfuse.serve.words`); what the routes talk to.

    Building one migrates the store, loads the model directory, seeds an empty
    store with the model's training log and loads every user's history into
    memory; :meth:`close` releases the batcher and the database.

    Parameters
    ----------
    config
        What to load and how to serve it.

    Examples
    --------
    >>> service = Service(ServeConfig(Path("models/ml-100k-fusion"), db="sqlite://"))  # doctest: +SKIP
    >>> service.engine.version  # doctest: +SKIP
    1
    """

    def __init__(self, config: ServeConfig) -> None:
        import torch

        self.config = config
        self.metrics = Metrics()
        generator = generator_from_option(config.llm)  # once; a bad setting stops the start before anything loads
        self.phraser = Phraser(generator, config.llm_timeout, config.llm_concurrency, self.metrics)
        if isinstance(generator, LocalGenerator):
            threading.Thread(target=_load_generator, args=(generator,), name="recfuse-llm-preload", daemon=True).start()
        if config.threads is not None:
            torch.set_num_threads(max(1, config.threads))
        # The batcher thread and the HTTP event loop share one interpreter; the GIL switch interval
        # decides how long one may hold it while the other waits.
        sys.setswitchinterval(config.switch_interval_ms / 1000)
        self.store = EventStore(config.db, config.table_prefix)
        self.schema_version = self.store.migrate()
        self.listener: Listener | None = None
        if config.sync and self.store.dialect == "postgresql":
            self.store.enable_sync(new_origin())  # from here on, every write is announced to other replicas
        self.engine = load_engine(config.model_dir, version=1, cache_size=config.user_cache,
                                  erased=self.store.erased_users(), index=config.index)
        if config.seed:
            self.store.seed(_seed_events(self.engine.bundle), source=str(config.model_dir))
        if self.store.channel is not None:  # listen before loading: nothing committed in between is missed
            self.listener = Listener(config.db, self.store.channel, self.store.origin)
        self._replay_items(self.engine)
        self.state, snapshot = self._load_state()
        self.batcher = Batcher(config.max_batch, config.max_wait_ms / 1000)
        self._reload_lock = threading.Lock()
        self._writes = SharedLock()  # ingests share it; an erasure takes it alone
        m = self.metrics
        m.gauges["recfuse_events_in_memory"] = lambda: self.state.n_events
        m.gauges["recfuse_users"] = lambda: self.state.n_users
        m.gauges["recfuse_items"] = lambda: self.engine.n_items
        m.gauges["recfuse_model_version"] = lambda: self.engine.version
        m.gauges["recfuse_model_batches"] = lambda: self.batcher.batches
        m.gauges["recfuse_model_batched_requests"] = lambda: self.batcher.jobs
        m.gauges["recfuse_user_cache_hits"] = lambda: self.engine.cache_hits
        m.gauges["recfuse_user_cache_misses"] = lambda: self.engine.cache_misses
        if self.listener is not None:
            listener = self.listener
            m.gauges["recfuse_sync_notices_applied"] = lambda: listener.applied
            m.gauges["recfuse_sync_notices_failed"] = lambda: listener.failed
            m.gauges["recfuse_sync_resyncs"] = lambda: listener.resyncs
            m.gauges["recfuse_sync_last_lag_seconds"] = lambda: listener.last_lag
            listener.start(self._apply_notice, snapshot, self._resync)
        settle_heap()
        if config.preload_text and self.engine.text_vectors is not None:
            threading.Thread(target=_preload_text, name="recfuse-text-preload", daemon=True).start()

    def _load_state(self) -> tuple[LiveState, PgSnapshot | None]:
        """Every user's history from the store, read in one snapshot; returns the state and, on
        PostgreSQL, that snapshot (which write transactions it saw)."""
        state = LiveState()

        def consume(chunk: list[tuple[Any, ...]], erased: dict[str, float]) -> None:
            # An event received before its user's erasure (a write that raced the DELETE) stays out.
            state.add((u, i, ts, r) for u, i, ts, r, _, at in chunk if not (u in erased and at <= erased[u]))

        snapshot, erased = self.store.read_live(consume)
        self._erased = dict(erased)
        return state, snapshot

    # ---------------------------------------------------------------- replicas
    def _resync(self) -> PgSnapshot | None:
        """Reload the live state from the store (after the listening connection was lost) and swap it in."""
        state, snapshot = self._load_state()
        self.state = state  # its stamps are all new, so no cached user vector of the old state is reused
        return snapshot

    def _apply_notice(self, kind: str, values: list[Any]) -> None:
        """Apply what another replica did (:mod:`recfuse.serve.sync`) to this process's state."""
        if kind == sync.EVENTS:
            erased = self._erased
            self.state.add((u, i, ts, r) for u, i, ts, r, at in values if not (u in erased and at <= erased[u]))
            self.metrics.inc("recfuse_sync_events_total", len(values))
        elif kind == sync.ERASED:
            for user, at in values:
                with self._writes.exclusive():
                    self._erased[user] = max(at, self._erased.get(user, at))
                    self.state.remove(user)
                    self.engine.forget(user, self.state.stamp)
        elif kind == sync.ITEMS:
            engine = self.engine
            records = [r for r in self.store.load_items(values) if r.vector is not None]
            if records and engine.can_add:
                engine.add_items(records)
        elif kind == sync.RELOAD:
            threading.Thread(target=self._reload_from_notice, args=(values[0],), name="recfuse-sync-reload",
                             daemon=True).start()

    def _reload_from_notice(self, model_dir: str) -> None:
        try:
            self.reload(model_dir, announce=False)
            log.info("reloaded the model another replica loaded")
        except ModelLoadError as e:
            log.error("another replica loaded a model this one cannot: %s; the loaded model goes on serving", e)

    def _replay_items(self, engine: Engine) -> None:
        """Give ``engine`` the items stored through the API (a fresh or reloaded model lacks them)."""
        records = [r for r in self.store.load_items() if r.vector is not None]
        if records and engine.can_add:
            engine.add_items(records)

    def close(self) -> None:
        """Stop the batcher and the replica listener, and release the database."""
        if self.listener is not None:
            self.listener.close()
        self.batcher.close()
        self.store.close()

    # ---------------------------------------------------------------- model
    def reload(self, model_dir: str | None, announce: bool = True) -> Engine:
        """Load ``model_dir`` (default: the loaded one, re-read) and swap it in; returns the new engine.

        ``announce``: tell the other replicas to load it too (they read it at the same path).

        Raises
        ------
        recfuse.serve.engine.ModelLoadError
            The directory cannot be served; the loaded model goes on serving.
        """
        path = Path(model_dir) if model_dir else Path(self.engine.path)
        with self._reload_lock:
            engine = load_engine(path, version=self.engine.version + 1, cache_size=self.config.user_cache,
                                 erased=self.store.erased_users(), index=self.config.index)
            self._replay_items(engine)
            self.engine = engine  # one reference swap: in-flight jobs finish on the engine they started with
        settle_heap()
        self.metrics.inc("recfuse_model_reloads_total")
        if announce:
            self.store.announce(sync.RELOAD, [str(path.absolute())])
        return engine

    async def rank(self, engine: Engine, hist: Snapshot, k: int, exclude: bool, explain: bool,
                   now: float | None, user: str | None = None) -> dict[str, Any]:
        """Top ``k`` for one history on ``engine``: from the user cache, else through the batcher.

        Returns the engine's answer: ``items`` and ``scores`` (best first), ``gate``, and
        ``explanations`` when ``explain``.
        """
        job = Job(hist, k, exclude, explain, now, engine, user)
        hit = engine.try_cached(job)  # a known user with nothing new: answered here, no thread hand-off
        if hit is not None:
            return hit
        return await asyncio.wrap_future(self.batcher.submit(job))

    # ---------------------------------------------------------------- writes
    def ingest(self, events: Sequence[EventIn | Rejected], now: float | None = None) -> dict[str, Any]:
        """Store ``events`` durably, add the new ones to the live state; the ``POST /v1/events`` answer.

        Blocking (the store's commit): call it from a worker thread.  Entries
        that are :data:`Rejected` already, events outside the timestamp window
        (:func:`~recfuse.serve.schemas.timestamp_problem`, at server time
        ``now``) and events naming an item the engine does not know are
        rejected; the others are committed in one transaction before this
        returns.  Each event's status is ``stored``, ``duplicate`` (its id was
        stored before, or earlier in this batch) or ``rejected`` with a reason.
        """
        now = time.time() if now is None else now
        engine = self.engine
        results: list[dict[str, Any]] = []
        accepted: list[Event] = []
        for ev in events:
            if isinstance(ev, tuple):
                results.append({"event_id": ev[0], "status": "rejected", "reason": ev[1]})
            elif (problem := timestamp_problem(ev.timestamp, now)) is not None:
                results.append({"event_id": ev.event_id, "status": "rejected", "reason": problem})
            elif ev.item_id not in engine.items:
                results.append({"event_id": ev.event_id, "status": "rejected",
                                "reason": f"unknown item_id {ev.item_id!r} (add it first with POST /v1/items)"})
            else:
                accepted.append(Event(ev.event_id, ev.user_id, ev.item_id, ev.timestamp, ev.type, ev.rating))
                results.append({"event_id": ev.event_id, "status": None})
        with self._writes.shared():  # an erasure waits for this batch to be in the store and the live state
            added = self.store.add_events(accepted)  # committed when this returns
            stored = set(added.stored)
            fresh = set(stored)
            first: list[tuple[str, str, float, float | None]] = []
            for a in accepted:  # the first copy of each newly stored id (a batch may repeat one)
                if a.event_id in fresh:
                    fresh.discard(a.event_id)
                    first.append((a.user_id, a.item_id, a.timestamp, a.rating))
            self.state.add(first)
        n_stored = n_dup = 0
        for r in results:
            if r["status"] is None:
                if r["event_id"] in stored:
                    r["status"] = "stored"
                    stored.discard(r["event_id"])  # a second copy in the same batch is a duplicate
                    n_stored += 1
                else:
                    r["status"] = "duplicate"
                    n_dup += 1
        n_rej = len(results) - n_stored - n_dup
        self.metrics.inc("recfuse_events_stored_total", n_stored)
        self.metrics.inc("recfuse_events_duplicate_total", n_dup)
        self.metrics.inc("recfuse_events_rejected_total", n_rej)
        return {"stored": n_stored, "duplicates": n_dup, "rejected": n_rej, "results": results}

    # ---------------------------------------------------------------- privacy
    def user_events(self, user_id: str) -> list[dict[str, Any]]:
        """Everything the store holds about ``user_id``: their events, oldest first (blocking)."""
        return self.store.user_events(user_id)

    def erase_user(self, user_id: str) -> int:
        """Erase ``user_id``: their events leave the store (one transaction, the erasure recorded with
        it), the live state, the engine's cached vectors and its map to their learned vector.

        Blocking: call it from a worker thread.  Returns how many stored events were deleted.  The
        log records that an erasure happened and its size, never whose.
        """
        with self._reload_lock, self._writes.exclusive():
            n_db = self.store.erase_user(user_id)
            self._erased[user_id] = time.time()
            n_mem = self.state.remove(user_id)
            self.engine.forget(user_id, self.state.stamp)
        self.metrics.inc("recfuse_users_erased_total")
        log.info("erased one user's data: %d stored events, %d in memory", n_db, n_mem)
        return n_db

    async def add_items(self, items: Sequence[ItemIn]) -> tuple[list[str], list[str]]:
        """Encode ``items``' text, store them, then add or update them in the engine.

        Returns ``(added, updated)`` external ids.  Stored before the engine
        sees them, so a restart or reload keeps them.

        Raises
        ------
        EngineError
            The loaded model cannot take new items.
        """
        engine = self.engine
        if not engine.can_add:
            raise EngineError(f"model {engine.model.name!r} cannot take new items (needs a fusion model trained with text)")
        items = list({it.item_id: it for it in items}.values())  # a repeated id: the last copy wins
        vectors = await run_in_threadpool(encode, [it.text for it in items])
        records = [ItemRecord(it.item_id, it.text, it.title, it.genres, v) for it, v in zip(items, vectors, strict=True)]
        await run_in_threadpool(self.store.upsert_items, records)  # durable first
        added, updated = await run_in_threadpool(self.engine.add_items, records)  # the engine serving now
        self.metrics.inc("recfuse_items_added_total", len(records))
        return added, updated


def prepare_store(config: ServeConfig) -> None:
    """Create or migrate the store and seed it with the model's training log if it is empty: what each
    service does on start, done once before several replica processes start together."""
    store = EventStore(config.db, config.table_prefix)
    try:
        store.migrate()
        if config.seed and store.get_meta("seeded_from") is None:
            store.seed(_seed_events(Bundle.load(config.model_dir)), source=str(config.model_dir))
    finally:
        store.close()


def _load_generator(generator: LocalGenerator) -> None:
    """Load the local LLM's weights now rather than on the first request that asks for words."""
    try:
        generator.load()
    except GenerationError as e:
        log.warning("text generator %s cannot load (%s): explanations in words will be templates", generator.name, e)


def _seed_events(bundle: Bundle) -> Iterator[Event]:
    """The model's training log as store events, with deterministic ids ``seed-<row>``."""
    ev = bundle.events
    has_rating = "rating" in ev.columns
    cols = [ev["user_id"].to_list(), ev["item_id"].to_list(), ev["timestamp"].to_list()]
    ratings = ev["rating"].to_list() if has_rating else [None] * ev.height
    for n, (u, i, t, r) in enumerate(zip(*cols, ratings, strict=True)):
        ok = r is not None and not (isinstance(r, float) and math.isnan(r))
        yield Event(f"seed-{n}", str(u), str(i), float(t), "rating" if ok else "view", float(r) if ok else None)


# async: FastAPI runs a plain `def` dependency in its thread pool, a hop that costs more than the lookup.
async def get_service(request: Request) -> Service:
    """The running service of the app that received ``request`` (built in the app's lifespan)."""
    return request.app.state.service  # type: ignore[no-any-return]


ServiceDep = Annotated[Service, Depends(get_service)]
"""Route parameter type that receives the running :class:`Service`."""
