"""The store's schema versioning and idempotence, on SQLite and PostgreSQL; the serving engine against the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import torch

pytest.importorskip("fastapi")

from recfuse.bundle import Bundle
from recfuse.data.split import Queries
from recfuse.serve.engine import Batcher, Engine, Job
from recfuse.serve.state import LiveState, Snapshot
from recfuse.serve.store import SCHEMA_VERSION, Event, EventStore, StoreError


def test_schema_is_created_with_a_version_and_old_ones_are_migrated(store_db: tuple[str, str]) -> None:
    url, prefix = store_db
    old = EventStore(url, prefix)
    assert old.schema_version() == 0
    assert old.migrate(target=1) == 1  # a database written by the first release
    old.add_events([Event("e1", "u", "i", 1.0)])
    assert not sa.inspect(old.engine).has_table(f"{prefix}meta")
    old.close()
    store = EventStore(url, prefix)
    assert store.migrate() == SCHEMA_VERSION == 3
    assert store.event_ids() == ["e1"]  # data kept
    store.set_meta("k", "v")
    assert store.get_meta("k") == "v"
    with store.engine.connect() as conn:
        versions = conn.execute(sa.select(store.version_table.c.version)).scalars().all()
    assert sorted(versions) == [1, 2, 3]
    assert store.migrate() == SCHEMA_VERSION  # idempotent
    with store.engine.begin() as conn:
        conn.execute(sa.insert(store.version_table).values(version=99, applied_at=0.0))
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        store.migrate()
    store.close()


def test_add_events_is_idempotent_and_seed_runs_once(store_db: tuple[str, str]) -> None:
    store = EventStore(*store_db)
    store.migrate()
    r = store.add_events([Event("a", "u", "i", 1.0), Event("b", "u", "i", 2.0, rating=4.0), Event("a", "u", "x", 3.0)])
    assert r.stored == ["a", "b"] and r.duplicates == ["a"]
    assert store.add_events([Event("b", "u", "i", 2.0)]).stored == []
    assert store.seed([Event("seed-0", "s", "i", 0.0)], source="m") == 1
    assert store.seed([Event("seed-1", "s", "i", 0.0)], source="m") == 0  # seeded already
    rows = [r for chunk in store.iter_events(chunk=2) for r in chunk]
    assert [(u, i, t, rt, k) for u, i, t, rt, k in rows][:2] == [("u", "i", 1.0, None, "view"), ("u", "i", 2.0, 4.0, "view")]
    assert store.count_events() == 3
    store.close()


def test_bad_database_url_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="not a database URL"):
        EventStore("not a url")
    with pytest.raises(StoreError, match="backend 'mysql' is not supported"):
        EventStore("mysql://x@localhost/db")


def _engine_and_state(model_dir: Path) -> tuple[Bundle, Engine, LiveState]:
    """The model directory loaded as the service does: an engine and every user's history in memory."""
    bundle = Bundle.load(model_dir)
    state = LiveState()
    ev = bundle.events
    state.add(zip(ev["user_id"], ev["item_id"], ev["timestamp"], ev["rating"], strict=True))
    return bundle, Engine(bundle, model_dir), state


def test_engine_scores_like_the_model_and_batches_agree_with_single_requests(genre_model: Path) -> None:
    bundle, engine, state = _engine_and_state(genre_model)
    ev = bundle.events
    users = [f"u{i}" for i in range(12)]
    now = float(ev["timestamp"].max()) + 3600
    snaps = [state.snapshot(u, engine.items, engine.token) for u in users]
    assert all(s is not None for s in snaps)
    jobs = [Job(s, 10, True, False, now, engine) for s in snaps if s is not None]
    batched = engine.run(jobs)
    # the model's own path on the same queries
    q = Queries(
        user=np.full(len(jobs), -1), indptr=np.concatenate([[0], np.cumsum([len(s) for s in snaps if s])]),
        items=np.concatenate([s.items for s in snaps if s]), timestamps=np.concatenate([s.timestamps for s in snaps if s]),
        ratings=np.concatenate([s.ratings for s in snaps if s]), time=np.full(len(jobs), now),
    )
    top, scores = bundle.model.recommend(q, 10)
    gates = bundle.model.gates(q)  # type: ignore[attr-defined]
    for b, res in enumerate(batched):
        assert res["items"] == top[b].tolist()
        np.testing.assert_allclose(res["scores"], scores[b], rtol=1e-4, atol=1e-4)
        assert res["gate"] == pytest.approx(float(gates[b]), abs=1e-5)
    # through the batcher, concurrently submitted, the answers are the same
    batcher = Batcher(max_batch=5)
    futures = [batcher.submit(Job(j.history, 10, True, False, now, engine)) for j in jobs]
    assert [f.result(30)["items"] for f in futures] == [r["items"] for r in batched]
    batcher.close()
    assert batcher.jobs == len(jobs)


def test_live_state_keeps_time_order_and_translates_per_id_map() -> None:
    from recfuse.data.dataset import IdMap

    s = LiveState()
    s.add([("u", "a", 5.0, None), ("u", "b", 7.0, 3.0)])
    m = IdMap(["a", "b", "c"])
    first = s.snapshot("u", m, token=1)
    s.add([("u", "c", 6.0, None)])  # late event goes in time order
    snap = s.snapshot("u", m, token=1)
    assert isinstance(first, Snapshot) and snap is not None
    assert snap.items.tolist() == [0, 2, 1] and snap.timestamps.tolist() == [5.0, 6.0, 7.0]
    other = s.snapshot("u", IdMap(["b", "a"]), token=2)  # another model's ids; "c" unknown there: dropped
    assert other is not None and other.items.tolist() == [1, 0]
    assert s.snapshot("nobody", m) is None


def test_engine_caches_user_vectors_until_the_history_or_the_item_table_changes(genre_model: Path) -> None:
    bundle, engine, state = _engine_and_state(genre_model)
    ev = bundle.events
    now = float(ev["timestamp"].max()) + 3600

    def ask(user: str, at: float = now) -> dict:
        snap = state.snapshot(user, engine.items, engine.token)
        assert snap is not None
        return engine.run([Job(snap, 10, True, False, at, engine, user)])[0]

    first = ask("u0")
    assert (engine.cache_hits, engine.cache_misses) == (0, 1)
    again = ask("u0")
    assert (engine.cache_hits, engine.cache_misses) == (1, 1)
    assert again["items"] == first["items"] and again["gate"] == pytest.approx(first["gate"])
    np.testing.assert_allclose(again["scores"], first["scores"], rtol=1e-6)
    # Another log2 bucket of time since the last event: recomputed (the gate reads that gap).
    ask("u0", now + 30 * 86400)
    assert engine.cache_misses == 2
    # A new event: the next answer is computed from the new history, not served from the cache.
    new_item = next(i for i in engine.items.external_ids if i not in set(state._users["u0"].items))
    state.add([("u0", new_item, now, None)])
    after = ask("u0", now + 60)
    assert engine.cache_misses == 3 and engine.items.index(new_item) not in after["items"]
    # Without the cache every request runs the model, with the same answer.
    plain = Engine(bundle, genre_model, cache_size=0)
    snap = state.snapshot("u0", plain.items, plain.token)
    assert snap is not None
    res = plain.run([Job(snap, 10, True, False, now + 60, plain, "u0")])[0]
    assert res["items"] == after["items"] and plain.cache_hits == 0


def test_try_cached_answers_a_repeat_like_the_batcher_and_never_waits_for_the_engine(genre_model: Path) -> None:
    import threading

    bundle, engine, state = _engine_and_state(genre_model)
    now = float(bundle.events["timestamp"].max()) + 3600
    snap = state.snapshot("u1", engine.items, engine.token)
    assert snap is not None
    job = lambda explain=False: Job(snap, 10, True, explain, now, engine, "u1")
    assert engine.try_cached(job()) is None  # nothing cached yet: the caller goes to the batcher
    ran = engine.run([job()])[0]
    hit = engine.try_cached(job())
    assert hit is not None and hit["items"] == ran["items"] and hit["gate"] == pytest.approx(ran["gate"])
    np.testing.assert_allclose(hit["scores"], ran["scores"], rtol=1e-6)
    assert not set(hit["items"]) & set(snap.items.tolist())  # seen items still left out
    assert (engine.cache_hits, engine.cache_misses) == (1, 1)
    assert engine.try_cached(job(explain=True)) is None  # explanations need the backward pass
    # While another thread holds the engine alone (an item update, an erasure), the fast path steps aside.
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with engine.lock:
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    assert engine.try_cached(job()) is None
    release.set()
    t.join()
    assert engine.try_cached(job()) is not None


def test_engine_adds_the_calibrated_trend_term_on_its_fast_path(tmp_path: Path) -> None:
    """A calibrated trend model keeps the cached fast path: the engine adds the term at each request's time,
    on a fresh forward pass and on a cache hit alike, and its scores are the model's own."""
    from recfuse.serve.testing import fit_genre_bundle

    model_dir = fit_genre_bundle(tmp_path / "trend", epochs=1, trend_days=30)
    bundle = Bundle.load(model_dir)
    bundle.model.module.trend_alpha.fill_(0.7)  # type: ignore[attr-defined]  # whatever valid chose: make it count
    state = LiveState()
    ev = bundle.events
    state.add(zip(ev["user_id"], ev["item_id"], ev["timestamp"], ev["rating"], strict=True))
    engine = Engine(bundle, model_dir)
    assert engine.fast
    start, end = float(ev["timestamp"].min()), float(ev["timestamp"].max())
    users = [f"u{i}" for i in range(5)]
    snaps = [state.snapshot(u, engine.items, engine.token) for u in users]
    for now in (start + (end - start) / 2, end + 3600):  # two different trend rows
        jobs = [Job(s, 10, True, False, now, engine, user=u) for s, u in zip(snaps, users, strict=True)]  # type: ignore[arg-type]
        got = engine.run(jobs)
        q = queries_of(snaps, now, [bundle.users.get(u) for u in users])  # known users: their own user vectors
        top, scores = bundle.model.recommend(q, 10)
        for b, res in enumerate(got):
            assert res["items"] == top[b].tolist()
            np.testing.assert_allclose(res["scores"], scores[b], rtol=1e-4, atol=1e-4)
        hits = engine.cache_hits
        again = engine.try_cached(Job(snaps[0], 10, True, False, now, engine, user=users[0]))  # type: ignore[arg-type]
        assert again is not None and engine.cache_hits == hits + 1  # no forward pass; the term still added
        assert again["items"] == top[0].tolist()
        np.testing.assert_allclose(again["scores"], scores[0], rtol=1e-4, atol=1e-4)
    bundle.model.module.trend_alpha.fill_(0.0)  # type: ignore[attr-defined]
    assert not np.allclose(bundle.model.recommend(q, 10)[1], scores)  # the term did move the scores
    table = bundle.model.module.trend_table.clone()  # type: ignore[attr-defined]
    text = bundle.model.module.text[1:].cpu().numpy()  # type: ignore[attr-defined]
    warm = bundle.model.module.warm[1:].cpu().numpy()  # type: ignore[attr-defined]
    new = text[3] + 0.01  # a new item that reads like item 3
    bundle.model.add_items(new[None])  # type: ignore[attr-defined,union-attr]
    grown = bundle.model.module.trend_table  # type: ignore[attr-defined]
    assert grown.shape[1] == table.shape[1] + 1 and torch.equal(grown[:, :-1], table)
    # No events yet: each row's mean over the warm items' events (the trend of a random recent event's item).
    n = torch.expm1(table[:, torch.from_numpy(warm)].double())
    want = (n * torch.log1p(n)).sum(dim=1) / n.sum(dim=1).clamp_min(1e-12)
    torch.testing.assert_close(grown[:, -1].double(), want, rtol=1e-5, atol=1e-6)
    assert (grown[:, -1] > 0).any()


def queries_of(snaps: list, now: float, users: list[int] | None = None) -> Queries:  # type: ignore[type-arg]
    """The model-side queries of live snapshots, all at request time ``now``; ``users``: the model's rows of
    known users (per-user vectors), default the unknown user for all."""
    assert all(s is not None for s in snaps)
    return Queries(
        user=np.full(len(snaps), -1) if users is None else np.asarray(users, np.int64), indptr=np.concatenate([[0], np.cumsum([len(s) for s in snaps])]),
        items=np.concatenate([s.items for s in snaps]), timestamps=np.concatenate([s.timestamps for s in snaps]),
        ratings=np.concatenate([s.ratings for s in snaps]), time=np.full(len(snaps), now),
    )


def test_cache_hits_do_not_wait_for_a_batch_in_flight(genre_model: Path) -> None:
    """Issue 27, defect 7: a forward pass held the engine's lock, so every cache hit meanwhile queued
    behind it for the batcher.  Scoring now shares the engine; only changing it takes it alone."""
    import threading

    bundle, engine, state = _engine_and_state(genre_model)
    now = float(bundle.events["timestamp"].max()) + 3600
    snap = state.snapshot("u2", engine.items, engine.token)
    assert snap is not None
    engine.run([Job(snap, 10, True, False, now, engine, "u2")])  # cached now
    in_batch, release = threading.Event(), threading.Event()

    def batch() -> None:
        with engine.lock.shared():  # what Engine.run holds while it scores
            in_batch.set()
            release.wait(10)

    t = threading.Thread(target=batch)
    t.start()
    in_batch.wait(10)
    try:
        assert engine.try_cached(Job(snap, 10, True, False, now, engine, "u2")) is not None
    finally:
        release.set()
        t.join()
