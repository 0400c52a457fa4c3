"""The service over real HTTP on loopback (uvicorn in a thread), once on a SQLite file and once on PostgreSQL.

Covers acceptance items 1 (real server, both stores), 2 (real-time shift and
gate), 5 (bad input, nothing accepted lost) and 6 (new item by text, no
retraining).  The model is the small fusion model of the ``genre_model``
fixture: four genres, users with a home genre who binge in sessions.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")

from recfuse.bundle import Bundle
from recfuse.serve.app import ServeConfig, create_app
from recfuse.serve.store import SCHEMA_VERSION, EventStore
from recfuse.serve.testing import GENRES, ServerThread, genre_of

ADMIN = {"X-API-Key": "adm-secret"}


class Api:
    """A running server, an HTTP client and a direct view of its store."""

    def __init__(self, url: str, store: EventStore, model: Path) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=60)
        self.store = store
        self.bundle = Bundle.load(model)
        self.acked: set[str] = set()  # every event id the server acknowledged in this module

    def post_events(self, events: list[dict[str, Any]] | dict[str, Any]) -> httpx.Response:
        body = {"events": events} if isinstance(events, list) else events
        r = self.http.post("/v1/events", json=body)
        if r.status_code == 200:
            self.acked |= {x["event_id"] for x in r.json()["results"] if x["status"] in ("stored", "duplicate")}
        return r

    def recs(self, user: str, **params: Any) -> dict[str, Any]:
        r = self.http.get(f"/v1/users/{user}/recommendations", params={"k": 10, **params})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def assert_nothing_lost(self) -> None:
        """Every acknowledged event is in the store exactly once."""
        counts = Counter(self.store.event_ids())
        missing = [e for e in self.acked if counts[e] != 1]
        assert not missing, f"acknowledged events not stored exactly once: {missing[:5]}"


def event(eid: str, user: str, item: str, ts: float | None = None, **kw: Any) -> dict[str, Any]:
    return {"event_id": eid, "user_id": user, "item_id": item, "timestamp": time.time() if ts is None else ts,
            "type": "view", **kw}


def share(recs: dict[str, Any], genre: str) -> float:
    return sum(it["genres"] == genre for it in recs["items"]) / len(recs["items"])


@pytest.fixture(scope="module")
def api(genre_model: Path, module_db: tuple[str, str]) -> Iterator[Api]:
    url, prefix = module_db
    config = ServeConfig(genre_model, db=url, table_prefix=prefix, admin_key="adm-secret", api_key="", preload_text=False)
    server = ServerThread(create_app(config)).start()
    store = EventStore(url, prefix)
    a = Api(server.url, store, genre_model)
    # a few events acknowledged up front, so every bad-input test can show they survive it
    r = a.post_events([event(f"base-{i}", "base-user", f"c{i}") for i in range(5)])
    assert r.status_code == 200 and r.json()["stored"] == 5
    yield a
    a.http.close()
    server.stop()
    store.close()


# ------------------------------------------------------------------ basics
def test_health_docs_and_schema_version(api: Api) -> None:
    h = api.http.get("/health").json()
    assert h["status"] == "ok" and h["model"]["model"] == "fusion" and h["store"]["schema_version"] == SCHEMA_VERSION
    assert api.store.schema_version() == SCHEMA_VERSION
    assert h["store"]["events"] == api.store.count_events()  # seeded from the model's log + live events
    assert api.http.get("/docs").status_code == 200
    paths = api.http.get("/openapi.json").json()["paths"]
    assert {"/v1/events", "/v1/users/{user_id}/recommendations", "/v1/recommendations", "/v1/items",
            "/v1/items/{item_id}/similar", "/v1/admin/reload"} <= set(paths)


def test_events_are_committed_before_the_answer_and_idempotent(api: Api) -> None:
    batch = [event(f"dur-{i}", "fresh-1", f"w{i}") for i in range(3)]
    r = api.post_events(batch)
    assert r.json()["stored"] == 3
    # a separate connection sees them at once: committed, not buffered
    other = EventStore(api.store.url, api.store.prefix)
    assert {"dur-0", "dur-1", "dur-2"} <= set(other.event_ids())
    other.close()
    again = api.post_events(batch).json()
    assert again["stored"] == 0 and again["duplicates"] == 3
    assert [x["status"] for x in again["results"]] == ["duplicate"] * 3
    rec = api.recs("fresh-1")
    assert rec["history_length"] == 3 and not rec["cold_start"]  # the new user's next request sees the events
    single = api.post_events(event("dur-single", "fresh-1", "w9", ts="2026-01-01T00:00:00Z", rating=4))
    assert single.json()["stored"] == 1
    api.assert_nothing_lost()


def test_unknown_user_gets_a_cold_start_answer(api: Api) -> None:
    rec = api.recs("never-seen-user", explain=True)
    assert rec["cold_start"] and len(rec["items"]) == 10 and rec["items"][0]["explanation"]["dimension"] == "popularity"


# ------------------------------------------------------------------ acceptance 2: real time
def _binge_users(bundle: Bundle, n: int) -> list[tuple[str, str]]:
    """Users whose last session was away from their home genre, with a third genre to binge on now."""
    ev = bundle.events
    out = []
    for u in range(40, 160):
        user = f"u{u}"
        last = genre_of(ev.filter(ev["user_id"] == user)["item_id"][-1])
        home = GENRES[u % len(GENRES)]
        if last != home:
            out.append((user, next(g for g in GENRES if g not in (home, last))))
        if len(out) == n:
            break
    return out


def test_live_events_shift_recommendations_and_raise_the_gate(api: Api) -> None:
    """Acceptance 2: after a burst of events in one genre, the top-10 share of that genre rises and the gate
    (short-term share) rises: the user is back after a month (long-term leads), then mid-binge (short-term)."""
    for user, genre in _binge_users(api.bundle, 3):
        before = api.recs(user, explain=True)
        seen = set(api.bundle.events.filter(api.bundle.events["user_id"] == user)["item_id"].to_list())
        items = [f"{genre[0].lower()}{n}" for n in range(30) if f"{genre[0].lower()}{n}" not in seen][:5]
        now = time.time()
        r = api.post_events([event(f"rt-{user}-{j}", user, it, now - 50 + 10 * j) for j, it in enumerate(items)])
        assert r.json()["stored"] == 5
        after = api.recs(user, explain=True)
        assert after["history_length"] == before["history_length"] + 5
        s0, s1 = share(before, genre), share(after, genre)
        print(f"{user} -> {genre}: share {s0:.1f} -> {s1:.1f}, gate {before['gate']:.3f} -> {after['gate']:.3f}")
        assert s1 > s0 and s1 >= 0.6
        assert after["gate"] > before["gate"]
        # the explanation names the new events as the reason
        why = {b["item_id"] for it in after["items"] for b in it["explanation"]["because"]}
        assert why & set(items)
        assert all(it["explanation"]["dimension"] in ("content", "rating", "recency") for it in after["items"])
        # asked as if the user came back a month later, the same history is scored with a month's gap
        later = api.recs(user, at=now + 30 * 86400)
        assert later["history_length"] == after["history_length"] and later["gate"] != after["gate"]


# ------------------------------------------------------------------ acceptance 6: new item by text
def test_new_item_by_text_is_similar_and_recommended_without_retraining(api: Api) -> None:
    crypts = ["h7", "h15", "h23"]  # "Crypt Story 1", "Crypt Night 1", "Crypt Town 1"
    r = api.http.post("/v1/items", headers=ADMIN, json={"items": [
        {"item_id": "h-new", "text": "Crypt Story 2. Genres: Horror.", "title": "Crypt Story 2", "genres": "Horror"}]})
    assert r.status_code == 200 and r.json()["added"] == ["h-new"], r.text
    for item in crypts:
        sim = api.http.get(f"/v1/items/{item}/similar", params={"k": 10}).json()
        assert "h-new" in [x["item_id"] for x in sim["items"]], (item, sim)
    # a user who likes these items (a fresh horror binge) gets it; a comedy binger does not
    now = time.time()
    api.post_events([event(f"nh-{j}", "horror-fan", it, now - 30 + j) for j, it in enumerate([*crypts, "h4", "h12"])])
    api.post_events([event(f"nc-{j}", "comedy-fan", f"c{j + 10}", now - 30 + j) for j in range(5)])
    # With no events it has no ID part, so the genre's warm items may rank above it; its text must put it
    # ahead of every item of another genre for the horror fan, and out of the comedy fan's list.
    fan = api.recs("horror-fan", k=30)["items"]
    other = [x["item_id"] for x in api.recs("comedy-fan", k=30)["items"]]
    ids = [x["item_id"] for x in fan]
    assert "h-new" in ids, ids
    assert all(x["genres"] == "Horror" for x in fan[: ids.index("h-new") + 1]), ids
    assert "h-new" not in other, other
    # events for the new item are accepted at once
    assert api.post_events([event("nh-new", "horror-fan", "h-new")]).json()["stored"] == 1
    api.assert_nothing_lost()


# ------------------------------------------------------------------ anonymous, similar
def test_anonymous_session_and_free_text_query(api: Api) -> None:
    q = api.http.post("/v1/recommendations", json={"query": "scary ghosts in a haunted house", "k": 5,
                                                   "explain": True}).json()
    assert all(it["genres"] == "Horror" for it in q["items"]), q
    assert q["items"][0]["explanation"]["query_similarity"] > 0
    plain = api.http.post("/v1/recommendations", json={"query": "scary ghosts in a haunted house", "k": 5}).json()
    assert "explanation" not in plain["items"][0] or plain["items"][0]["explanation"] is None  # off unless asked
    s = api.http.post("/v1/recommendations", json={"recent_items": ["w1", "w2", "w3", "nope"], "k": 10}).json()
    assert s["unknown_items"] == ["nope"] and share(s, "Western") >= 0.6 and s["gate"] is not None
    both = api.http.post("/v1/recommendations", json={"recent_items": ["w1", "w2"], "query": "love and romance", "k": 10})
    assert both.status_code == 200 and {"Western", "Romance"} & {it["genres"] for it in both.json()["items"]}
    bad = api.http.post("/v1/recommendations", json={"k": 5})
    assert bad.status_code == 422 and "recent_items or query" in bad.json()["message"]


def test_similar_items_by_model_vectors(api: Api) -> None:
    sim = api.http.get("/v1/items/c3/similar", params={"k": 10}).json()
    assert sum(x["genres"] == "Comedy" for x in sim["items"]) >= 7 and "c3" not in [x["item_id"] for x in sim["items"]]
    assert api.http.get("/v1/items/nope/similar").status_code == 404


# ------------------------------------------------------------------ acceptance 5: bad input
def test_admin_routes_need_the_admin_key_and_change_nothing_without_it(api: Api) -> None:
    body = {"items": [{"item_id": "sneaky", "text": "Sneaky item"}]}
    assert api.http.post("/v1/items", json=body).status_code == 401
    assert api.http.post("/v1/items", json=body, headers={"X-API-Key": "wrong"}).status_code == 403
    assert api.http.post("/v1/items", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 403
    version = api.http.get("/health").json()["model"]["version"]
    assert api.http.post("/v1/admin/reload").status_code == 401
    assert api.http.post("/v1/admin/reload", headers={"X-API-Key": "nope"}).status_code == 403
    assert api.http.get("/health").json()["model"]["version"] == version
    assert api.http.get("/v1/items/sneaky/similar").status_code == 404  # not added
    rej = api.post_events([event("sneaky-ev", "base-user", "sneaky")]).json()
    assert rej["results"][0]["status"] == "rejected"
    api.assert_nothing_lost()


def test_batch_over_10000_events_is_413_and_stores_nothing(api: Api) -> None:
    n0 = api.store.count_events()
    r = api.http.post("/v1/events", json={"events": [event(f"big-{i}", "big", "c1") for i in range(10_001)]})
    assert r.status_code == 413 and "10,000" in r.json()["detail"]
    assert api.store.count_events() == n0
    api.assert_nothing_lost()


def test_body_over_5mb_is_413(api: Api) -> None:
    n0 = api.store.count_events()
    blob = b'{"events": [' + b",".join([b'{"event_id":"x","user_id":"u","item_id":"c1","timestamp":1,"type":"view"}'] * 80_000) + b"]}"
    assert len(blob) > 5 * 2**20
    r = api.http.post("/v1/events", content=blob, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert api.store.count_events() == n0
    api.assert_nothing_lost()


def test_k_over_1000_is_422_naming_k(api: Api) -> None:
    r = api.http.get("/v1/users/u1/recommendations", params={"k": 1001})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "k"]
    r = api.http.post("/v1/recommendations", json={"recent_items": ["c1"], "k": 5000})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "k"]
    api.assert_nothing_lost()


def test_invalid_event_is_422_naming_the_field_and_stores_nothing_of_that_batch(api: Api) -> None:
    n0 = api.store.count_events()
    bad = [event("v-1", "val", "c1"), {k: v for k, v in event("v-2", "val", "c2").items() if k != "item_id"}]
    r = api.http.post("/v1/events", json={"events": bad})
    assert r.status_code == 422
    assert ["body", "events", 1, "item_id"] in [e["loc"] for e in r.json()["detail"]]
    assert "events.1.item_id" in r.json()["message"]
    r = api.http.post("/v1/events", json=event("v-3", "val", "c1", ts=-5))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "timestamp"]
    assert api.http.post("/v1/events", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    assert api.store.count_events() == n0
    api.assert_nothing_lost()


def test_unknown_item_is_rejected_with_a_reason_and_the_rest_kept(api: Api) -> None:
    r = api.post_events([event("ui-1", "mixed", "c1"), event("ui-2", "mixed", "no-such-item"), event("ui-3", "mixed", "c2")])
    body = r.json()
    assert r.status_code == 200 and body["stored"] == 2 and body["rejected"] == 1
    assert body["results"][1] == {"event_id": "ui-2", "status": "rejected",
                                  "reason": "unknown item_id 'no-such-item' (add it first with POST /v1/items)"}
    ids = set(api.store.event_ids())
    assert {"ui-1", "ui-3"} <= ids and "ui-2" not in ids
    assert api.recs("mixed")["history_length"] == 2
    api.assert_nothing_lost()


def test_duplicate_event_id_is_acknowledged_not_stored_twice(api: Api) -> None:
    first = api.post_events([event("dup-1", "dupper", "c1"), event("dup-2", "dupper", "c2")]).json()
    assert first["stored"] == 2
    # a retry (same ids, even with other fields) and a repeat inside one batch
    retry = api.post_events([event("dup-1", "dupper", "c5"), event("dup-3", "dupper", "c3"), event("dup-3", "dupper", "c3")]).json()
    assert [x["status"] for x in retry["results"]] == ["duplicate", "stored", "duplicate"]
    counts = Counter(api.store.event_ids())
    assert counts["dup-1"] == counts["dup-2"] == counts["dup-3"] == 1
    assert api.recs("dupper")["history_length"] == 3
    api.assert_nothing_lost()


# ------------------------------------------------------------------ reload, metrics
def test_reload_swaps_the_model_without_dropping_requests(api: Api, genre_model: Path) -> None:
    # An item added through the API before the reload (this test's own, so it runs alone too).
    r = api.http.post("/v1/items", headers=ADMIN, json={"items": [
        {"item_id": "r-new", "text": "Crypt Story 3. Genres: Horror.", "title": "Crypt Story 3", "genres": "Horror"}]})
    assert r.status_code == 200 and r.json()["added"] == ["r-new"], r.text
    version = api.http.get("/health").json()["model"]["version"]
    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=api.url, timeout=60) as c:
            while not stop.is_set():
                statuses.append(c.get("/v1/users/u3/recommendations", params={"k": 5}).status_code)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    r = api.http.post("/v1/admin/reload", headers=ADMIN, json={"model_dir": str(genre_model)})
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    assert r.status_code == 200 and r.json()["model"]["version"] == version + 1
    assert statuses and set(statuses) == {200}, Counter(statuses)
    # items added through the API survive the reload (replayed from the store)
    assert api.http.get("/v1/items/r-new/similar").status_code == 200
    bad = api.http.post("/v1/admin/reload", headers=ADMIN, json={"model_dir": "/no/such/dir"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "model_dir"]


def test_metrics_are_prometheus_text(api: Api) -> None:
    api.recs("u5")
    text = api.http.get("/metrics").text
    assert 'recfuse_http_requests_total{method="GET",route="/v1/users/{user_id}/recommendations",status="200"}' in text
    assert 'recfuse_http_request_duration_seconds_bucket{route="/v1/users/{user_id}/recommendations",le="+Inf"}' in text
    stored = next(float(line.split()[-1]) for line in text.splitlines() if line.startswith("recfuse_events_stored_total "))
    assert stored >= 5


def test_a_model_with_user_vectors_serves_each_known_user_their_own(tmp_path: Path) -> None:
    """Fusion with ``user_emb``: the service looks up a known user's training row, so its answer over
    HTTP is the model's own for that user, not the unknown user's (which a never-seen user gets)."""
    import numpy as np
    import polars as pl

    from recfuse.data.dataset import Interactions
    from recfuse.data.split import Queries
    from recfuse.models.fusion import Fusion

    rows = [(f"u{u}", i, float(t)) for u in range(24) for t, i in enumerate([*[f"f{t}" for t in range(6)], f"r{u % 4}"])]
    user, item, ts = zip(*rows, strict=True)
    data = Interactions.from_frame(pl.DataFrame({"user_id": user, "item_id": item, "timestamp": ts}), name="tiny")
    model = Fusion(embedding_size=16, max_len=6, long_len=6, dropout=0.0, attn_dropout=0.0, gate="long", user_emb=True,
                   user_swap=0.0, trend_days=0.0, epochs=30, learning_rate=1e-2, patience=30, progress=False).fit(data)
    path = Bundle.from_fit(model, data, {"split": "none"}).save(tmp_path / "m")
    server = ServerThread(create_app(ServeConfig(path, db=f"sqlite:///{tmp_path / 'events.db'}", api_key="",
                                                 preload_text=False))).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            got = http.get("/v1/users/u5/recommendations", params={"k": 5}).json()
            fresh = http.get("/v1/users/nobody/recommendations", params={"k": 5})
        now = time.time()
        hist = data.items.to_index([*[f"f{t}" for t in range(6)], "r1"])

        def own(u: int) -> np.ndarray:
            q = Queries(user=np.array([u]), indptr=np.array([0, 7]), items=hist, timestamps=np.arange(7.0), time=np.array([now]))
            return model.score(q)[0]

        served = {it["item_id"]: it["score"] for it in got["items"]}  # the 3 items u5 has not seen
        assert len(served) == 3
        ids = data.items.to_index(list(served))
        np.testing.assert_allclose(list(served.values()), own(int(data.users.index("u5")))[ids], rtol=1e-4, atol=1e-5)
        assert not np.allclose(list(served.values()), own(-1)[ids], atol=1e-3)  # not the unknown user's answer
        assert fresh.status_code == 200
    finally:
        server.stop()
