"""The cold-start item protocol: held-out items leak nowhere, slices are what they say.

``hold_out_items`` is checked as a pure function on both splits; the runner
and ``recfuse benchmark --cold-items`` on the small clustered log of
``test_runner``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from recfuse.data import split as split_mod
from recfuse.data.dataset import Interactions
from recfuse.data.split import (
    COLD_ITEMS_SEED,
    EvalSet,
    Queries,
    Split,
    cold_target_mask,
    hold_out_items,
    leave_one_out,
    select_targets,
    temporal,
)
from recfuse.evaluate import cli as bench_cli
from recfuse.evaluate.report import cold_table, print_leaderboard
from recfuse.evaluate.runner import run_benchmark


def _log(n_users: int = 60, n_items: int = 50, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        n = int(rng.integers(3, 30))
        items = rng.choice(n_items, size=n, replace=False)
        times = np.sort(rng.integers(0, 1000, size=n))
        rows += [(f"u{u}", f"i{i}", int(t), float(rng.integers(1, 6))) for i, t in zip(items, times, strict=True)]
    return Interactions.from_frame(pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp", "rating"],
                                                orient="row"))


def _assert_no_leak(base: Split, s: Split) -> None:
    cold = s.info["cold_items"]
    is_cold = np.zeros(s.full.n_items, bool)
    is_cold[cold] = True
    # Nothing a model sees contains a held-out item: training events, valid and test histories.
    assert not is_cold[s.train.item].any()
    for phase in (s.valid, s.test):
        assert not is_cold[phase.queries.items].any()
    # Valid (early stopping) has warm targets only.
    assert not is_cold[s.valid.targets].any()
    # Training is the old training minus exactly the held-out items' events.
    assert s.train.n_events == base.train.n_events - int(is_cold[base.train.item].sum())
    assert s.info["cold_train_events_removed"] == int(is_cold[base.train.item].sum()) > 0
    # Test: same queries, same targets, same request times; histories lose only held-out items, in order.
    assert len(s.test) == len(base.test)
    assert np.array_equal(s.test.targets, base.test.targets)
    assert np.array_equal(s.test.target_indptr, base.test.target_indptr)
    assert np.array_equal(s.test.queries.user, base.test.queries.user)
    assert np.array_equal(s.test.queries.time, base.test.queries.time)
    removed = 0
    q, old = s.test.queries, base.test.queries
    for b in range(len(q)):
        keep = ~is_cold[old.history(b)]
        assert q.history(b).tolist() == old.history(b)[keep].tolist()
        new_ev, old_ev = slice(q.indptr[b], q.indptr[b + 1]), slice(old.indptr[b], old.indptr[b + 1])
        assert np.array_equal(q.timestamps[new_ev], old.timestamps[old_ev][keep])
        assert np.array_equal(q.ratings[new_ev], old.ratings[old_ev][keep])
        removed += int((~keep).sum())
    assert removed > 0
    # The catalogue is untouched: held-out items are still ranked.
    assert s.train.n_items == base.train.n_items
    # Every cold-slice target is a held-out item, every warm-slice target is not; together they are the test targets.
    mask = cold_target_mask(s)
    cold_set, cold_rows = select_targets(s.test, mask)
    warm_set, warm_rows = select_targets(s.test, ~mask)
    assert len(cold_set) > 0 and is_cold[cold_set.targets].all()
    assert len(warm_set) > 0 and not is_cold[warm_set.targets].any()
    assert len(cold_set.targets) + len(warm_set.targets) == len(s.test.targets)
    for sub, rows in ((cold_set, cold_rows), (warm_set, warm_rows)):
        for j, b in enumerate(rows):
            t = set(sub.target(j).tolist())
            assert t <= set(s.test.target(b).tolist())
            assert sub.queries.history(j).tolist() == s.test.queries.history(b).tolist()
    assert s.info["cold_test_queries"] == len(cold_set) and s.info["warm_test_queries"] == len(warm_set)
    assert s.info["cold_test_targets"] == len(cold_set.targets)


def test_leave_one_out_hold_out_has_no_leak() -> None:
    base = leave_one_out(_log())
    s = hold_out_items(base, 0.1, seed=3)
    _assert_no_leak(base, s)
    cold = s.info["cold_items"]
    assert len(cold) == round(0.1 * int((base.full.item_counts() > 0).sum())) == s.info["cold_items_n"]
    # Leave-one-out: the cold and warm slices partition the test queries; valid drops exactly the cold targets.
    n_cold_valid = int(np.isin(base.valid.targets, cold).sum())
    assert len(s.valid) == len(base.valid) - n_cold_valid == len(base.valid) - s.info["cold_valid_queries_dropped"]
    assert s.info["cold_test_queries"] + s.info["warm_test_queries"] == len(s.test)
    assert s.kind == "leave_one_out" and s.info["users_evaluated"] == base.info["users_evaluated"]


def test_temporal_hold_out_has_no_leak() -> None:
    base = temporal(_log(n_users=80), test_frac=0.2, valid_frac=0.2)
    s = hold_out_items(base, 0.2, seed=1)
    _assert_no_leak(base, s)
    # Temporal: valid queries keep their warm targets (queries left with none are dropped).
    kept = ~np.isin(base.valid.targets, s.info["cold_items"])
    assert len(s.valid.targets) == int(kept.sum())
    assert s.info["cold_valid_targets_dropped"] == int((~kept).sum())


def test_held_out_items_depend_on_the_protocol_seed_only() -> None:
    base = leave_one_out(_log())
    a = hold_out_items(base, 0.1).info["cold_items"]
    b = hold_out_items(leave_one_out(_log()), 0.1, seed=COLD_ITEMS_SEED).info["cold_items"]
    c = hold_out_items(base, 0.1, seed=COLD_ITEMS_SEED + 1).info["cold_items"]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert bench_cli.COLD_ITEMS_SEED == split_mod.COLD_ITEMS_SEED  # the CLI's copy of the default


def test_only_items_with_events_are_held_out() -> None:
    d = _log()
    # Items that only exist in the catalogue are cold already; they are not candidates.
    extra = pl.DataFrame({"item_id": [f"i{i}" for i in range(50)] + ["ghost1", "ghost2"], "title": ["t"] * 52})
    d2 = Interactions.from_frame(pl.DataFrame({"user_id": d.users.to_external(d.user).tolist(),
                                               "item_id": d.items.to_external(d.item).tolist(),
                                               "timestamp": d.timestamp}), item_features=extra)
    s = hold_out_items(leave_one_out(d2), 0.5, seed=0)
    ghosts = d2.items.to_index(["ghost1", "ghost2"])
    assert not np.isin(ghosts, s.info["cold_items"]).any()
    assert s.info["cold_items_candidates"] == 50


@pytest.mark.parametrize("frac", [0.0, 1.0, -0.1, 0.001])
def test_bad_fraction_is_refused(frac: float) -> None:
    with pytest.raises(ValueError, match="cold-items fraction"):
        hold_out_items(leave_one_out(_log()), frac)


def test_select_targets_splits_a_mixed_query() -> None:
    # Query 0 has a cold target (7) and a warm one (3): it is in both slices, scored against its own part.
    e = EvalSet(Queries.from_histories([[0, 1], [2]]), np.array([0, 2, 3]), np.array([7, 3, 4]))
    cold, rows = select_targets(e, np.isin(e.targets, [7]))
    warm, wrows = select_targets(e, ~np.isin(e.targets, [7]))
    assert rows.tolist() == [0] and cold.targets.tolist() == [7]
    assert wrows.tolist() == [0, 1] and warm.targets.tolist() == [3, 4] and warm.target_indptr.tolist() == [0, 1, 2]


# ------------------------------------------------------------------ runner, report, CLI
def clustered_log(n_users: int = 160, n_items: int = 80, n_clusters: int = 4, seed: int = 0) -> Interactions:
    """Four taste clusters, Zipf-like popularity inside each (as in ``test_runner``)."""
    rng = np.random.default_rng(seed)
    per = n_items // n_clusters
    weights = 1.0 / np.arange(1, per + 1)
    rows: dict[str, list[Any]] = {"user_id": [], "item_id": [], "timestamp": []}
    for u in range(n_users):
        n = int(rng.integers(8, 16))
        own = (u % n_clusters) * per + rng.choice(per, size=n, p=weights / weights.sum())
        items = np.where(rng.random(n) < 0.85, own, rng.integers(0, n_items, size=n))
        rows["user_id"] += [f"u{u}"] * n
        rows["item_id"] += [f"i{i}" for i in items]
        rows["timestamp"] += (1000 * u + np.arange(n)).tolist()
    return Interactions.from_frame(pl.DataFrame(rows), name="clusters")


@pytest.fixture(scope="module")
def data() -> Interactions:
    return clustered_log()


@pytest.fixture(scope="module")
def results(data: Interactions) -> dict[str, Any]:
    return run_benchmark(data, ["pop", "itemknn"], seeds=2, ks=(5, 10), tune=False, progress=False, cold_items=0.1)


def test_runner_writes_cold_and_warm_slices(data: Interactions, results: dict[str, Any]) -> None:
    p = results["protocol"]
    c = p["cold_items"]
    assert c["frac"] == 0.1 and c["seed"] == COLD_ITEMS_SEED and c["n_items_held_out"] == 8
    assert c["test_queries_cold"] + c["test_queries_warm"] == 160  # leave-one-out: a partition
    assert p["slice_sizes"]["cold_items"] == c["test_queries_cold"] > 0
    assert p["slice_sizes"]["warm_items"] == c["test_queries_warm"]
    assert "cold_items" not in p["split_info"]  # the index array stays out of the JSON
    assert p["n_train_events"] == data.n_events - 2 * 160 - c["train_events_removed"]
    for name, m in results["models"].items():
        for key in ("cold_items", "warm_items"):
            assert set(m["slices"][key]) == {f"{x}@{k}" for x in ("recall", "ndcg", "mrr", "precision", "hit")
                                             for k in (5, 10)}
            assert set(m["slices"][key]["ndcg@10"]) == {"mean", "std", "per_seed"}
        # The two slices are the whole test set, seed by seed (the full test set is evaluated as usual).
        for seed in range(2):
            total = sum(p["slice_sizes"][k] * m["slices"][k]["recall@10"]["per_seed"][seed]
                        for k in ("cold_items", "warm_items"))
            assert total / 160 == pytest.approx(m["metrics"]["recall@10"]["per_seed"][seed]), name
    # Popularity has never seen a held-out item: they score 0 and rank below all 72 warm items.
    assert results["models"]["pop"]["slices"]["cold_items"]["recall@10"]["mean"] == 0.0
    json.dumps(results, allow_nan=False)


def test_runner_cold_items_with_temporal_split(data: Interactions) -> None:
    r = run_benchmark(data, ["pop"], seeds=1, ks=(10,), split="temporal", tune=False, progress=False, cold_items=0.2)
    c = r["protocol"]["cold_items"]
    sizes = r["protocol"]["slice_sizes"]
    assert sizes["cold_items"] == c["test_queries_cold"] > 0 and sizes["warm_items"] == c["test_queries_warm"]
    assert c["test_targets_cold"] > 0 and c["test_targets_warm"] > 0
    assert r["models"]["pop"]["slices"]["cold_items"]["recall@10"]["mean"] == 0.0


def test_cold_table_is_printed(results: dict[str, Any]) -> None:
    table = cold_table(results)
    assert table is not None
    headers, rows = table
    n = results["protocol"]["cold_items"]["test_queries_cold"]
    assert headers[1] == f"Recall@10 cold (n={n})" and [r[0] for r in rows] == ["itemknn", "pop"]
    console = Console(record=True, width=200)
    print_leaderboard(results, console)
    text = console.export_text()
    assert "cold-start items" in text and "8 of 80 items held out" in text


def _app() -> typer.Typer:
    app = typer.Typer()
    bench_cli.register(app)

    @app.callback()
    def _root() -> None:  # keeps "benchmark" a sub-command
        pass

    return app


def test_cli_cold_items(data: Interactions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_cli, "_load_dataset", lambda name: data)
    out = tmp_path / "res"
    res = CliRunner().invoke(_app(), ["benchmark", "--dataset", "clusters", "--models", "pop", "--seeds", "1",
                                      "--no-tune", "--cold-items", "0.1", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "results.json").read_text())
    assert r["protocol"]["cold_items"]["n_items_held_out"] == 8
    assert "cold_items" in r["models"]["pop"]["slices"]
    assert "## Cold-start items" in (out / "results.md").read_text()
    assert (out / "slices_cold_start.png").exists()
    assert "cold-start items" in res.output
    bad = CliRunner().invoke(_app(), ["benchmark", "--dataset", "clusters", "--models", "pop", "--cold-items", "1.5"])
    assert bad.exit_code == 2
