"""The feedback loop: stored events -> `recfuse train --from-db --warm-start` -> POST /v1/admin/reload."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")

from typer.testing import CliRunner

from recfuse.bundle import Bundle
from recfuse.cli import _register, app
from recfuse.serve.app import ServeConfig, create_app
from recfuse.serve.testing import ServerThread

ADMIN = {"X-API-Key": "k"}


def test_train_from_the_store_with_warm_start_then_reload(genre_model: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'events.db'}"
    server = ServerThread(create_app(ServeConfig(genre_model, db=db, admin_key="k", api_key="", preload_text=False))).start()
    try:
        http = httpx.Client(base_url=server.url, timeout=60)
        r = http.post("/v1/items", headers=ADMIN, json={"items": [{"item_id": "fb-item", "text": "Ghost Ranch 9. Genres: Horror."}]})
        assert r.status_code == 200
        now = time.time()
        events = [{"event_id": f"fb-{u}-{j}", "user_id": f"fb-user-{u}", "item_id": it, "timestamp": now - 100 + j, "type": "view"}
                  for u in range(3) for j, it in enumerate(["h1", "h2", "fb-item", "h3"])]
        assert http.post("/v1/events", json={"events": events}).json()["stored"] == 12

        out = tmp_path / "retrained"
        _register()
        res = CliRunner().invoke(app, [
            "train", "--from-db", db, "--warm-start", str(genre_model), "--out", str(out),
            "--set", "epochs=1", "--set", "learning_rate=0.0", "--quiet",
        ])
        assert res.exit_code == 0, res.output
        old, new = Bundle.load(genre_model), Bundle.load(out)
        assert "fb-user-0" in new.users and "fb-item" in new.items and "fb-user-0" not in old.users
        assert new.meta["from_db"] == db and new.meta["fit_info"]["warm_start"]["item_rows"] == len(old.items)
        # learning rate 0: the warm-started weights are the old ones, item rows matched by id
        old_w = old.model.state()["item_emb.weight"]
        new_w = new.model.state()["item_emb.weight"]
        rows = [new.items.index(i) + 1 for i in old.items.external_ids]
        np.testing.assert_array_equal(new_w[rows], old_w[1:])
        np.testing.assert_array_equal(new.model.state()["gate.0.weight"], old.model.state()["gate.0.weight"])

        before = http.get("/health").json()["model"]["version"]
        r = http.post("/v1/admin/reload", headers=ADMIN, json={"model_dir": str(out)})
        assert r.status_code == 200, r.text
        assert r.json()["model"]["version"] == before + 1 and r.json()["model"]["dir"] == str(out)
        assert r.json()["model"]["n_items"] == len(old.items) + 1  # the API item is now a trained item, not a second copy
        rec = http.get("/v1/users/fb-user-0/recommendations", params={"k": 5}).json()
        assert rec["history_length"] == 4 and rec["model_version"] == before + 1
        assert http.get("/v1/items/fb-item/similar", params={"k": 3}).status_code == 200
        http.close()
    finally:
        server.stop()


def test_train_from_db_needs_a_catalogue(tmp_path: Path) -> None:
    _register()
    res = CliRunner().invoke(app, ["train", "--from-db", "sqlite:///x.db", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--warm-start" in res.output
    res = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "exactly one of --dataset" in res.output
