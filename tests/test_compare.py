"""``recfuse compare``: two models' recorded fits, per seed, with the paired tests over users.

The runs/ folder here is written by hand (not by the runner), with per-user
values small enough to check: the expected ratio and p-values are computed
with scipy directly on the same arrays.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import typer
from rich.console import Console
from scipy import stats
from typer.testing import CliRunner

from recfuse.evaluate import cli as bench_cli
from recfuse.evaluate.report import compare_file_name, compare_runs, load_runs, print_compare

USERS = np.arange(12)
#: Per-user test NDCG@10 of model "a" and "b", per seed; "b" has no seed 2 (it never finished).
TEST = {
    ("a", 0): [1.0, 0.5, 0.0, 0.0, 1.0, 0.3, 0.0, 0.6, 0.0, 1.0, 0.2, 0.0],
    ("a", 1): [1.0, 0.6, 0.0, 0.5, 1.0, 0.3, 0.0, 0.4, 0.0, 0.5, 0.2, 0.1],
    ("a", 2): [0.0] * 12,
    ("b", 0): [0.5, 0.5, 0.0, 0.0, 0.6, 0.3, 0.0, 0.2, 0.0, 1.0, 0.0, 0.0],
    ("b", 1): [1.0, 0.3, 0.0, 0.0, 0.5, 0.3, 0.0, 0.4, 0.0, 0.3, 0.2, 0.0],
}
VALID = {key: list(reversed(v)) for key, v in TEST.items()}


def write_run(folder: Path, model: str, seed: int, test: list[float], valid: list[float],
              users: np.ndarray = USERS, **extra: object) -> None:
    """One record as ``recfuse benchmark`` leaves it: runs/MODEL-seedN.json + .npz."""
    runs = folder / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    t, v = np.asarray(test), np.asarray(valid)
    hit_t, hit_v = (t > 0).astype(float), (v > 0).astype(float)
    record = {
        "model": model, "registry_model": model, "seed": seed, "params": {"epochs": 3}, "dataset": "toy",
        "split": "loo", "mask_history": True,
        "test": {"ndcg@10": float(t.mean()), "hit@10": float(hit_t.mean())},
        "valid": {"ndcg@10": float(v.mean()), "hit@10": float(hit_v.mean())},
        "fit_info": {"best_epoch": 2, "epochs_run": 3, "stopped": "epochs", "seconds_to_best_epoch": 4.0 + seed},
        "best_epoch": 2, "stopped": "epochs", "machine": "test box", **extra,
    }
    (runs / f"{model}-seed{seed}.json").write_text(json.dumps(record))
    np.savez(runs / f"{model}-seed{seed}.npz", user=users, valid_user=users, **{"ndcg@10": t, "hit@10": hit_t},
             **{"valid_ndcg@10": v, "valid_hit@10": hit_v})


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    for (model, seed), test in TEST.items():
        write_run(tmp_path, model, seed, test, VALID[model, seed])
    return tmp_path


def expected(on: dict[tuple[str, int], list[float]], seeds: list[int]) -> tuple[float, float, float]:
    """Ratio of means, Wilcoxon (zsplit) and t-test p over users, each user averaged over ``seeds`` first."""
    a = np.mean([on["a", s] for s in seeds], axis=0)
    b = np.mean([on["b", s] for s in seeds], axis=0)
    diff = a - b
    return (float(a.mean() / b.mean()), float(stats.wilcoxon(diff, zero_method="zsplit").pvalue),
            float(stats.ttest_1samp(diff, 0.0).pvalue))


def test_load_runs_reads_every_seed_of_one_model(runs: Path) -> None:
    assert sorted(load_runs(runs, "a")) == [0, 1, 2] and sorted(load_runs(runs / "runs", "b")) == [0, 1]
    assert load_runs(runs, "c") == {}


def test_ratio_and_paired_tests_over_the_seeds_both_have(runs: Path) -> None:
    cmp = compare_runs("a", "b", runs)
    ratio, wilcoxon_p, ttest_p = expected(TEST, [0, 1])
    assert cmp["seeds"] == [0, 1]  # a's seed 2 has no partner
    assert cmp["ratio"] == pytest.approx(ratio) and ratio == pytest.approx(4.6 / 3.05)
    assert cmp["wilcoxon_p"] == pytest.approx(wilcoxon_p) and cmp["ttest_p"] == pytest.approx(ttest_p)
    assert cmp["n_users"] == cmp["n_queries"] == 12
    a = cmp["models"]["a"]
    per_seed = [float(np.mean(TEST["a", 0])), float(np.mean(TEST["a", 1]))]
    assert a["per_seed"] == pytest.approx(per_seed)
    assert a["mean"] == pytest.approx(np.mean(per_seed)) and a["std"] == pytest.approx(np.std(per_seed, ddof=1))
    assert a["best_epoch"] == [2, 2] and a["stopped"] == ["epochs", "epochs"] and a["seconds_to_best"] == 4.5


def test_seeds_and_valid(runs: Path) -> None:
    one = compare_runs("a", "b", runs, seeds=[1])
    assert one["seeds"] == [1] and one["models"]["a"]["std"] == 0.0
    assert one["ratio"] == pytest.approx(expected(TEST, [1])[0])
    valid = compare_runs("a", "b", runs, on="valid")
    ratio, wilcoxon_p, ttest_p = expected(VALID, [0, 1])
    assert valid["ratio"] == pytest.approx(ratio) and valid["wilcoxon_p"] == pytest.approx(wilcoxon_p)
    assert valid["ttest_p"] == pytest.approx(ttest_p)
    assert valid["models"]["a"]["per_seed"] == pytest.approx([np.mean(VALID["a", s]) for s in (0, 1)])
    with pytest.raises(ValueError, match="no seed that both"):
        compare_runs("a", "b", runs, seeds=[2])
    with pytest.raises(ValueError, match="not among the recorded metrics"):
        compare_runs("a", "b", runs, metric="mrr@10")


def test_several_queries_per_user_are_averaged_per_user_first(tmp_path: Path) -> None:
    """Under an event-by-event split a user has several queries: the tests pair the users' means."""
    users = np.array([0, 0, 1, 2, 2, 2])
    a, b = [1.0, 0.0, 0.5, 0.2, 0.4, 0.9], [0.5, 0.0, 0.5, 0.1, 0.1, 0.1]
    write_run(tmp_path, "a", 0, a, a, users=users)
    write_run(tmp_path, "b", 0, b, b, users=users)
    cmp = compare_runs("a", "b", tmp_path)
    assert cmp["n_users"] == 3 and cmp["n_queries"] == 6
    assert cmp["ratio"] == pytest.approx(np.mean(a) / np.mean(b))  # over queries, as the per-seed means
    diff = np.array([0.25, 0.0, 0.4])  # per-user means of a - b
    assert cmp["ttest_p"] == pytest.approx(stats.ttest_1samp(diff, 0.0).pvalue)


def test_refuses_runs_on_other_queries(runs: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    write_run(other, "b", 0, TEST["b", 0], VALID["b", 0], users=USERS[::-1].copy())
    with pytest.raises(ValueError, match="other test queries"):
        compare_runs("a", "b", runs, b_runs=other)
    write_run(other, "b", 1, TEST["b", 1], VALID["b", 1], split="temporal")
    with pytest.raises(ValueError, match="split"):
        compare_runs("a", "b", runs, b_runs=other, seeds=[1])


def test_same_model_from_two_folders_is_labelled_by_folder(runs: Path, tmp_path: Path) -> None:
    other = tmp_path / "switch"
    for s in (0, 1):
        write_run(other, "a", s, TEST["b", s], VALID["b", s])
    cmp = compare_runs("a", "a", runs, b_runs=other)
    assert cmp["a"] == f"a ({runs.name})" and cmp["b"] == "a (switch)"
    assert cmp["ratio"] == pytest.approx(expected(TEST, [0, 1])[0])


def test_print_compare_on_a_terminal_and_in_a_log(runs: Path) -> None:
    cmp = compare_runs("a", "b", runs)
    log = io.StringIO()
    print_compare(cmp, Console(file=log, width=200))  # not a terminal: the Markdown text
    assert "| mean ± std |" in log.getvalue() and f"test: a / b = {4.6 / 3.05:.4f}" in log.getvalue()
    term = io.StringIO()
    print_compare(cmp, Console(file=term, width=200, force_terminal=True, color_system=None))
    assert "a vs b per seed" in term.getvalue() and "| mean ± std |" not in term.getvalue()


def _app() -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)
    bench_cli.register_compare(app)
    return app


def test_cli_compare_prints_and_writes_the_table(runs: Path) -> None:
    res = CliRunner().invoke(_app(), ["compare", "a", "b", "--runs", str(runs)])
    assert res.exit_code == 0, res.output
    ratio, wilcoxon_p, ttest_p = expected(TEST, [0, 1])
    line = f"paired Wilcoxon over 12 users p = {wilcoxon_p:.3g}, paired t-test p = {ttest_p:.3g}"
    assert f"test: a / b = {ratio:.4f}" in res.output and line in res.output
    written = runs / "compare_a_vs_b.md"
    assert written.is_file() and line in written.read_text()
    assert "| a | " in written.read_text() and "seeds [0, 1]" in written.read_text()
    res = CliRunner().invoke(_app(), ["compare", "a", "b", "--runs", str(runs), "--seeds", "1-1", "--on", "valid"])
    assert res.exit_code == 0, res.output
    assert (runs / compare_file_name("a", "b", [1], "valid")).is_file()


@pytest.mark.parametrize("args", [
    ["--seeds", "2-2"],  # b has no seed 2
    ["--on", "train"],
    ["--seeds", "x"],
    ["--metric", "mrr@10"],
])
def test_cli_compare_bad_options_exit_2(runs: Path, args: list[str]) -> None:
    res = CliRunner().invoke(_app(), ["compare", "a", "b", "--runs", str(runs), *args])
    assert res.exit_code == 2, res.output


def test_cli_compare_missing_folder_exits_2(tmp_path: Path) -> None:
    res = CliRunner().invoke(_app(), ["compare", "a", "b", "--runs", str(tmp_path / "nope")])
    assert res.exit_code == 2, res.output
