"""Importing item descriptions: by id, by normalised title + year (misses listed), into the item text and `--items`.

Hand-written catalogues whose right matches are obvious, plus the real ml-100k titles against the shared LLM
descriptions file when it is there.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from recfuse.data.dataset import Interactions
from recfuse.data.spec import DatasetSpec
from recfuse.text.build import item_texts
from recfuse.text.knowledge import (
    DescriptionError,
    apply_descriptions,
    import_descriptions,
    normalise_title,
    read_descriptions,
    title_from_text,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LLM_FILE = SHARED / "llm-item-descriptions" / "movielens-llm-descriptions.json"


def _movies() -> Interactions:
    """Four ml-100k-style items (ids that are not MovieLens movieIds), one with no description anywhere."""
    features = pl.DataFrame({
        "item_id": ["1", "2", "3", "4"],
        "title": ["Usual Suspects, The", "Star Wars", "Alien 3", "Some Unknown Film"],
        "year": ["1995", "1977", "1992", "1990"],
        "genres": ["Crime|Thriller", "Sci-Fi", "Sci-Fi|Horror", "Drama"],
    })
    log = pl.DataFrame({"user_id": ["u", "u", "v", "v"], "item_id": ["1", "2", "3", "4"], "timestamp": [1, 2, 1, 2]})
    return Interactions.from_frame(log, item_features=features, name="tiny")


# MovieLens movieIds: "1" is another film than the dataset's item "1".
DESCRIPTIONS = {
    "50": '"The Usual Suspects (1995)" is a crime thriller with a famous twist.',
    "260": '"Star Wars: Episode IV - A New Hope (1977)" is a space opera.',
    "1320": '"Alien³" (1992) is a science fiction horror film.',
    "1": '"Toy Story (1995)" is an animated film about toys.',
}


def _write(tmp_path: Path, obj: object, name: str = "desc.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return path


def test_title_matching_finds_the_films_and_lists_the_miss(tmp_path: Path) -> None:
    result = import_descriptions(_movies(), _write(tmp_path, DESCRIPTIONS))
    report = result.report
    assert report.key == "title"  # the ids overlap ("1") but mean other films: titles decide
    assert dict(result.descriptions.rows()) == {
        "1": DESCRIPTIONS["50"], "2": DESCRIPTIONS["260"], "3": DESCRIPTIONS["1320"],
    }
    assert [(m.item_id, m.title, m.year) for m in report.misses] == [("4", "Some Unknown Film", "1990")]
    assert (report.n_matched, report.n_items, report.n_unused) == (3, 4, 1)


def test_id_matching_when_ids_and_titles_agree(tmp_path: Path) -> None:
    rows = [{"item_id": "1", "title": "The Usual Suspects", "year": "1995", "description": "Keyser Soze."},
            {"item_id": "4", "title": "Some Unknown Film", "year": "1990", "description": "A drama."}]
    result = import_descriptions(_movies(), _write(tmp_path, rows))
    assert result.report.key == "id"
    assert dict(result.descriptions.rows()) == {"1": "Keyser Soze.", "4": "A drama."}
    forced = import_descriptions(_movies(), _write(tmp_path, {"2": "A space opera."}), key="id")
    assert dict(forced.descriptions.rows()) == {"2": "A space opera."}


def test_a_year_one_off_still_matches_a_year_two_off_does_not(tmp_path: Path) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text("title,year,overview\nStar Wars,1978,One off.\nAlien 3,1994,Two off.\n")
    result = import_descriptions(_movies(), csv)
    assert dict(result.descriptions.rows()) == {"2": "One off."}
    assert result.report.n_near_year == 1


def test_descriptions_become_item_text_and_change_the_cache_key(tmp_path: Path) -> None:
    from recfuse.text.cache import text_hash

    data = _movies()
    result = import_descriptions(data, _write(tmp_path, DESCRIPTIONS))
    described = apply_descriptions(data, result.descriptions)
    before, after = item_texts(data), item_texts(described)
    assert after[0] == "The Usual Suspects (1995). Genres: Crime, Thriller. " + DESCRIPTIONS["50"]
    assert after[3] == before[3]  # the miss keeps its own text
    assert text_hash(after[0]) != text_hash(before[0])  # a new text: encoded afresh, cached under its hash


def test_the_catalogue_file_feeds_items_on_a_registered_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--items FILE` on a dataset whose reader has its own item fields adds to them by id (it used to crash)."""
    from recfuse.data import spec as spec_module

    data = _movies()
    catalogue = tmp_path / "items.parquet"
    pl.DataFrame({"item_id": ["2", "99"], "description": ["A space opera.", "Not in the log."]}).write_parquet(catalogue)
    monkeypatch.setattr("recfuse.data.registry.load_dataset", lambda *a, **kw: data)
    monkeypatch.setattr(spec_module, "_reads_catalogue", lambda source, options: False)
    loaded = DatasetSpec("tiny", items=str(catalogue)).load()
    assert loaded.item_features is not None
    assert loaded.item_features["description"].to_list() == [None, "A space opera.", None, None]
    assert loaded.item_features["title"].to_list() == data.item_features["title"].to_list()  # type: ignore[index]
    assert loaded.counts["catalogue_rows_unused"] == 1


def test_cli_import_reports_matches_and_misses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recfuse.text import cli

    monkeypatch.setattr(cli, "_load", lambda spec: _movies())
    out = tmp_path / "described.parquet"
    result = CliRunner().invoke(cli.app, ["import", str(_write(tmp_path, DESCRIPTIONS)), "--dataset", "tiny",
                                          "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["key"], report["n_matched"], report["misses"]) == (
        "title", 3, [{"item_id": "4", "title": "Some Unknown Film", "year": "1990"}])
    written = pl.read_parquet(out)
    assert written.columns == ["item_id", "title", "year", "genres", "description"]
    assert pl.read_csv(out.with_name("described.misses.csv"), schema_overrides={"item_id": pl.String})[
        "item_id"].to_list() == ["4"]
    bad = CliRunner().invoke(cli.app, ["import", str(_write(tmp_path, [1, 2], "bad.json")), "--dataset", "tiny"])
    assert bad.exit_code == 2 and "list of objects" in bad.output


def test_file_formats_and_errors(tmp_path: Path) -> None:
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"sku": "a", "text": "One."}\n{"sku": "b", "text": ""}\n')
    assert read_descriptions(jsonl).rows() == [("a", None, None, "One.")]  # the empty text is dropped
    nested = _write(tmp_path, {"7": {"title": "Heat (1995)", "plot": "A heist."}})
    assert read_descriptions(nested).rows() == [("7", "Heat", "1995", "A heist.")]
    with pytest.raises(DescriptionError, match="no text field"):
        read_descriptions(_write(tmp_path, [{"id": "1", "blurb": "x"}]))
    with pytest.raises(DescriptionError, match="no record matched"):
        import_descriptions(_movies(), _write(tmp_path, {"9": '"Nothing Like It (2001)" is new.'}))


def test_title_normalisation() -> None:
    assert normalise_title("Usual Suspects, The") == normalise_title("The Usual Suspects") == "usual suspects"
    assert normalise_title("Amélie") == "amelie"
    assert title_from_text('The movie "Anna (1996)" is a drama') == ("Anna", "1996")
    assert title_from_text('Jumanji (1995) is an adventure') == ("Jumanji", "1995")


@pytest.mark.skipif(not LLM_FILE.is_file(), reason=f"no shared LLM descriptions at {LLM_FILE}")
def test_ml100k_titles_match_the_llm_descriptions() -> None:
    """The ml-100k catalogue (RecBole atomic files from shared/data) against the 3,883 MovieLens descriptions."""
    from recfuse.data.readers import read_atomic

    folder = SHARED / "ml-100k"
    if not (folder / "ml-100k.item").is_file():
        pytest.skip(f"no ml-100k copy at {folder}")
    data = read_atomic(folder)
    report = import_descriptions(data, LLM_FILE).report
    assert report.key == "title"
    assert report.n_matched >= 1650  # 1,670 of 1,682 when written
    missed = {m.title for m in report.misses}
    assert "Star Wars" not in missed and "Alien 3" not in missed and "Professional, The" not in missed
    assert "unkonwn" in missed  # ml-100k's placeholder item is listed, not matched to anything
