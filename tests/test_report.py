"""The report against a hand-made results dict whose table is known in advance."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from recfuse.evaluate.report import leaderboard, markdown, print_leaderboard, slice_table, write_report


def s(mean: float, std: float = 0.0) -> dict[str, Any]:
    return {"mean": mean, "std": std, "per_seed": [mean - std, mean + std]}


def model(ndcg10: float, std: float, seconds: float, sig: dict[str, Any] | None, head: float, tail: float
          ) -> dict[str, Any]:
    metrics = {
        "ndcg@10": s(ndcg10, std), "recall@10": s(2 * ndcg10), "mrr@10": s(ndcg10 / 2),
        "ndcg@20": s(ndcg10 + 0.01), "recall@20": s(3 * ndcg10), "coverage@10": s(0.25),
    }
    return {
        "metrics": metrics,
        "valid_metrics": metrics,
        "slices": {
            "target_popularity=head": {"ndcg@10": s(head, 0.001)},
            "target_popularity=tail": {"ndcg@10": s(tail)},
            "history_length=short": {"ndcg@10": s(ndcg10)},
        },
        "significance": sig,
        "train_seconds": s(seconds),
        "best_epoch": [None, None],
        "config": {"neighbours": 50} if sig else {},
        "tuning": {"grid": {"neighbours": [50, 100]}, "valid_ndcg@10": {}} if sig else {"grid": {}},
    }


def sig(vs: str, p: float) -> dict[str, Any]:
    return {"vs": vs, "metric": "ndcg@10", "wilcoxon_p": p, "ttest_p": p, "mean_diff": 0.0, "ratio": 1.0,
            "n_users": 100}


@pytest.fixture
def results() -> dict[str, Any]:
    return {
        "dataset": "toy",
        "protocol": {"split": "loo", "ks": [10, 20], "mask_history": True, "users_evaluated": 100, "n_items": 50,
                     "n_train_events": 900, "split_info": {},
                     "slice_sizes": {"target_popularity=head": 40, "target_popularity=tail": 60,
                                     "history_length=short": 100}},
        "versions": {"recfuse": "0.1.0", "python": "3.11", "numpy": "2", "torch": None, "implicit": "0.7",
                     "polars": "1"},
        "machine": {"cpus": 4, "platform": "test"},
        "reference": "knn",
        # deliberately not in score order: the table must sort
        "models": {
            "pop": model(0.05, 0.0, 0.01, sig("knn", 2.1e-05), head=0.15, tail=0.0),
            "knn": model(0.08, 0.0012, 1.234, sig("pop", 2.1e-05), head=0.2, tail=0.02),
            "odd": model(0.07, 0.005, 12.0, None, head=0.1, tail=0.05),
        },
    }


def test_leaderboard_rows(results: dict[str, Any]) -> None:
    headers, rows = leaderboard(results)
    assert headers == ["Model", "NDCG@10", "Recall@10", "MRR@10", "NDCG@20", "Recall@20", "Coverage@10",
                       "Train s", "vs", "p (Wilcoxon)"]
    assert rows == [
        ["knn (ref)", "0.0800 ± 0.0012", "0.1600", "0.0400", "0.0900", "0.2400", "0.2500", "1.23", "pop", "2.1e-05"],
        ["odd", "0.0700 ± 0.0050", "0.1400", "0.0350", "0.0800", "0.2100", "0.2500", "12.00", "—", "—"],
        ["pop", "0.0500 ± 0.0000", "0.1000", "0.0250", "0.0600", "0.1500", "0.2500", "0.01", "knn", "2.1e-05"],
    ]


def test_markdown_tables(results: dict[str, Any]) -> None:
    md = markdown(results)
    lines = md.splitlines()
    assert lines[0] == "# Benchmark: toy"
    i = lines.index("| Model | NDCG@10 | Recall@10 | MRR@10 | NDCG@20 | Recall@20 | Coverage@10 | Train s | vs | "
                    "p (Wilcoxon) |")
    assert lines[i + 1] == "|---|---|---|---|---|---|---|---|---|---|"
    assert lines[i + 2] == ("| knn (ref) | 0.0800 ± 0.0012 | 0.1600 | 0.0400 | 0.0900 | 0.2400 | 0.2500 | 1.23 | "
                            "pop | 2.1e-05 |")
    assert lines[i + 3].startswith("| odd | 0.0700 ± 0.0050 |")
    assert lines[i + 4].startswith("| pop | 0.0500 ± 0.0000 |")
    j = lines.index("| Model | target_popularity=head (n=40) | target_popularity=tail (n=60) | "
                    "history_length=short (n=100) |")
    assert lines[j + 2] == "| knn | 0.2000 ± 0.0010 | 0.0200 ± 0.0000 | 0.0800 ± 0.0000 |"
    assert "- **knn**: neighbours=50; tuned on valid over neighbours ∈ [50, 100]" in lines
    assert "- **odd**: defaults" in lines
    assert "100 users evaluated, 2 seed(s)" in md
    assert "torch" not in md.split("Versions:")[1].split(".")[0]  # missing versions are left out


def test_columns_for_missing_k_are_dropped(results: dict[str, Any]) -> None:
    results["protocol"]["ks"] = [10]
    for m in results["models"].values():
        for key in ("ndcg@20", "recall@20"):
            del m["metrics"][key]
    headers, _ = leaderboard(results)
    assert "NDCG@20" not in headers and "Recall@20" not in headers


def test_slice_table_columns(results: dict[str, Any]) -> None:
    headers, rows = slice_table(results)
    assert headers[1:] == ["target_popularity=head (n=40)", "target_popularity=tail (n=60)",
                           "history_length=short (n=100)"]
    assert [r[0] for r in rows] == ["knn", "odd", "pop"]


def test_print_leaderboard(results: dict[str, Any]) -> None:
    console = Console(record=True, width=200)
    print_leaderboard(results, console)
    text = console.export_text()
    assert "knn (ref)" in text and "0.0800 ± 0.0012" in text and "2.1e-05" in text
    first_cells = [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│")]
    assert first_cells == ["knn (ref)", "odd", "pop"]


def test_write_report(results: dict[str, Any], tmp_path: Path) -> None:
    paths = write_report(results, tmp_path / "out")
    names = [p.name for p in paths]
    assert names == ["results.json", "results.md", "slices_target_popularity.png", "slices_history_length.png"]
    assert json.loads(paths[0].read_text()) == results
    for p in paths[2:]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 1000


def test_nan_is_refused(results: dict[str, Any], tmp_path: Path) -> None:
    results["models"]["pop"]["metrics"]["ndcg@10"]["mean"] = math.nan
    with pytest.raises(ValueError):
        write_report(results, tmp_path)


# ------------------------------------------------------------------ the headline table (recfuse report)
HEADLINE = """\
[[figure]]
folder = "toy"
models = ["knn", "pop"]
reference = "pop"

[[figure]]
folder = "not-run-yet"
models = ["fusion"]
"""

README = """\
# Toy

Some text the report must not touch.

<!-- results-table:start -->
stale table
<!-- results-table:end -->

More text.
"""


@pytest.fixture
def bench(results: dict[str, Any], tmp_path: Path) -> Path:
    """A benchmarks/ folder: headline.toml, toy/results.json (seeds 10-11), no not-run-yet/results.json."""
    root = tmp_path / "benchmarks"
    (root / "toy").mkdir(parents=True)
    results = {**results, "seeds": [10, 11]}
    results["models"]["knn"]["metrics"]["hit@10"] = s(0.16, 0.01)
    results["models"]["knn"]["significance"]["ratio"] = 1.6
    (root / "toy" / "results.json").write_text(json.dumps(results))
    (root / "headline.toml").write_text(HEADLINE)
    return root


def test_headline_rows(bench: Path) -> None:
    from recfuse.evaluate.report import headline_rows, read_headline

    headers, rows, missing = headline_rows(read_headline(bench / "headline.toml"), bench)
    # Two figures, one without a reference: a vs column names each row's comparator.
    assert headers == ["dataset", "model", "NDCG@10", "HR@10", "seeds", "vs", "ratio (NDCG@10)", "Wilcoxon p"]
    assert rows == [
        ["toy", "knn", "**0.0800 ± 0.0012**", "**0.1600 ± 0.0100**", "10-11", "pop", "1.600x", "2.1e-05"],
        ["toy", "pop", "0.0500 ± 0.0000", "—", "10-11", "", "", ""],
    ]
    assert missing == [str(bench / "not-run-yet" / "results.json")]
    one = [f for f in read_headline(bench / "headline.toml") if f["folder"] == "toy"]
    headers, rows, _ = headline_rows(one, bench)  # one reference for the whole table: the header names it
    assert headers[5:] == ["vs pop (NDCG@10)", "Wilcoxon p"] and rows[0][5:] == ["1.600x", "2.1e-05"]


def test_report_writes_between_the_markers_only(bench: Path, tmp_path: Path) -> None:
    from recfuse.evaluate.report import headline_table, update_tables

    readme, plain = tmp_path / "README.md", tmp_path / "plain.md"
    readme.write_text(README)
    plain.write_text("no markers here\n")
    table, _ = headline_table(bench / "headline.toml")
    assert update_tables([readme, plain], table, check=True) == {readme: "out of date", plain: "no markers"}
    assert readme.read_text() == README  # --check writes nothing
    assert update_tables([readme, plain, tmp_path / "gone.md"], table) == {
        readme: "updated", plain: "no markers", tmp_path / "gone.md": "missing"}
    text = readme.read_text()
    before, rest = text.split("<!-- results-table:start -->\n")
    inside, after = rest.split("<!-- results-table:end -->\n")
    assert before == README.split("<!-- results-table:start -->")[0]
    assert after == README.split("<!-- results-table:end -->\n")[1]
    assert "stale" not in inside and "| toy | knn | **0.0800 ± 0.0012** |" in inside
    assert update_tables([readme], table, check=True) == {readme: "up to date"}
    assert plain.read_text() == "no markers here\n"


def test_cli_report_and_check(bench: Path, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from recfuse.evaluate import cli as bench_cli

    app = typer.Typer()
    app.callback()(lambda: None)
    bench_cli.register_report(app)
    readme = tmp_path / "README.md"
    readme.write_text(README)
    args = ["report", "--headline", str(bench / "headline.toml"), "--file", str(readme)]
    res = CliRunner().invoke(app, [*args, "--check"])
    assert res.exit_code == 1 and "out of date" in res.output, res.output
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0 and "updated" in res.output, res.output
    assert "not-run-yet" in res.output  # the figure without results.json is named, and left out
    res = CliRunner().invoke(app, [*args, "--check"])
    assert res.exit_code == 0 and "up to date" in res.output, res.output
    (bench / "headline.toml").write_text('[[figure]]\nfolder = "toy"\nmodels = ["knn"]\nreference = "pop"\n')
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output  # the reference must be one of the figure's models


def test_markdown_names_the_seeds(results: dict[str, Any]) -> None:
    assert "seeds 10-14" in markdown({**results, "seeds": [10, 11, 12, 13, 14]})
    assert "2 seed(s)" in markdown(results)


def test_a_narrow_terminal_gets_fewer_columns_and_whole_numbers(results: dict[str, Any]) -> None:
    """An 80-column terminal cut every cell to '0.…'; now columns are left out and the numbers stay whole."""
    console = Console(record=True, width=50)
    print_leaderboard(results, console)
    text = console.export_text()
    assert "…" not in text and "columns left out for this terminal's width" in " ".join(text.split())
    assert "0.1" in text  # a whole NDCG@10 figure


def test_one_seed_is_said_to_be_one_seed(results: dict[str, Any]) -> None:
    console = Console(record=True, width=250)
    print_leaderboard({**results, "seeds": [0]}, console)
    assert "one seed (0): a preview" in console.export_text()
