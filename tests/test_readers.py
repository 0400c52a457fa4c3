"""Readers: one hand-written fixture per format, one test per error case.

Fixtures live in tests/data/; every fixture has a timestamp tie whose file
order must survive the time sort.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recfuse.columns import Columns
from recfuse.data import (
    DataError,
    Interactions,
    detect_format,
    load,
    read_atomic,
    read_log,
    read_ml100k,
    read_movielens_csv,
    read_movielens_dat,
    read_sequences,
)

DATA = Path(__file__).parent / "data"


def events(data: Interactions) -> list[tuple[str, str]]:
    """(user, item) external ids in stored order: by user, then time, then file order."""
    return list(zip(data.users.to_external(data.user).tolist(), data.items.to_external(data.item).tolist()))


def features(data: Interactions, item: str) -> dict[str, object]:
    assert data.item_features is not None
    return data.item_features.row(data.items.index(item), named=True)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# ------------------------------------------------------------------ formats
def test_atomic_events_ids_ties_and_text() -> None:
    data = read_atomic(DATA / "atomic")
    assert data.name == "toy"
    # u1 has i1 and i2 both at t=100: file order (i1 on line 3, i2 on line 4) is kept.
    assert events(data) == [("u1", "i1"), ("u1", "i2"), ("u1", "i3"), ("u2", "i3"), ("u2", "i1")]
    assert data.users.external_ids.tolist() == ["u1", "u2"]
    assert data.items.external_ids.tolist() == ["i3", "i1", "i2", "i4"]  # i4: catalogue only
    assert data.timestamp.tolist() == [100, 100, 300, 50, 100]
    assert data.rating.tolist() == [3, 2, 4, 1, 5]
    assert features(data, "i1") == {
        Columns.ITEM: "i1",
        "title": "Toy Story",
        "year": "1995",
        "genres": "Animation|Children's|Comedy",
    }
    assert data.user_features is not None
    assert data.user_features.columns == [Columns.USER, "age", "gender", "occupation", "zip_code"]


def test_atomic_reads_the_inter_file_directly() -> None:
    assert read_atomic(DATA / "atomic" / "toy.inter").n_events == 5


def test_ml100k_original_files() -> None:
    data = read_ml100k(DATA / "ml-100k")
    # user 1: 30 at t=881250000, then 10 and 20 tied at 881250949 (file order).
    assert events(data) == [("1", "30"), ("1", "10"), ("1", "20"), ("2", "20")]
    assert data.n_items == 4  # item 40 has no events
    assert features(data, "10") == {
        Columns.ITEM: "10",
        "title": "Café Society",  # u.item is latin-1
        "year": "1995",
        "genres": "Comedy|Drama",
    }
    assert features(data, "20")["genres"] == "Action|Crime|Thriller"
    assert features(data, "30") == {Columns.ITEM: "30", "title": "unknown", "year": None, "genres": "unknown"}
    assert data.user_features is not None and data.user_features.height == 2


def test_ml1m_dat_files() -> None:
    data = read_movielens_dat(DATA / "ml-1m")
    assert data.name == "ml-1m"
    assert events(data) == [("1", "1193"), ("1", "914"), ("1", "661"), ("2", "1193")]
    assert features(data, "29")["title"] == "Cité des enfants perdus, La (City of Lost Children, The)"
    assert features(data, "29")["year"] == "1995"
    assert features(data, "661")["genres"] == "Animation|Children's|Musical"
    assert data.user_features is not None
    assert data.user_features["occupation"].to_list() == ["K-12 student", "self-employed"]


def test_movielens_csv_with_tags() -> None:
    data = read_movielens_csv(DATA / "ml-latest-small")
    assert events(data) == [("1", "3"), ("1", "6"), ("1", "47"), ("1", "1"), ("2", "1")]
    assert data.n_items == 6  # 50 and 99 are catalogue-only
    assert features(data, "1")["tags"] == "pixar|fun"  # "pixar" twice (case-insensitive), so first
    assert features(data, "50")["title"] == "Usual Suspects, The"  # quoted title with a comma
    assert features(data, "99") == {
        Columns.ITEM: "99",
        "title": "Unreleased Thing",
        "year": None,
        "genres": None,
        "tags": None,
    }
    assert data.rating.dtype == np.float32


def test_sequences() -> None:
    data = read_sequences(DATA / "sequence" / "Toy.txt")
    assert data.timestamp is None and data.rating is None
    assert data.users.external_ids.tolist() == ["1", "2", "3"]
    assert data.items.to_external(data.user_items(2)).tolist() == ["5", "1", "5"]
    assert data.counts["duplicate_rows"] == 1
    assert data.counts["sequences"] == 3


def test_generic_log_with_iso_times_and_catalogue() -> None:
    data = read_log(
        DATA / "log" / "events.csv",
        user="session_user",
        item="product",
        timestamp="when",
        rating="stars",
        event_type="action",
        items_path=DATA / "log" / "items.csv",
        item_id="sku",
    )
    # alice: p2 on Jan 1, then p1 and p3 tied at Jan 2 10:00 in file order.
    assert events(data) == [("alice", "p2"), ("alice", "p1"), ("alice", "p3"), ("bob", "p2")]
    jan1 = datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()  # noqa: UP017
    assert data.timestamp.tolist() == [jan1, jan1 + 34 * 3600, jan1 + 34 * 3600, jan1]
    assert data.event_type.tolist() == ["buy", "view", "view", "view"]
    assert data.counts["missing_ratings"] == 2
    assert np.isnan(data.rating[2])
    assert features(data, "p1") == {Columns.ITEM: "p1", "name": "Red mug", "description": "A red mug, 300 ml"}
    assert data.n_items == 4


def test_generic_log_parquet_numeric_and_datetime(tmp_path: Path) -> None:
    frame = pl.DataFrame({"u": [1, 1, 2], "i": [7, 8, 7], "t": [20, 10, 5]})
    frame.write_parquet(tmp_path / "log.parquet")
    data = read_log(tmp_path / "log.parquet", user="u", item="i", timestamp="t")
    assert events(data) == [("1", "8"), ("1", "7"), ("2", "7")]
    stamps = frame.with_columns(pl.from_epoch("t", time_unit="s"))
    stamps.write_parquet(tmp_path / "dt.parquet")
    assert read_log(tmp_path / "dt.parquet", user="u", item="i", timestamp="t").timestamp.tolist() == [10, 20, 5]


def test_load_detects_every_format() -> None:
    expected = {
        "atomic": "atomic",
        "ml-100k": "ml-100k",
        "ml-1m": "ml-dat",
        "ml-latest-small": "movielens-csv",
        "sequence": "sequence",
    }
    for folder, fmt in expected.items():
        assert detect_format(DATA / folder) == fmt
        assert load(DATA / folder).n_events > 0
    assert detect_format(DATA / "log" / "events.csv") == "log"
    assert load(DATA / "sequence").name == "Toy"  # LICENSE.txt is not mistaken for data


def test_load_generic_log_with_canonical_columns(tmp_path: Path) -> None:
    log = write(tmp_path / "log.tsv", "user_id\titem_id\ttimestamp\nu\ta\t2\nu\tb\t1\n")
    data = load(log, timestamp="timestamp")
    assert events(data) == [("u", "b"), ("u", "a")]


# --------------------------------------------------------------- duplicates
def test_duplicates_kept_and_counted_by_default(tmp_path: Path) -> None:
    f = write(tmp_path / "log.csv", "user_id,item_id,timestamp\nu,a,1\nu,a,1\nu,a,1\nu,b,1\n")
    data = read_log(f, timestamp="timestamp")
    assert data.n_events == 4 and data.counts["duplicate_rows"] == 2


def test_drop_duplicates_drops_and_counts(tmp_path: Path) -> None:
    f = write(tmp_path / "log.csv", "user_id,item_id,timestamp\nu,a,1\nu,a,1\nu,a,1\nu,b,1\n")
    data = load(f, timestamp="timestamp", drop_duplicates=True)
    assert data.n_events == 2
    assert data.counts["duplicate_rows_dropped"] == 2
    assert data.counts["rows_read"] == 4


def test_blank_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    f = write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n\n1,3,3,5\n\n")
    data = read_movielens_csv(tmp_path)
    assert data.n_events == 2 and data.counts["blank_lines_skipped"] == 2
    assert f.exists()


# ------------------------------------------------------------- error cases
def test_error_missing_columns_lists_what_is_there(tmp_path: Path) -> None:
    write(tmp_path / "ratings.csv", "userId,itemId,rating,timestamp\n1,2,3,4\n")
    with pytest.raises(DataError) as err:
        read_movielens_csv(tmp_path)
    msg = str(err.value)
    assert "ratings.csv: line 1: missing column 'movieId'" in msg
    assert "have: userId, itemId, rating, timestamp" in msg


def test_error_non_numeric_timestamp(tmp_path: Path) -> None:
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,100\n1,3,4,soon\n")
    with pytest.raises(DataError, match=r"ratings\.csv: line 3: field 'timestamp': 'soon' is not a number"):
        read_movielens_csv(tmp_path)


def test_error_non_numeric_rating(tmp_path: Path) -> None:
    write(tmp_path / "u.data", "1\t2\t3\t100\n1\t3\t4\t101\n2\t3\tfive\t102\n")
    with pytest.raises(DataError, match=r"u\.data: line 3: field 'rating': 'five' is not a number"):
        read_ml100k(tmp_path)


def test_error_bad_iso_timestamp(tmp_path: Path) -> None:
    f = write(tmp_path / "log.csv", "u,i,t\na,x,2024-01-01\nb,y,2024-13-45\n")
    with pytest.raises(DataError, match=r"log\.csv: line 3: field 't': '2024-13-45' is neither a number"):
        read_log(f, user="u", item="i", timestamp="t")


def test_error_empty_file(tmp_path: Path) -> None:
    f = write(tmp_path / "Empty.txt", "")
    with pytest.raises(DataError, match=r"Empty\.txt: file is empty \(0 bytes\)"):
        read_sequences(f)


def test_error_header_but_no_rows(tmp_path: Path) -> None:
    f = write(tmp_path / "log.csv", "user_id,item_id\n")
    with pytest.raises(DataError, match=r"log\.csv: no interactions"):
        read_log(f)


def test_error_empty_required_field(tmp_path: Path) -> None:
    f = write(tmp_path / "log.csv", "user_id,item_id\nu,a\n,b\n")
    with pytest.raises(DataError, match=r"log\.csv: line 3: field 'user_id' is empty"):
        read_log(f)


def test_error_sequence_line_with_too_few_fields(tmp_path: Path) -> None:
    f = write(tmp_path / "Seq.txt", "1 10 11\n2\n3 12\n")
    with pytest.raises(DataError, match=r"Seq\.txt: line 2: expected a user id followed by at least one item"):
        read_sequences(f)


def test_error_sequence_user_on_two_lines(tmp_path: Path) -> None:
    f = write(tmp_path / "Seq.txt", "1 10 11\n2 12\n1 13\n")
    with pytest.raises(DataError, match=r"Seq\.txt: line 3: user '1' already has a sequence on line 1"):
        read_sequences(f)


def test_error_dat_line_with_wrong_field_count(tmp_path: Path) -> None:
    write(tmp_path / "ratings.dat", "1::10::5::978300760\n1::11::978300761\n")
    with pytest.raises(DataError, match=r"ratings\.dat: line 2: expected 4 fields separated by '::', found 3"):
        read_movielens_dat(tmp_path)


def test_error_csv_line_with_too_many_fields(tmp_path: Path) -> None:
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n1,2,3,4,5\n")
    with pytest.raises(DataError, match=r"ratings\.csv: line 3: expected 4 fields, found 5"):
        read_movielens_csv(tmp_path)


def test_error_unreadable_encoding(tmp_path: Path) -> None:
    f = write(tmp_path / "Seq.txt", b"1 10 11\n2 caf\xe9\n")
    with pytest.raises(DataError, match=r"Seq\.txt: line 2, column 6: byte 0xe9 is not valid utf-8"):
        read_sequences(f)


def test_error_unreadable_encoding_in_large_file_path(tmp_path: Path) -> None:
    # CSVs are parsed by Polars; the line is found afterwards.
    f = write(tmp_path / "log.csv", b"user_id,item_id\nu,a\nu,\xff\xfe\n")
    with pytest.raises(DataError, match=r"log\.csv: line 3, column 3: byte 0xff is not valid utf-8"):
        read_log(f)


def test_error_atomic_header_without_types(tmp_path: Path) -> None:
    write(tmp_path / "x.inter", "user_id\titem_id:token\nu\ta\n")
    with pytest.raises(DataError, match=r"x\.inter: line 1: column 'user_id' has no ':type' suffix"):
        read_atomic(tmp_path)


def test_error_line_number_counts_quoted_newlines(tmp_path: Path) -> None:
    # Line 3 holds a quoted field that continues on line 4; the bad time is on line 5.
    f = write(tmp_path / "log.csv", 'u,i,t,e\na,x,1,view\na,y,2,"multi\nline"\nb,z,oops,view\n')
    with pytest.raises(DataError, match=r"log\.csv: line 5: field 't': 'oops' is not a number"):
        read_log(f, user="u", item="i", timestamp="t", event_type="e")


def test_error_unknown_folder_layout(tmp_path: Path) -> None:
    write(tmp_path / "notes.md", "hello")
    with pytest.raises(DataError, match="cannot tell the format.*notes.md"):
        load(tmp_path)


def test_load_maps_canonical_columns_by_itself(tmp_path: Path) -> None:
    f = write(tmp_path / "log.csv", "item_id,user_id,timestamp,rating\na,u,2,5\nb,u,1,4\n")
    data = load(f)
    assert events(data) == [("u", "b"), ("u", "a")] and data.rating.tolist() == [4, 5]


def test_error_log_without_mapping_asks_for_one(tmp_path: Path) -> None:
    f = write(tmp_path / "log.csv", "who,what\nu,a\n")
    with pytest.raises(DataError, match=r"log\.csv: line 1: no 'user_id'/'item_id' columns \(have: who, what\)"):
        load(f)


def test_sequences_final_newline_is_not_a_blank_line(tmp_path: Path) -> None:
    assert "blank_lines_skipped" not in read_sequences(write(tmp_path / "S.txt", "1 2 3\n2 3\n")).counts
    assert read_sequences(write(tmp_path / "S.txt", "1 2 3\n\n2 3\n\n")).counts["blank_lines_skipped"] == 2


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("uvw"), st.sampled_from("abcd"), st.integers(0, 3)), min_size=1, max_size=30))
def test_vectorised_id_mapping_and_sort_match_lexsort(rows: list[tuple[str, str, int]]) -> None:
    """dataset.py maps ids and sorts in Polars (for 25M-row logs); same result as the per-row reference."""
    frame = pl.DataFrame(rows, schema=[Columns.USER, Columns.ITEM, Columns.TIME], orient="row")
    data = Interactions.from_frame(frame)
    users = list(dict.fromkeys(r[0] for r in rows))
    order = np.lexsort((np.arange(len(rows)), [r[2] for r in rows], [users.index(r[0]) for r in rows]))
    assert events(data) == [(rows[i][0], rows[i][1]) for i in order]
    assert data.timestamp.tolist() == [rows[i][2] for i in order]
