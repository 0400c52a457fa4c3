"""The benchmark runner and ``recfuse benchmark`` on a small synthetic log.

The log has four taste clusters: users mostly pick items of their own
cluster, popular ones more often, so ItemKNN has something to find that
Popularity cannot.  Everything runs in a few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from recfuse.config import coerce, config_fields, format_seeds, parse_overrides, parse_seeds
from recfuse.data.dataset import Interactions
from recfuse.evaluate import cli as bench_cli
from recfuse.evaluate.report import markdown
from recfuse.evaluate.runner import GRIDS, Variant, config_key, run_benchmark, run_variants

KS = (5, 10, 20)


def clustered_log(n_users: int = 160, n_items: int = 80, n_clusters: int = 4, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    per = n_items // n_clusters
    weights = 1.0 / np.arange(1, per + 1)  # Zipf-like popularity inside a cluster
    rows: dict[str, list[Any]] = {"user_id": [], "item_id": [], "timestamp": []}
    for u in range(n_users):
        c = u % n_clusters
        n = int(rng.integers(8, 16))
        own = c * per + rng.choice(per, size=n, p=weights / weights.sum())
        noise = rng.integers(0, n_items, size=n)
        items = np.where(rng.random(n) < 0.85, own, noise)
        rows["user_id"] += [f"u{u}"] * n
        rows["item_id"] += [f"i{i}" for i in items]
        rows["timestamp"] += (1000 * u + np.arange(n)).tolist()
    return Interactions.from_frame(pl.DataFrame(rows), name="clusters")


@pytest.fixture(scope="module")
def data() -> Interactions:
    return clustered_log()


@pytest.fixture(scope="module")
def results(data: Interactions) -> dict[str, Any]:
    return run_benchmark(data, ["pop", "itemknn"], seeds=2, ks=KS, progress=False)


def test_schema_keys(results: dict[str, Any]) -> None:
    assert set(results) == {"dataset", "seeds", "complete", "protocol", "versions", "machine", "reference", "models"}
    assert results["dataset"] == "clusters" and results["seeds"] == [0, 1] and results["complete"] is True
    p = results["protocol"]
    assert {"split", "ks", "mask_history", "users_evaluated", "n_items", "n_train_events", "split_info"} <= set(p)
    assert p["split"] == "loo" and p["ks"] == list(KS) and p["mask_history"] is True
    assert p["users_evaluated"] == 160 and p["n_items"] == 80
    assert set(results["versions"]) == {"recfuse", "python", "numpy", "torch", "implicit", "polars"}
    assert set(results["machine"]) == {"cpus", "platform"}
    assert set(results["models"]) == {"pop", "itemknn"}
    assert [m["model"] for m in results["models"].values()] == ["pop", "itemknn"]
    assert p["cold_items"] is None  # the cold-start item protocol is off by default
    for m in results["models"].values():
        assert set(m) == {
            "model", "seeds", "metrics", "valid_metrics", "slices", "significance", "train_seconds", "best_epoch",
            "stopped", "config", "tuning",
        }
        assert m["seeds"] == [0, 1] and m["stopped"] == [None, None]
        for block in ("metrics", "valid_metrics"):
            for metric in ("recall", "ndcg", "mrr", "precision", "hit", "coverage", "novelty", "gini"):
                for k in KS:
                    assert set(m[block][f"{metric}@{k}"]) == {"mean", "std", "per_seed"}
        assert set(m["train_seconds"]) == {"mean", "std", "per_seed"}
        assert m["best_epoch"] == [None, None]  # neither model trains in epochs
    json.dumps(results, allow_nan=False)  # plain JSON types, no NaN


def test_two_seeds_and_zero_std_for_deterministic_models(results: dict[str, Any]) -> None:
    for m in results["models"].values():
        for summary in (*m["metrics"].values(), *m["valid_metrics"].values()):
            assert len(summary["per_seed"]) == 2
            assert summary["std"] == 0.0  # pop and itemknn do not depend on the seed
            assert summary["mean"] == pytest.approx(np.mean(summary["per_seed"]))
        assert len(m["train_seconds"]["per_seed"]) == 2


def test_itemknn_beats_pop_on_clustered_data(results: dict[str, Any]) -> None:
    ndcg = {name: m["metrics"]["ndcg@10"]["mean"] for name, m in results["models"].items()}
    assert ndcg["itemknn"] > ndcg["pop"]


def test_tuning_picks_the_best_grid_point_on_valid(results: dict[str, Any]) -> None:
    knn = results["models"]["itemknn"]
    tuning = knn["tuning"]
    assert tuning["grid"] == GRIDS["itemknn"]
    scores = tuning["valid_ndcg@10"]
    assert list(scores) == [config_key({"neighbours": n}) for n in GRIDS["itemknn"]["neighbours"]]
    assert knn["config"]["neighbours"] in GRIDS["itemknn"]["neighbours"]
    best = max(scores.values())
    first_best = next(k for k, v in scores.items() if v == best)
    assert first_best == config_key({"neighbours": knn["config"]["neighbours"]})
    # the chosen config's seed-0 valid score is the tuning score: tuning used valid, nothing else
    assert knn["valid_metrics"]["ndcg@10"]["per_seed"][0] == pytest.approx(best)
    assert results["models"]["pop"]["tuning"] == {"grid": {}, "valid_ndcg@10": {}}
    assert "seed" not in knn["config"]


def test_reference_is_best_on_valid_and_significance(results: dict[str, Any]) -> None:
    models = results["models"]
    best_valid = max(models, key=lambda m: models[m]["valid_metrics"]["ndcg@10"]["mean"])
    assert results["reference"] == best_valid
    other = next(m for m in models if m != best_valid)
    assert models[other]["significance"]["vs"] == best_valid
    assert models[best_valid]["significance"]["vs"] == other  # the reference is tested against the runner-up
    for m in models.values():
        s = m["significance"]
        assert set(s) == {"vs", "metric", "wilcoxon_p", "ttest_p", "mean_diff", "ratio", "n_users"}
        assert s["metric"] == "ndcg@10" and s["n_users"] == 160
        assert 0.0 <= s["wilcoxon_p"] <= 1.0 and 0.0 <= s["ttest_p"] <= 1.0
        expected = m["metrics"]["ndcg@10"]["mean"] - models[s["vs"]]["metrics"]["ndcg@10"]["mean"]
        assert s["mean_diff"] == pytest.approx(expected)
    assert models["pop"]["significance"]["wilcoxon_p"] < 0.05  # clustered data: kNN is clearly better


def test_slices_partition_the_test_users(results: dict[str, Any]) -> None:
    sizes = results["protocol"]["slice_sizes"]
    for family in ("target_popularity", "history_length", "target_events"):
        keys = [k for k in sizes if k.startswith(family + "=")]
        assert keys and sum(sizes[k] for k in keys) == 160
        for m in results["models"].values():
            # slice means weighted by slice size give back the overall mean, seed by seed
            for seed in range(2):
                total = sum(sizes[k] * m["slices"][k]["recall@10"]["per_seed"][seed] for k in keys)
                assert total / 160 == pytest.approx(m["metrics"]["recall@10"]["per_seed"][seed])


def test_no_tune_with_overrides_and_explicit_reference(data: Interactions) -> None:
    r = run_benchmark(
        data, ["pop", "itemknn"], seeds=1, ks=(10,), tune=False, overrides={"itemknn": {"neighbours": 7}},
        reference="pop", progress=False,
    )
    knn = r["models"]["itemknn"]
    assert knn["config"] == {"neighbours": 7, "shrink": 0.0}
    assert knn["tuning"]["grid"] == {}
    assert knn["metrics"]["ndcg@10"]["std"] == 0.0 and len(knn["metrics"]["ndcg@10"]["per_seed"]) == 1
    assert set(knn["metrics"]) == {f"{m}@10" for m in ("recall", "ndcg", "mrr", "precision", "hit",
                                                         "coverage", "novelty", "gini")}
    assert r["reference"] == "pop" and knn["significance"]["vs"] == "pop"


def test_overridden_parameter_leaves_the_grid(data: Interactions) -> None:
    r = run_benchmark(data, ["itemknn"], seeds=1, ks=(10,), overrides={"itemknn": {"neighbours": 9}}, progress=False)
    m = r["models"]["itemknn"]
    assert m["config"]["neighbours"] == 9 and m["tuning"]["grid"] == {}
    assert m["significance"] is None and r["reference"] == "itemknn"  # nobody to compare with


def test_temporal_split(data: Interactions) -> None:
    r = run_benchmark(data, ["pop"], seeds=1, split="temporal", ks=(10,), progress=False)
    assert r["protocol"]["split"] == "temporal" and "t_test" in r["protocol"]["split_info"]


def test_temporal_events_split_pairs_per_user_means() -> None:
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", float(t)) for u in range(40)
            for i, t in zip(rng.choice(50, 20, replace=False), np.sort(rng.uniform(0, 100, 20)))]
    data = Interactions.from_frame(pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row"))
    r = run_benchmark(data, ["pop", "itemknn"], seeds=1, split="temporal-events", ks=(10,), tune=False, progress=False)
    info = r["protocol"]["split_info"]
    assert r["protocol"]["split"] == "temporal-events" and info["test_queries"] > info["test_users"]
    # several queries per user: the paired test has one pair per user, not per query
    assert r["models"]["itemknn"]["significance"]["n_users"] == info["test_users"] == r["protocol"]["users_evaluated"]


def test_bad_arguments_raise(data: Interactions) -> None:
    with pytest.raises(ValueError, match="available"):
        run_benchmark(data, ["pop", "nope"], seeds=1, progress=False)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        run_benchmark(data, ["pop"], seeds=1, overrides={"pop": {"neighbours": 3}}, progress=False)
    with pytest.raises(ValueError, match="reference"):
        run_benchmark(data, ["pop"], seeds=1, reference="itemknn", progress=False)


# ----------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """The real ``recfuse`` app, registered once (other test modules may have done it already)."""
    from recfuse import cli

    if not any(c.name == "benchmark" for c in cli.app.registered_commands):
        try:
            cli._register()
        except ImportError:
            pass  # another command group (e.g. ``recfuse data``) is not written yet
    if cli.app.registered_groups and any(c.name == "benchmark" for c in cli.app.registered_commands):
        return cli.app
    # Fallback while ``recfuse.cli._register`` cannot run: a one-command Typer app collapses into that
    # command, so give it a callback to keep ``benchmark`` a subcommand.
    fallback = typer.Typer()
    fallback.callback()(lambda: None)
    bench_cli.register(fallback)
    return fallback


def test_register_is_idempotent() -> None:
    t = typer.Typer()
    bench_cli.register(t)
    bench_cli.register(t)
    assert [c.name for c in t.registered_commands] == ["benchmark"]


def test_cli_benchmark_writes_the_report(
    app: typer.Typer, data: Interactions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_cli, "_load_dataset", lambda name: data)
    out = tmp_path / "bench"
    res = CliRunner().invoke(
        app,
        ["benchmark", "--dataset", "clusters", "--models", "pop,itemknn", "--seeds", "10-11", "--out", str(out),
         "--no-tune", "--set", "itemknn.neighbours=12", "--quiet"],
    )
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert results["models"]["itemknn"]["config"]["neighbours"] == 12  # typed: int, not "12"
    assert len(results["models"]["pop"]["metrics"]["ndcg@10"]["per_seed"]) == 2 and results["seeds"] == [10, 11]
    assert (out / "runs" / "itemknn-seed11.npz").is_file() and (out / "runs" / "pop-seed10.json").is_file()
    md = (out / "results.md").read_text()
    assert "| Model | NDCG@10 |" in md and "itemknn" in md
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["slices_history_length.png", "slices_target_events.png", "slices_target_popularity.png"]
    for p in out.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "results.json" in res.output and "itemknn" in res.output


def test_cli_unknown_model_exits_2(app: typer.Typer, data: Interactions, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_cli, "_load_dataset", lambda name: data)
    res = CliRunner().invoke(app, ["benchmark", "--dataset", "clusters", "--models", "pop,nosuch"])
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "nosuch" in text and "pop" in text and "itemknn" in text and "als" in text


@pytest.mark.parametrize("seeds", ["0", "3-1", "1,1", "ten"])
def test_cli_bad_seeds_exit_2(app: typer.Typer, data: Interactions, monkeypatch: pytest.MonkeyPatch, seeds: str) -> None:
    monkeypatch.setattr(bench_cli, "_load_dataset", lambda name: data)
    res = CliRunner().invoke(app, ["benchmark", "--dataset", "clusters", "--models", "pop", "--seeds", seeds])
    assert res.exit_code == 2, res.output
    assert "--seeds" in res.output


@pytest.mark.parametrize(
    "setting", ["itemknn.neighbours=many", "itemknn.nope=1", "als.reg=0.1", "itemknn.seed=3", "neighbours=3"]
)
def test_cli_bad_set_exits_2(app: typer.Typer, data: Interactions, monkeypatch: pytest.MonkeyPatch,
                             setting: str) -> None:
    monkeypatch.setattr(bench_cli, "_load_dataset", lambda name: data)
    res = CliRunner().invoke(app, ["benchmark", "--dataset", "clusters", "--models", "pop,itemknn", "--set", setting])
    assert res.exit_code == 2, res.output


@pytest.mark.parametrize("setting", ["sasrec.label_smoothing=1.5", "fusion.gate=sideways"])
def test_cli_value_the_config_refuses_exits_2_before_loading(app: typer.Typer, monkeypatch: pytest.MonkeyPatch,
                                                             setting: str) -> None:
    loaded: list[str] = []
    monkeypatch.setattr(bench_cli, "_load_dataset", lambda name: loaded.append(name))
    res = CliRunner().invoke(app, ["benchmark", "--dataset", "clusters", "--models", "sasrec,fusion", "--set", setting])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert setting.split(".")[1].split("=")[0] in text and not loaded, text


def test_coerce_by_field_type() -> None:
    fields = config_fields("als")
    assert coerce("16", fields["embedding_size"]) == 16
    assert coerce("0.5", fields["reg"]) == 0.5
    assert coerce("false", fields["fold_in"]) is False
    with pytest.raises(ValueError):
        coerce("maybe", bool)


def test_parse_overrides_core_raises_value_error_naming_the_item() -> None:
    """The core refuses with ValueError (the CLI turns it into a usage error with the same message)."""
    assert parse_overrides(["itemknn.neighbours=12"], ["itemknn"]) == {"itemknn": {"neighbours": 12}}
    for item, words in [("itemknn.neighbours=many", "not an integer"), ("itemknn.nope=1", "no parameter"),
                        ("als.reg=0.1", "not in --models"), ("itemknn.seed=3", "--seeds"), ("neighbours=3", "MODEL.")]:
        with pytest.raises(ValueError, match=words) as e:
            parse_overrides([item], ["itemknn"])
        assert item in str(e.value) or words == "MODEL."
        with pytest.raises(typer.BadParameter, match=words):
            bench_cli.parse_overrides([item], ["itemknn"])


@pytest.mark.parametrize("spec, seeds", [
    ("3", [0, 1, 2]), ("10-14", [10, 11, 12, 13, 14]), ("0,3,7", [0, 3, 7]), ("0-2,5", [0, 1, 2, 5]),
    ("7-7", [7]), (" 4 , 2 ", [4, 2]),
])
def test_parse_seeds(spec: str, seeds: list[int]) -> None:
    assert parse_seeds(spec) == seeds
    assert parse_seeds(format_seeds(seeds)) == seeds or len(seeds) == 1


@pytest.mark.parametrize("spec", ["0", "", "x", "3-1", "1,1", "0-2,2", "-1", "1.5"])
def test_parse_seeds_refuses(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_seeds(spec)


def test_seed_list_runs_those_seeds_and_writes_a_record_per_fit(data: Interactions, tmp_path: Path) -> None:
    """seeds=[7, 3]: per_seed follows that order, and each fit leaves runs/MODEL-seedN.{json,npz}."""
    r = run_benchmark(data, ["pop", "itemknn"], seeds=[7, 3], ks=(10,), tune=False,
                      overrides={"itemknn": {"neighbours": 12}}, progress=False, out=tmp_path)
    assert r["seeds"] == [7, 3] and r["models"]["itemknn"]["seeds"] == [7, 3] and r["complete"] is True
    runs = tmp_path / "runs"
    assert sorted(p.name for p in runs.iterdir()) == sorted(
        f"{m}-seed{s}.{ext}" for m in ("pop", "itemknn") for s in (7, 3) for ext in ("json", "npz"))
    rec = json.loads((runs / "itemknn-seed3.json").read_text())
    assert rec["model"] == "itemknn" and rec["seed"] == 3 and rec["params"] == {"neighbours": 12}
    assert rec["config"]["neighbours"] == 12 and "seed" not in rec["config"]
    assert rec["dataset"] == "clusters" and rec["split"] == "loo"
    assert rec["best_epoch"] is None and rec["stopped"] is None and "history" not in rec["fit_info"]
    assert rec["fit_seconds"] <= rec["wall_seconds"] and rec["machine"]
    assert rec["test"]["ndcg@10"] == r["models"]["itemknn"]["metrics"]["ndcg@10"]["per_seed"][1]
    with np.load(runs / "itemknn-seed3.npz", allow_pickle=False) as npz:
        assert {"user", "valid_user", "ndcg@10", "hit@10", "valid_ndcg@10"} <= set(npz.files)
        assert len(npz["user"]) == len(npz["ndcg@10"]) == r["protocol"]["users_evaluated"]
        assert float(np.mean(npz["ndcg@10"])) == pytest.approx(rec["test"]["ndcg@10"])
        assert float(np.mean(npz["valid_ndcg@10"])) == pytest.approx(rec["valid"]["ndcg@10"])
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["complete"] is True and on_disk["models"]["pop"]["seeds"] == [7, 3]


def test_an_interrupted_run_keeps_the_fits_it_finished(data: Interactions, tmp_path: Path) -> None:
    """results.json is rewritten after each fit: a run stopped at its third fit leaves the first two."""
    fitted: list[tuple[str, int]] = []

    def stop_at_third(v: Variant, seed: int, sp: Any, model: Any) -> None:
        fitted.append((v.label, seed))
        if len(fitted) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_variants(data, [Variant("pop", "pop"), Variant("knn", "itemknn", {"neighbours": 9})], seeds=[1, 2],
                     ks=(10,), tune=False, progress=False, out=tmp_path, after_fit=stop_at_third)
    partial = json.loads((tmp_path / "results.json").read_text())
    assert partial["complete"] is False and partial["seeds"] == [1, 2]
    assert list(partial["models"]) == ["pop"] and partial["models"]["pop"]["seeds"] == [1, 2]
    assert sorted(p.name for p in (tmp_path / "runs").glob("*.json")) == ["pop-seed1.json", "pop-seed2.json"]
    assert "Partial" in markdown(partial)


@pytest.mark.slow  # a few seconds: torch's optimiser import plus two tiny epochs
def test_neural_model_reports_best_epoch_and_stays_quiet(data: Interactions, capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    from recfuse.models import MODELS

    if "gru4rec" not in MODELS:
        pytest.skip("no neural model registered yet")
    r = run_benchmark(data, ["gru4rec"], seeds=1, ks=(10,), tune=False,
                      overrides={"gru4rec": {"epochs": 2, "device": "cpu"}}, progress=False)
    m = r["models"]["gru4rec"]
    assert len(m["best_epoch"]) == 1 and m["best_epoch"][0] in (1, 2)
    assert "progress" not in m["config"] and "seed" not in m["config"] and m["config"]["epochs"] == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""  # progress=False silences the trainer's bar too


def test_save_models_writes_loadable_model_directories(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """--save-models: each model's seed-0 fit becomes a model directory that loads back to the same ranking."""
    from recfuse.bundle import Bundle
    from recfuse.data.dataset import Interactions
    from recfuse.data.split import leave_one_out
    from recfuse.evaluate.runner import run_benchmark

    seqs = [(f"u{u}", [f"i{(u + j) % 25}" for j in range(6)]) for u in range(40)]
    data = Interactions.from_sequences(seqs)
    run_benchmark(data, ["pop", "itemknn"], seeds=2, ks=(10,), tune=False, progress=False, save_models=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["itemknn", "pop"]
    bundle = Bundle.load(tmp_path / "itemknn")
    assert bundle.meta["model"] == "itemknn" and bundle.meta["seed"] == 0
    q = leave_one_out(data).test.queries
    from recfuse.models import MODELS

    fresh = MODELS["itemknn"]().fit(leave_one_out(data).train)
    np.testing.assert_array_equal(bundle.model.recommend(q, 5)[0], fresh.recommend(q, 5)[0])


def test_jobs_runs_fits_in_worker_processes_with_the_same_figures(data: Interactions, tmp_path: Path) -> None:
    """--jobs 2: (model, seed) fits in spawned workers give the sequential run's figures, in seed order,
    and hooks such as --save-models still get every fitted model (sent back to this process)."""
    from recfuse.bundle import Bundle

    over = {"sasrec": {"epochs": 2, "embedding_size": 16, "device": "cpu"}}
    kw: dict[str, Any] = {"seeds": [5, 2], "ks": (10,), "tune": False, "overrides": over, "progress": False}
    one = run_benchmark(data, ["pop", "sasrec"], **kw)
    two = run_benchmark(data, ["pop", "sasrec"], jobs=2, save_models=tmp_path / "models", out=tmp_path / "out", **kw)
    for m in ("pop", "sasrec"):
        np.testing.assert_allclose(two["models"][m]["metrics"]["ndcg@10"]["per_seed"],
                                   one["models"][m]["metrics"]["ndcg@10"]["per_seed"], atol=1e-3)
        assert two["models"][m]["seeds"] == [5, 2]
    assert two["models"]["sasrec"]["best_epoch"] == one["models"]["sasrec"]["best_epoch"]
    assert two["models"]["sasrec"]["stopped"] == ["epochs", "epochs"]
    models = tmp_path / "models"
    assert sorted(p.name for p in models.iterdir()) == ["pop", "sasrec"]  # the first seed of each, saved here
    assert Bundle.load(models / "sasrec").meta["seed"] == 5
    rec = json.loads((tmp_path / "out" / "runs" / "sasrec-seed2.json").read_text())
    assert rec["seed"] == 2 and rec["stopped"] == "epochs" and rec["epochs_run"] == 2 and rec["torch_threads"] >= 1
    assert rec["test"]["ndcg@10"] == pytest.approx(two["models"]["sasrec"]["metrics"]["ndcg@10"]["per_seed"][1])
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        run_benchmark(data, ["pop"], seeds=1, jobs=0, progress=False)


def test_threads_sets_torch_threads_for_every_fit_and_restores_them(data: Interactions, tmp_path: Path) -> None:
    """--threads N: the fits run with N torch threads, here and in worker processes (recorded in each
    run record), and torch's setting is back as it was afterwards."""
    import torch

    before = torch.get_num_threads()
    over = {"sasrec": {"epochs": 1, "embedding_size": 16, "device": "cpu"}}
    kw: dict[str, Any] = {"seeds": 1, "ks": (10,), "tune": False, "overrides": over, "progress": False}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        run_benchmark(data, ["pop", "sasrec"], jobs=jobs, threads=1, out=out, **kw)
        assert json.loads((out / "runs" / "sasrec-seed0.json").read_text())["torch_threads"] == 1
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be at least 1"):
        run_benchmark(data, ["pop"], seeds=1, threads=0, progress=False)


def test_jobs_show_the_epochs_of_worker_fits(data: Interactions) -> None:
    """Fits in worker processes report their epochs to the parent's console (a line every 10
    epochs when it is not a terminal, e.g. a log file)."""
    import io

    from rich.console import Console

    out = io.StringIO()
    over = {"sasrec": {"epochs": 10, "patience": 10, "embedding_size": 16, "device": "cpu"}}
    run_benchmark(data, ["sasrec"], seeds=2, ks=(10,), tune=False, overrides=over, jobs=2,
                  console=Console(file=out, width=200), progress=True)
    text = out.getvalue()
    for seed in (0, 1):
        assert f"sasrec seed {seed} epoch 10: loss " in text
    assert "valid ndcg@10" in text


def test_config_helpers_import_nothing_heavy() -> None:
    """recfuse.config is imported by the models: it must not pull in typer, torch or the evaluation package."""
    import subprocess
    import sys

    code = ("import sys, recfuse.config; "
            "print(sorted(m for m in ('typer', 'torch', 'recfuse.evaluate', 'recfuse.models') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
