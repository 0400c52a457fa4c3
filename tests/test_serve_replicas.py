"""Replicas: two services over one PostgreSQL store stay coherent through LISTEN/NOTIFY (recfuse.serve.sync).

Each replica is the real app under uvicorn on its own loopback port, with its own store connection,
live state, engine and listener; what one accepts must change the other's next answers.  Needs the
machine's PostgreSQL (skipped, saying so, where there is none).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")

from recfuse.serve.app import ServeConfig, create_app
from recfuse.serve.store import Event, EventStore
from recfuse.serve.sync import EVENTS, Listener, PgSnapshot, channel_name, pack
from recfuse.serve.testing import ServerThread

ADMIN = {"X-API-Key": "adm-secret"}


class Replica:
    def __init__(self, config: ServeConfig) -> None:
        self.server = ServerThread(create_app(config)).start()
        self.http = httpx.Client(base_url=self.server.url, timeout=120)

    @property
    def service(self) -> Any:
        return self.server.server.config.app.state.service

    def recs(self, user: str, **params: Any) -> dict[str, Any]:
        r = self.http.get(f"/v1/users/{user}/recommendations", params={"k": 5, **params})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def post(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        r = self.http.post("/v1/events", json={"events": events})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.http.close()
        self.server.stop()


def event(eid: str, user: str, item: str, ago: float = 100.0) -> dict[str, Any]:
    return {"event_id": eid, "user_id": user, "item_id": item, "timestamp": time.time() - ago, "type": "view"}


def until(check: Any, timeout: float = 10.0) -> Any:
    """Poll ``check()`` until it returns something truthy; that value (fails after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s")
        time.sleep(0.02)


def histories(service: Any) -> dict[str, list[str]]:
    """Every user's live history on one replica (external item ids, time order)."""
    state = service.state
    with state._lock:
        return {u: list(h.items) for u, h in state._users.items()}


def stored_histories(store: EventStore) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for chunk in store.iter_events():
        for u, i, *_ in chunk:
            out.setdefault(u, []).append(i)
    return out


@pytest.fixture(scope="module")
def pair(genre_model: Path, pg_url: str) -> Iterator[tuple[Replica, Replica, ServeConfig]]:
    prefix = f"r{uuid.uuid4().hex[:10]}_"
    config = ServeConfig(genre_model, db=pg_url, table_prefix=prefix, admin_key="adm-secret", api_key="",
                         preload_text=False)
    a = Replica(config)
    b = Replica(config)
    yield a, b, config
    a.stop()
    b.stop()
    EventStore(pg_url, prefix).drop()


def test_an_event_accepted_by_one_replica_changes_the_others_next_answer(pair: tuple[Replica, Replica, ServeConfig]) -> None:
    a, b, _ = pair
    user = "newcomer-1"
    assert b.recs(user)["cold_start"] is True
    horror = [f"h{n}" for n in range(4)]
    out = a.post([event(f"nc1-{n}", user, item, ago=100 - n) for n, item in enumerate(horror)])
    assert out["stored"] == 4
    answer = until(lambda: (r := b.recs(user))["history_length"] == 4 and r)
    assert answer["cold_start"] is False
    assert histories(b.service)[user] == horror
    # B answers from its own live state what A would: same history, same model, same items.
    assert [i["item_id"] for i in answer["items"]] == [i["item_id"] for i in a.recs(user)["items"]]
    assert b.service.listener.applied >= 1


def test_a_replica_skips_its_own_notices_and_stores_nothing_twice(pair: tuple[Replica, Replica, ServeConfig]) -> None:
    a, b, _ = pair
    user = "newcomer-2"
    a.post([event("nc2-0", user, "c1")])
    a.post([event("nc2-0", user, "c1")])  # a retry: a duplicate, not announced again
    b.post([event("nc2-1", user, "c2", ago=50)])
    until(lambda: len(histories(a.service).get(user, [])) == 2 and len(histories(b.service).get(user, [])) == 2)
    time.sleep(0.3)  # nothing else is on its way
    assert histories(a.service)[user] == histories(b.service)[user] == ["c1", "c2"]


def test_an_erasure_on_one_replica_makes_the_user_new_on_the_other(pair: tuple[Replica, Replica, ServeConfig]) -> None:
    a, b, _ = pair
    user = "leaving-1"
    a.post([event(f"lv-{n}", user, f"w{n}", ago=100 - n) for n in range(3)])
    until(lambda: b.recs(user)["history_length"] == 3)
    r = a.http.delete(f"/v1/users/{user}", headers=ADMIN)
    assert r.status_code == 200, r.text
    until(lambda: b.recs(user)["cold_start"] is True)
    assert user not in histories(b.service)


def test_a_model_reload_reaches_every_replica(pair: tuple[Replica, Replica, ServeConfig]) -> None:
    a, b, config = pair
    before = b.http.get("/health").json()["model"]["version"]
    r = a.http.post("/v1/admin/reload", headers=ADMIN, json={"model_dir": str(config.model_dir)})
    assert r.status_code == 200, r.text
    until(lambda: b.http.get("/health").json()["model"]["version"] == before + 1, timeout=30)


def test_a_replica_started_during_writes_and_one_that_lost_its_connection_agree_with_the_store(
    pair: tuple[Replica, Replica, ServeConfig],
) -> None:
    """No notice is missed or applied twice: a replica loads its state while batches keep arriving, and
    another has its listening connection killed mid-stream; both end with exactly the stored histories."""
    a, b, config = pair
    stop = threading.Event()
    sent = [0]

    def writer() -> None:
        n = 0
        while not stop.is_set():
            a.post([event(f"w-{n}-{j}", f"writer-{(n + j) % 7}", f"r{(n * 3 + j) % 30}", ago=1000 - n) for j in range(5)])
            n += 1
        sent[0] = n

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.3)
        c = Replica(config)  # loads while the writer runs
        time.sleep(0.3)
        import sqlalchemy as sa

        store = b.service.store
        pid = b.service.listener._conn.info.backend_pid
        with store.engine.begin() as conn:
            assert conn.scalar(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        until(lambda: b.service.listener.resyncs >= 1, timeout=20)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    assert sent[0] > 5
    try:
        truth = stored_histories(a.service.store)
        for replica in (a, b, c):
            until(lambda r=replica: histories(r.service) == truth, timeout=20)
        assert c.service.listener.skipped + c.service.listener.applied > 0
    finally:
        c.stop()


def test_a_notice_the_load_already_saw_is_skipped(pg_url: str) -> None:
    """The snapshot rule on its own: a transaction committed before the load's snapshot is skipped,
    one committed after it applied."""
    prefix = f"s{uuid.uuid4().hex[:10]}_"
    store = EventStore(pg_url, prefix)
    store.migrate()
    store.enable_sync("writer")
    try:
        got: list[list[Any]] = []
        listener = Listener(pg_url, channel_name(prefix), "reader")
        store.add_events([Event("e1", "u", "i1", 1.0)])
        snapshot, _ = store.read_live(lambda chunk, erased: None)
        assert isinstance(snapshot, PgSnapshot)
        store.add_events([Event("e2", "u", "i2", 2.0)])
        listener.start(lambda kind, values: got.extend(values) if kind == EVENTS else None, snapshot, lambda: snapshot)
        until(lambda: got)
        time.sleep(0.2)
        listener.close()
        assert [v[1] for v in got] == ["i2"]
        assert listener.skipped == 1
    finally:
        store.drop()


def test_a_big_batch_travels_in_several_notices() -> None:
    values = [["user-" + "x" * 100, f"item-{n}", 1.0, None, 2.0] for n in range(1000)]
    notices = pack("origin", EVENTS, values)
    assert len(notices) > 10 and all(len(n.encode()) <= 7_900 for n in notices)
    import json

    assert [v for n in notices for v in json.loads(n)[EVENTS]] == values


def test_serve_with_two_workers_answers_from_either_with_every_event(genre_model: Path, pg_url: str, tmp_path: Path) -> None:
    """``recfuse serve --workers 2``: two processes on one port; whichever answers knows the new events."""
    from recfuse.serve.testing import ServerProcess

    prefix = f"w{uuid.uuid4().hex[:10]}_"
    server = ServerProcess(genre_model, pg_url, extra=["--workers", "2", "--table-prefix", prefix],
                           log=tmp_path / "serve.log")
    try:
        server.wait(180)
        with httpx.Client(base_url=server.url, timeout=60) as http:
            r = http.post("/v1/events", json={"events": [event(f"tw-{n}", "two-workers", f"h{n}", ago=9 - n)
                                                         for n in range(3)]})
            assert r.status_code == 200 and r.json()["stored"] == 3, r.text
        workers = [c for c in Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
                   if "spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")]
        assert len(workers) == 2, "two worker processes serve the port"
        # The kernel hands each new connection to either process (which one is not ours to choose): every
        # answer counts the three events, and where the process that did not store them answers (it has
        # applied a notice), it has them too.
        applied = set()
        for _ in range(40):
            with httpx.Client(base_url=server.url, timeout=60) as fresh:  # a new connection: either process
                until(lambda c=fresh: c.get("/v1/users/two-workers/recommendations").json()["history_length"] == 3)
                line = next(x for x in fresh.get("/metrics").text.splitlines()
                            if x.startswith("recfuse_sync_notices_applied"))
                applied.add(float(line.split()[-1]) > 0)
        assert applied  # answers came, each with the events
        store = EventStore(pg_url, prefix)
        ids = store.event_ids()
        assert len(ids) == len(set(ids)) and {f"tw-{n}" for n in range(3)} <= set(ids)
        store.close()
    finally:
        server.stop()
        EventStore(pg_url, prefix).drop()


def test_two_workers_on_sqlite_are_refused_with_the_reason(genre_model: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from recfuse.cli import _register, app

    _register()
    out = CliRunner().invoke(app, ["serve", "--model", str(genre_model), "--db", f"sqlite:///{tmp_path / 'e.db'}",
                                   "--workers", "2"])
    assert out.exit_code == 2
    assert "needs a PostgreSQL store" in out.output
