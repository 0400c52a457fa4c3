"""RECFUSE_API_KEY guards the event and recommendation routes; with no admin key configured, admin routes are off.

Real server over HTTP on loopback (uvicorn in a thread), SQLite file.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")

from recfuse.serve.app import ServeConfig, create_app
from recfuse.serve.store import EventStore
from recfuse.serve.testing import ServerThread

KEY = {"X-API-Key": "api-secret"}


@pytest.fixture(scope="module")
def guarded(genre_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, EventStore]]:
    db = f"sqlite:///{tmp_path_factory.mktemp('auth') / 'events.db'}"
    config = ServeConfig(genre_model, db=db, admin_key="", api_key="api-secret", preload_text=False)
    server = ServerThread(create_app(config)).start()
    store = EventStore(db)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http, store
    server.stop()
    store.close()


def test_recommend_and_event_routes_need_the_api_key(guarded: tuple[httpx.Client, EventStore]) -> None:
    http, store = guarded
    ev = {"event_id": "auth-1", "user_id": "u1", "item_id": "c1", "timestamp": time.time(), "type": "view"}
    assert http.post("/v1/events", json=ev).status_code == 401
    assert http.post("/v1/events", json=ev, headers={"X-API-Key": "nope"}).status_code == 403
    assert "auth-1" not in store.event_ids()  # refused requests change nothing
    assert http.post("/v1/events", json=ev, headers=KEY).json()["stored"] == 1
    assert http.post("/v1/events", json=ev, headers={"Authorization": "Bearer api-secret"}).json()["duplicates"] == 1
    for method, path, body in [("GET", "/v1/users/u1/recommendations", None), ("GET", "/v1/items/c1/similar", None),
                               ("POST", "/v1/recommendations", {"recent_items": ["c1"]})]:
        assert http.request(method, path, json=body).status_code == 401, path
        assert http.request(method, path, json=body, headers={"X-API-Key": "nope"}).status_code == 403, path
        assert http.request(method, path, json=body, headers=KEY).status_code == 200, path
    assert http.get("/health").status_code == 200 and http.get("/metrics").status_code == 200  # open


def test_admin_routes_are_off_without_an_admin_key(guarded: tuple[httpx.Client, EventStore]) -> None:
    http, store = guarded
    body = {"items": [{"item_id": "off-1", "text": "A new item"}]}
    for headers in ({}, KEY, {"X-API-Key": "anything"}):
        r = http.post("/v1/items", json=body, headers=headers)
        assert r.status_code == 403 and "RECFUSE_ADMIN_KEY" in r.json()["detail"]
        assert http.post("/v1/admin/reload", headers=headers).status_code == 403
    assert store.load_items() == []
    assert http.get("/v1/items/off-1/similar", headers=KEY).status_code == 404
    assert http.get("/health").json()["model"]["version"] == 1


def test_keys_are_checked_before_the_body_is_read(guarded: tuple[httpx.Client, EventStore]) -> None:
    """Issue 27, defect 8: an unauthenticated body that is not even UTF-8 gets 401 (403 with a wrong key),
    not the 4xx its parsing would give."""
    http, _ = guarded
    junk = {"content": b"\xff\xfe\x00 not json", "headers": {"content-type": "application/json"}}
    for path in ("/v1/events", "/v1/recommendations"):
        assert http.post(path, **junk).status_code == 401, path  # type: ignore[arg-type]
        assert http.post(path, content=junk["content"], headers={**junk["headers"], "X-API-Key": "nope"}).status_code == 403  # type: ignore[dict-item]
        assert http.post(path, content=junk["content"], headers={**junk["headers"], **KEY}).status_code == 422  # type: ignore[dict-item]
    assert http.get("/v1/users/u1/events").status_code == 401
    assert http.get("/v1/users/u1/events", headers=KEY).status_code == 200
