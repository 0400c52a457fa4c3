"""A user's data: ``GET /v1/users/{id}/events`` (access) and ``DELETE /v1/users/{id}`` (erasure),
over real HTTP, once on a SQLite file and once on PostgreSQL.

Erasure is checked everywhere the user's data lives: the store, the live state, the engine's cached
vectors and its map to the model's learned per-user vector (a training user is served as an unknown
user afterwards, also after a restart and a reload), a retrain from the store, the logs and
``/metrics``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")

from typer.testing import CliRunner

from recfuse.bundle import Bundle
from recfuse.cli import _register, app
from recfuse.data.eventdb import events_frame
from recfuse.serve.app import ServeConfig, create_app
from recfuse.serve.store import Event, EventStore
from recfuse.serve.testing import ServerThread

ADMIN = {"X-API-Key": "adm-secret"}


class Api:
    def __init__(self, server: ServerThread, store: EventStore, config: ServeConfig) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=120)
        self.store = store
        self.config = config

    @property
    def service(self) -> Any:
        return self.server.server.config.app.state.service

    def post(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        r = self.http.post("/v1/events", json={"events": events})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


def event(eid: str, user: str, item: str, ts: float | None = None) -> dict[str, Any]:
    return {"event_id": eid, "user_id": user, "item_id": item, "timestamp": time.time() - 100 if ts is None else ts,
            "type": "view"}


def _start(config: ServeConfig) -> ServerThread:
    return ServerThread(create_app(config)).start()


@pytest.fixture(scope="module")
def api(genre_model: Path, module_db: tuple[str, str]) -> Iterator[Api]:
    url, prefix = module_db
    config = ServeConfig(genre_model, db=url, table_prefix=prefix, admin_key="adm-secret", api_key="", preload_text=False)
    server = _start(config)
    store = EventStore(url, prefix)
    a = Api(server, store, config)
    yield a
    a.http.close()
    a.server.stop()
    store.close()


def test_a_user_sees_everything_stored_about_them(api: Api) -> None:
    now = time.time()
    api.post([event(f"acc-{j}", "access-user", f"c{j}", now - 50 + j) for j in range(3)])
    got = api.http.get("/v1/users/access-user/events").json()
    assert got["user_id"] == "access-user" and got["n_events"] == 3
    assert [e["event_id"] for e in got["events"]] == ["acc-0", "acc-1", "acc-2"]
    assert got["events"][0]["item_id"] == "c0" and got["events"][0]["timestamp"] == pytest.approx(now - 50)
    assert api.http.get("/v1/users/never-seen/events").json() == {"user_id": "never-seen", "n_events": 0, "events": []}
    seeded = api.http.get("/v1/users/u3/events").json()  # a training user: the seeded log is theirs too
    assert seeded["n_events"] > 0 and all(e["event_id"].startswith("seed-") for e in seeded["events"])


def test_erasure_removes_the_user_everywhere_and_a_retrain_never_sees_them(
    api: Api, genre_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="recfuse")
    live, trained = "erase-me-7f3a", "u3"  # a user seen only live, and one the model has a learned vector for
    now = time.time()
    api.post([event(f"er-{j}", live, f"h{j}", now - 50 + j) for j in range(5)])
    api.post([event(f"er3-{j}", trained, f"w{j}", now - 40 + j) for j in range(2)])
    svc = api.service
    assert api.http.get(f"/v1/users/{live}/recommendations").json()["history_length"] == 5
    assert not api.http.get(f"/v1/users/{trained}/recommendations").json()["cold_start"]
    assert svc.engine.user_row(trained) >= 0
    assert any(k[0] == trained for k in svc.engine._cache)  # their vector is cached now

    # admin only
    assert api.http.delete(f"/v1/users/{live}").status_code == 401
    assert api.http.delete(f"/v1/users/{live}", headers={"X-API-Key": "nope"}).status_code == 403
    n_trained = len(api.store.user_events(trained))
    for user, n in ((live, 5), (trained, n_trained)):
        r = api.http.delete(f"/v1/users/{user}", headers=ADMIN)
        assert r.status_code == 200 and r.json() == {"user_id": user, "status": "erased", "events_deleted": n}

    for user in (live, trained):
        assert api.store.user_events(user) == []  # the store
        assert api.http.get(f"/v1/users/{user}/events").json()["n_events"] == 0
        assert svc.state.snapshot(user, svc.engine.items) is None  # the live state
        assert not any(k[0] == user for k in svc.engine._cache)  # the cached vectors
        rec = api.http.get(f"/v1/users/{user}/recommendations").json()
        assert rec["cold_start"] and rec["history_length"] == 0  # a new user
    assert svc.engine.user_row(trained) == -1  # never their learned vector again
    # Coming back, they start from nothing, as an unknown user of this model.
    api.post([event("back-0", trained, "c5")])
    assert api.http.get(f"/v1/users/{trained}/recommendations").json()["history_length"] == 1
    assert svc.engine.user_row(trained) == -1
    assert set(api.store.erased_users()) >= {live, trained}

    # A retrain from the store never sees their erased events.
    url, prefix = api.config.db, api.config.table_prefix
    frame = events_frame(api.store)
    assert live not in frame["user_id"].to_list()
    assert frame.filter(frame["user_id"] == trained).height == 1  # only the event after the erasure
    out = tmp_path / "retrained"
    _register()
    args = ["train", "--from-db", url, "--warm-start", str(genre_model), "--out", str(out), "--set", "epochs=1", "--quiet"]
    res = CliRunner().invoke(app, [*args, *(["--table-prefix", prefix] if prefix else [])])
    assert res.exit_code == 0, res.output
    new = Bundle.load(out)
    assert live not in new.users
    user_events = new.events.filter(new.events["user_id"] == trained)
    assert user_events.height == 1 and user_events["item_id"].to_list() == ["c5"]

    # Logs and metrics carry no user id.
    text = api.http.get("/metrics").text
    assert live not in text
    messages = [r.getMessage() for r in caplog.records]
    assert any("erased one user's data" in m for m in messages)
    assert not any(live in m for m in messages), messages


def test_erasure_holds_across_a_restart_and_a_reload(api: Api, genre_model: Path) -> None:
    user = "u5"
    assert api.http.delete(f"/v1/users/{user}", headers=ADMIN).status_code == 200
    # A write that raced the DELETE (received before it, committed after) stays out of the live state.
    api.store.add_events([Event("raced-1", user, "c1", time.time() - 10)])
    with api.store.engine.begin() as conn:
        conn.execute(api.store.events.update().where(api.store.events.c.event_id == "raced-1").values(received_at=0.0))
    r = api.http.post("/v1/admin/reload", headers=ADMIN, json={})
    assert r.status_code == 200 and api.service.engine.user_row(user) == -1
    restarted = _start(api.config)
    try:
        svc = restarted.server.config.app.state.service
        assert svc.engine.user_row(user) == -1 and svc.state.snapshot(user, svc.engine.items) is None
        assert svc.engine.user_row("u6") >= 0  # other training users keep theirs
    finally:
        restarted.stop()
    assert user not in events_frame(api.store)["user_id"].to_list()


def test_erasure_during_concurrent_writes_leaves_store_and_live_state_agreeing(api: Api) -> None:
    user = "busy-writer"
    stop = threading.Event()

    def writer() -> None:
        n = 0
        with httpx.Client(base_url=api.server.url, timeout=60) as c:
            while not stop.is_set() and n < 400:
                c.post("/v1/events", json={"events": [event(f"bw-{n}-{j}", user, f"c{j}") for j in range(5)]})
                n += 1

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.5)
    assert api.http.delete(f"/v1/users/{user}", headers=ADMIN).status_code == 200
    time.sleep(0.3)
    stop.set()
    t.join()
    stored = len(api.store.user_events(user))
    snap = api.service.state.snapshot(user, api.service.engine.items)
    assert (0 if snap is None else len(snap)) == stored
    assert api.http.get(f"/v1/users/{user}/recommendations").json()["history_length"] == stored
