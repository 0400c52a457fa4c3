"""One contract for every registered model (implicit's recommender_base_test idea)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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


def _cycles(n_users: int = 60, n_items: int = 20, length: int = 8) -> Interactions:
    """Each user walks the item ring i -> i+1 from a random start: the next item is always known."""
    rng = np.random.default_rng(0)
    seqs = []
    for u in range(n_users):
        start = int(rng.integers(n_items))
        seqs.append((f"u{u}", [f"i{(start + t) % n_items}" for t in range(length)]))
    return Interactions.from_sequences(seqs)


@pytest.fixture(scope="module")
def split():  # type: ignore[no-untyped-def]
    return leave_one_out(_cycles())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_contract(name: str, split, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = MODELS[name](**FAST.get(name, {}))
    assert model.fit(split.train, split.valid) is model
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
def test_same_seed_same_scores(name: str, split) -> None:  # type: ignore[no-untyped-def]
    a = MODELS[name](**FAST.get(name, {})).fit(split.train, split.valid).score(split.test.queries)
    b = MODELS[name](**FAST.get(name, {})).fit(split.train, split.valid).score(split.test.queries)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_sequential_models_learn_a_known_sequence(name: str, split) -> None:  # type: ignore[no-untyped-def]
    """On the item ring the next item is certain: a working model gets it first."""
    no_dropout = {"dropout": 0.0, **({"attn_dropout": 0.0} if name == "sasrec" else {})}
    model = MODELS[name](embedding_size=32, epochs=60, learning_rate=5e-3, patience=60, progress=False, **no_dropout)
    model.fit(split.train, split.valid)
    items = split.full.items
    q = Queries.from_histories([items.to_index(["i3", "i4", "i5"]), items.to_index(["i17", "i18", "i19"])])
    top, _ = model.recommend(q, k=1)
    assert items.to_external(top[:, 0]).tolist() == ["i6", "i0"]
    assert model.fit_info["best_epoch"] >= 1
