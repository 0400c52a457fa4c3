"""describe(): hand-checked numbers on the fixtures, and `recfuse data describe`."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from recfuse.data import Interactions, load, read_atomic, read_sequences
from recfuse.data.cli import app
from recfuse.data.describe import describe, describe_table

DATA = Path(__file__).parent / "data"


def test_describe_atomic_fixture() -> None:
    s = describe(read_atomic(DATA / "atomic"))
    # u1: i3@300, i1@100, i2@100; u2: i1@100, i3@50; catalogue adds i4.
    assert (s["users"], s["items"], s["events"]) == (2, 4, 5)
    assert s["items_without_events"] == 1
    assert s["time"] == {"first": "1970-01-01", "last": "1970-01-01", "days": 0.0}
    assert s["sequence_length"] == {"min": 2, "25%": 2.25, "50%": 2.5, "75%": 2.75, "90%": 2.9, "max": 3, "mean": 2.5}
    assert s["sparsity"] == pytest.approx(1 - 5 / 8)
    assert s["ratings"] == {"min": 1.0, "max": 5.0, "mean": 3.0, "missing": 0}
    assert s["users_below_min_events"] == 1  # u2 has 2 events
    assert s["duplicate_rows"] == 0
    assert s["item_features"] == ["title", "year", "genres"]


def test_describe_time_span_in_days() -> None:
    frame = pl.DataFrame(
        {
            "user_id": ["a", "a", "b"],
            "item_id": ["x", "y", "x"],
            "timestamp": [1_704_067_200, 1_704_067_200 + 86_400 * 30 + 43_200, 1_704_067_200],
        }
    )
    s = describe(Interactions.from_frame(frame))
    assert s["time"] == {"first": "2024-01-01", "last": "2024-01-31", "days": 30.5}


def test_describe_sequences_counts_repeated_pairs_once_for_sparsity() -> None:
    data = read_sequences(DATA / "sequence" / "Toy.txt")  # user 3 has item 5 twice
    s = describe(data)
    assert s["time"] is None and s["ratings"] is None
    assert s["duplicate_rows"] == 1
    assert s["sparsity"] == pytest.approx(1 - 8 / 15)  # 9 events, 8 distinct (user, item) pairs
    assert s["users_below_min_events"] == 1  # user 2


def test_describe_is_json_ready_and_renders() -> None:
    s = describe(load(DATA / "ml-latest-small"))
    assert json.loads(json.dumps(s)) == s
    assert describe_table(s).row_count > 10


def test_cli_describe_table_and_json() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["describe", str(DATA / "ml-1m")])
    assert result.exit_code == 0, result.output
    assert "kept out of evaluation" in result.stdout and "time span" in result.stdout
    result = runner.invoke(app, ["describe", str(DATA / "ml-1m"), "--json"])
    assert json.loads(result.stdout)["events"] == 4


def test_cli_describe_generic_log_with_mapping() -> None:
    args = [
        "describe",
        str(DATA / "log" / "events.csv"),
        "--json",
        "--user",
        "session_user",
        "--item",
        "product",
        "--timestamp",
        "when",
        "--items",
        str(DATA / "log" / "items.csv"),
        "--item-id",
        "sku",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    assert (s["users"], s["items"], s["events"], s["items_without_events"]) == (2, 4, 4, 1)


def test_cli_describe_bad_file_exits_2_with_the_message(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::10::5::978300760\n1::11\n")
    result = CliRunner().invoke(app, ["describe", str(tmp_path)])
    assert result.exit_code == 2
    assert "ratings.dat: line 2: expected 4 fields" in " ".join(result.stderr.split())
    assert "Traceback" not in result.output
