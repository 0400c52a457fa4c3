"""``recfuse ablate``: the fusion model against itself with one switch off, same protocol, same seeds.

Tiny fusion fits (one epoch, 8-d embeddings) on a small log with
timestamps and ratings, so that every switch has something to switch off.
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

from recfuse.data.dataset import Interactions
from recfuse.evaluate import cli as bench_cli
from recfuse.evaluate.ablation import ABLATIONS, SWITCHES, ablation_variants, run_ablation
from recfuse.evaluate.report import ablation_markdown, ablation_table, gate_table, print_ablation

TINY = {"epochs": 1, "embedding_size": 8, "max_len": 5, "long_len": 5, "device": "cpu"}


def timed_log(n_users: int = 40, n_items: int = 24, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    rows: dict[str, list[Any]] = {"user_id": [], "item_id": [], "timestamp": [], "rating": []}
    for u in range(n_users):
        n = int(rng.integers(6, 12))
        gaps = rng.choice([5.0, 600.0, 7200.0, 3 * 86400.0, 40 * 86400.0], size=n)
        rows["user_id"] += [f"u{u}"] * n
        rows["item_id"] += [f"i{(u % 4) * 6 + i}" for i in rng.integers(0, 6, size=n)]
        rows["timestamp"] += (1e6 + np.cumsum(gaps)).tolist()
        rows["rating"] += rng.integers(1, 6, size=n).astype(float).tolist()
    return Interactions.from_frame(pl.DataFrame(rows), name="timed")


@pytest.fixture(scope="module")
def data() -> Interactions:
    return timed_log()


@pytest.fixture(scope="module")
def results(data: Interactions) -> dict[str, Any]:
    return run_ablation(data, seeds=1, params=TINY, ks=(5, 10), progress=False)


def test_variants_full_first_and_switches_only() -> None:
    vs = ablation_variants(["no_rating", "no_text"], {"epochs": 3})
    assert [v.label for v in vs] == ["full", "no_text", "no_rating"]  # table order, full always in
    assert vs[0].params == {"epochs": 3} and vs[1].params == {"epochs": 3, "use_text": False}
    assert [v.label for v in ablation_variants()] == list(ABLATIONS)
    assert {v.model for v in ablation_variants()} == {"fusion"}
    assert ABLATIONS["long_only"][0] == {"gate": "long"} and ABLATIONS["fixed_gate"][0] == {"gate": "fixed"}
    assert list(bench_cli.ABLATION_NAMES) == list(ABLATIONS)  # --help lists what the module runs
    with pytest.raises(ValueError, match="varies these"):
        ablation_variants(None, {"gate": "short"})
    with pytest.raises(ValueError, match="varies these"):
        ablation_variants(["no_trend"], {"trend_days": 7.0})
    without = ablation_variants(["no_text"], {"trend_days": 0.0})  # no chosen row varies it: no row has the term
    assert [v.params for v in without] == [{"trend_days": 0.0}, {"trend_days": 0.0, "use_text": False}]
    with pytest.raises(ValueError, match="unknown variant"):
        ablation_variants(["no_such"])
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        ablation_variants(None, {"epoks": 1})


def test_every_row_same_protocol_same_seeds(results: dict[str, Any]) -> None:
    models = results["models"]
    assert list(models) == list(ABLATIONS) and results["reference"] == "full"
    full_cfg = models["full"]["config"]
    for label, m in models.items():
        assert m["model"] == "fusion"
        assert len(m["metrics"]["ndcg@10"]["per_seed"]) == 1 and len(m["train_seconds"]["per_seed"]) == 1
        # The configuration differs from full's in the row's switch and nowhere else.
        diff = {k for k in full_cfg if m["config"][k] != full_cfg[k]}
        assert diff == set(ABLATIONS[label][0]), label
        assert m["config"]["epochs"] == 1 and m["tuning"]["grid"] == {}
    assert set().union(*(set(p) for p, _ in ABLATIONS.values())) == set(SWITCHES)


def test_rows_against_full(results: dict[str, Any]) -> None:
    ab = results["ablation"]
    assert ab["reference"] == "full" and ab["metric"] == "ndcg@10" and ab["params"] == TINY
    full = results["models"]["full"]["metrics"]["ndcg@10"]["mean"]
    for label, row in ab["variants"].items():
        m = results["models"][label]
        assert row["params"] == ABLATIONS[label][0]
        # The log has timestamps and ratings but no item text: only no_text is a no-op, and says so.
        assert row["inert"] == ("the dataset has no item text" if label == "no_text" else None)
        if label == "full":
            assert row["p_vs_full"] is None and row["relative_change"] == pytest.approx(0.0)
            continue
        assert m["significance"]["vs"] == "full" and m["significance"]["metric"] == "ndcg@10"
        assert row["p_vs_full"] == m["significance"]["wilcoxon_p"]
        assert row["relative_change"] == pytest.approx(m["metrics"]["ndcg@10"]["mean"] / full - 1)
    # The switches bite: long-only and short-only fuse with a constant gate, so they are different models.
    per_seed = {k: results["models"][k]["metrics"]["ndcg@10"]["per_seed"] for k in ("full", "no_time", "no_rating")}
    assert len({tuple(v) for v in per_seed.values()}) > 1
    json.dumps(results, allow_nan=False)


def test_gate_by_gap_of_the_full_model(results: dict[str, Any]) -> None:
    g = results["gate_by_gap"]
    assert g["variant"] == "full" and g["seed"] == 0 and g["evalset"] == "test"
    assert sum(b["n"] for b in g["buckets"]) + g["n_unknown_gap"] == g["n_queries"] == 40
    assert sum(1 for b in g["buckets"] if b["n"]) >= 3  # the log has gaps from seconds to weeks
    for b in g["buckets"]:
        assert b["n"] == 0 or 0.0 <= b["mean_gate"] <= 1.0


def test_ablation_tables(results: dict[str, Any]) -> None:
    headers, rows = ablation_table(results)
    assert headers == ["Variant", "What changes", "Test NDCG@10", "Test HR@10", "Valid NDCG@10", "vs full",
                       "p vs full", "Train s"]
    assert [r[0] for r in rows] == ["full (ref)", *list(ABLATIONS)[1:]]
    assert rows[0][5:7] == ["—", "—"] and rows[1][5].endswith("%")
    assert " ± " in rows[1][2] and " ± " in rows[1][3]
    assert rows[1][1] == "no item text (ID embeddings only) (no-op: the dataset has no item text)"
    gates = gate_table(results)
    assert gates is not None and gates[1][0][0] == "<1 min"
    md = ablation_markdown(results)
    assert md.startswith("# Ablation: fusion on timed") and "## Gate by time since the previous event" in md
    console = Console(record=True, width=220)
    print_ablation(results, console)
    text = console.export_text()
    assert "ablation of fusion" in text and "no_rating" in text and "≥1 month" in text


def _app() -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)
    bench_cli.register(app)
    bench_cli.register_ablate(app)
    bench_cli.register_ablate(app)  # idempotent
    assert [c.name for c in app.registered_commands] == ["benchmark", "ablate"]
    return app


def test_cli_ablate(data: Interactions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_cli, "_load_dataset", lambda name: data)
    out = tmp_path / "abl"
    res = CliRunner().invoke(_app(), [
        "ablate", "--dataset", "timed", "--seeds", "4,6", "--variants", "no_time", "--out", str(out), "--quiet",
        "--set", "epochs=1", "--set", "fusion.embedding_size=8", "--set", "max_len=5", "--set", "long_len=5",
        "--set", "device=cpu", "--ks", "10",
    ])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "results.json").read_text())
    assert list(r["models"]) == ["full", "no_time"] and r["models"]["no_time"]["config"]["use_time"] is False
    assert r["models"]["full"]["config"]["embedding_size"] == 8
    for m in r["models"].values():  # the same seeds 4 and 6 for every row
        assert m["seeds"] == [4, 6] and len(m["metrics"]["ndcg@10"]["per_seed"]) == 2
    assert r["seeds"] == [4, 6] and r["gate_by_gap"]["seed"] == 4  # the gate of the first listed seed
    assert {p.name for p in out.iterdir()} >= {"results.json", "results.md", "gate_by_gap.png", "runs"}
    assert sorted(p.name for p in (out / "runs").iterdir()) == [
        f"{row}-seed{s}.{ext}" for row in ("full", "no_time") for s in (4, 6) for ext in ("json", "npz")]
    assert "no_time" in res.output and "Gate by time" in res.output


@pytest.mark.parametrize("args", [
    ["--set", "gate=short"],  # a switch the rows vary
    ["--set", "sasrec.epochs=1"],  # another model
    ["--set", "nosuch=1"],
    ["--variants", "no_such"],
    ["--split", "random"],
    ["--seeds", "2-1"],
    ["--seeds", "0,0"],
])
def test_cli_ablate_bad_options_exit_2(args: list[str], data: Interactions, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_cli, "_load_dataset", lambda name: data)
    res = CliRunner().invoke(_app(), ["ablate", "--dataset", "timed", *args])
    assert res.exit_code == 2, res.output
