"""The item index of the service (recfuse.serve.index): exact search, the HNSW graph, masking, updates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("faiss")

from recfuse.serve import index as index_mod
from recfuse.serve.index import OFFSET_ROWS, ItemIndex, choose_kind
from recfuse.serve.testing import clustered_catalogue


def reference(users: np.ndarray, items: np.ndarray, k: int, exclude: list[np.ndarray] | None = None,
              offsets: np.ndarray | None = None, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by a full numpy sort: score descending, then item index ascending."""
    scores = users @ items.T
    if offsets is not None and rows is not None:
        scores = scores + offsets[rows]
    for b, ex in enumerate(exclude or []):
        scores[b, ex] = -np.inf
    order = np.lexsort((np.broadcast_to(np.arange(len(items)), scores.shape), -scores), axis=1)[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def test_kind_follows_the_catalogue_size_and_rejects_unknown_kinds() -> None:
    assert choose_kind("auto", index_mod.EXACT_BELOW - 1) == "exact"
    assert choose_kind("auto", index_mod.EXACT_BELOW) == "hnsw"
    assert choose_kind("exact", 10**9) == "exact"
    with pytest.raises(ValueError, match="index must be one of"):
        choose_kind("ivf-pq", 10)


def test_exact_search_equals_the_numpy_reference_with_ties_to_the_lower_index() -> None:
    rng = np.random.default_rng(0)
    items = rng.integers(-2, 3, (300, 4)).astype(np.float32)  # small integers: many exact ties
    users = rng.integers(-2, 3, (20, 4)).astype(np.float32)
    exclude = [rng.choice(300, 30, replace=False) for _ in range(20)]
    idx, scores = ItemIndex(torch.from_numpy(items), kind="exact").search(torch.from_numpy(users), 25, exclude)
    ref_idx, ref_scores = reference(users, items, 25, exclude)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(scores, ref_scores)


def test_hnsw_recall_at_10_on_a_clustered_catalogue() -> None:
    items, users, _ = clustered_catalogue(30_000, 64, n_users=300)
    index = ItemIndex(torch.from_numpy(items), kind="hnsw")
    assert index.kind == "hnsw"
    found, scores = index.search(torch.from_numpy(users), 10)
    truth, _ = reference(users, items, 10)
    assert recall(found, truth) >= 0.98
    # Whatever the graph proposes is scored exactly: a returned score is that item's exact score.
    np.testing.assert_allclose(scores, np.take_along_axis(users @ items.T, found, axis=1), rtol=1e-5, atol=1e-5)


def test_history_is_left_out_exactly_and_a_short_row_falls_back_to_exact_search() -> None:
    items, users, _ = clustered_catalogue(3000, 16, n_users=30, seed=1)
    index = ItemIndex(torch.from_numpy(items), kind="hnsw")
    truth = reference(users, items, 50)[0]
    # Exclude each user's own best 40: the graph's neighbourhood is gone, the answer must still be exact.
    exclude = [t[:40] for t in truth]
    found, _ = index.search(torch.from_numpy(users), 10, exclude)
    assert not any(set(f) & set(e) for f, e in zip(found, exclude, strict=True))
    assert recall(found, reference(users, items, 10, exclude)[0]) >= 0.98
    # A user with all but 5 items excluded gets exactly those 5 (and -1 / -inf after them).
    keep = np.array([7, 100, 1500, 2000, 2999])
    rest = np.setdiff1d(np.arange(3000), keep)
    idx, scores = index.search(torch.from_numpy(users[:1]), 10, [rest])
    assert sorted(idx[0, :5].tolist()) == keep.tolist() and (idx[0, 5:] == -1).all()
    assert np.isneginf(scores[0, 5:]).all()


def test_offsets_folded_into_the_vectors_rank_like_vectors_plus_offsets() -> None:
    items, users, offsets = clustered_catalogue(3000, 16, n_users=60, n_rows=3, seed=2)
    weight = torch.tensor(0.7)
    scaled = (weight * torch.from_numpy(offsets)).numpy()
    rows = np.arange(60) % 3
    index = ItemIndex(torch.from_numpy(items), torch.from_numpy(offsets), weight, kind="hnsw")
    assert index.info()["offset_rows"] == [0, 1, 2]
    found, scores = index.search(torch.from_numpy(users), 10, rows=rows)
    truth, _ = reference(users, items, 10, offsets=scaled, rows=rows)
    assert recall(found, truth) >= 0.98
    np.testing.assert_allclose(scores, np.take_along_axis(users @ items.T + scaled[rows], found, axis=1), rtol=1e-5)
    # Without the offsets the top 10 would be a different set: the augmentation is what ranks them.
    assert recall(reference(users, items, 10)[0], truth) < 0.9
    # A long table gets a column for its last row only; a request in another row is answered exactly.
    long_table = np.vstack([offsets, np.repeat(offsets[2:], OFFSET_ROWS, axis=0)])
    long_index = ItemIndex(torch.from_numpy(items), torch.from_numpy(long_table), weight, kind="hnsw")
    assert long_index.info()["offset_rows"] == [len(long_table) - 1]
    long_scaled = (weight * torch.from_numpy(long_table)).numpy()
    rows = np.where(np.arange(60) % 2, len(long_table) - 1, 1)
    found, _ = long_index.search(torch.from_numpy(users), 10, rows=rows)
    truth = reference(users, items, 10, offsets=long_scaled, rows=rows)[0]
    np.testing.assert_array_equal(found[rows == 1], truth[rows == 1])
    assert recall(found, truth) >= 0.98


def test_added_and_updated_items_are_found() -> None:
    items, users, _ = clustered_catalogue(3000, 16, n_users=20, seed=3)
    index = ItemIndex(torch.from_numpy(items), kind="hnsw")
    u = users[:2]
    # Two new items, each pointing straight at one user: appended to the graph, found first.
    new = 5 * u / np.linalg.norm(u, axis=1, keepdims=True)
    grown = np.vstack([items, new]).astype(np.float32)
    index.sync(torch.from_numpy(grown))
    found, _ = index.search(torch.from_numpy(u), 5)
    # (longer than every item the graph was built with: they are scored exactly on the side)
    assert found[:, 0].tolist() == [3000, 3001] and index.info()["side"] == 2
    # Item 10 updated to the best item of user 2, item 3000 turned away from user 0: the stale graph
    # entries are not used, the updated items are scored on the side.
    grown[10] = 6 * users[2] / np.linalg.norm(users[2])
    grown[3000] = -grown[3000]
    index.sync(torch.from_numpy(grown), updated=[10, 3000])
    found, scores = index.search(torch.from_numpy(users[:3]), 5)
    assert found[2, 0] == 10 and 3000 not in found[0]
    np.testing.assert_array_equal(found, reference(users[:3], grown, 5)[0])
    np.testing.assert_allclose(scores[2, 0], users[2] @ grown[10], rtol=1e-5)
    assert set(index._side.tolist()) == {10, 3000, 3001}
    index.rebuild()
    assert index.info()["side"] == 0
    np.testing.assert_array_equal(index.search(torch.from_numpy(users[:3]), 5)[0], found)


def test_a_search_leaves_torchs_threads_alone() -> None:
    """FAISS and torch share the OpenMP runtime: a graph search asks for one thread and gives it back."""
    items, users, _ = clustered_catalogue(2000, 8, n_users=2)
    before = torch.get_num_threads()
    index = ItemIndex(torch.from_numpy(items), kind="hnsw", threads=1)
    index.search(torch.from_numpy(users), 5)
    assert torch.get_num_threads() == before


def test_concurrent_searches_give_the_single_thread_answers() -> None:
    from concurrent.futures import ThreadPoolExecutor

    items, users, _ = clustered_catalogue(5000, 16, n_users=64, seed=4)
    index = ItemIndex(torch.from_numpy(items), kind="hnsw")
    alone = index.search(torch.from_numpy(users), 10)[0]
    with ThreadPoolExecutor(8) as pool:
        rows = list(pool.map(lambda b: index.search(torch.from_numpy(users[b : b + 1]), 10)[0][0], range(64)))
    np.testing.assert_array_equal(np.stack(rows), alone)


def test_engine_with_the_hnsw_index_answers_like_exact_search(genre_model: Path) -> None:
    """The service path (batched misses and cache hits) with the graph gives the exact answer, with the
    trend term on, seen items left out, at request times inside and after the training log."""
    from recfuse.bundle import Bundle
    from recfuse.serve.engine import Engine, Job
    from recfuse.serve.state import LiveState
    from recfuse.serve.store import ItemRecord

    engines = {}
    for kind in ("exact", "hnsw"):
        bundle = Bundle.load(genre_model)
        if bundle.model.module.trend_table is not None:  # type: ignore[attr-defined]
            bundle.model.module.trend_alpha.fill_(0.7)  # type: ignore[attr-defined]  # make the term count
        engines[kind] = Engine(bundle, genre_model, index=kind)
    assert engines["exact"].index is None and engines["hnsw"].index is not None
    state = LiveState()
    ev = Bundle.load(genre_model).events
    state.add(zip(ev["user_id"], ev["item_id"], ev["timestamp"], ev["rating"], strict=True))
    start, end = float(ev["timestamp"].min()), float(ev["timestamp"].max())
    users = [f"u{i}" for i in range(16)]

    def answers(kind: str, now: float | None, exclude: bool) -> list[dict[str, object]]:
        engine = engines[kind]
        snaps = [state.snapshot(u, engine.items, engine.token) for u in users]
        jobs = [Job(s, 10, exclude, False, now, engine, u) for s, u in zip(snaps, users, strict=True) if s is not None]
        ran = engine.run(jobs)
        hits = [engine.try_cached(j) for j in jobs]
        assert all(h is not None for h in hits) or now is None
        return ran + [h for h in hits if h is not None]

    def same(times: tuple[float, ...]) -> None:
        for now in times:
            for exclude in (True, False):
                exact, graph = answers("exact", now, exclude), answers("hnsw", now, exclude)
                for a, b in zip(exact, graph, strict=True):
                    assert a["items"] == b["items"]
                    np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-5, atol=1e-6)
                    assert a["gate"] == pytest.approx(b["gate"])

    same((end + 3600, (start + end) / 2))
    # New items (text vectors of items the users watched) and two updated ones: appended to the graph
    # and scored on the side, the answers stay the exact ones.
    text = engines["exact"].text_vectors
    assert text is not None
    records = [ItemRecord(f"new{n}", f"new item {n}", None, None, text[n * 7] + 0.01) for n in range(6)]
    records += [ItemRecord(engines["exact"].items.external_ids[n], "changed", None, None, text[n + 40]) for n in (3, 5)]
    for engine in engines.values():
        assert engine.add_items(records)[1] == [records[-2].item_id, records[-1].item_id]
    graph_index = engines["hnsw"].index
    assert graph_index is not None and graph_index.n_items == engines["exact"].n_items
    # The added items form their own group (items placed by text alone get their own graph), built now.
    assert [g["start"] for g in graph_index.info()["graphs"]] == [0, engines["exact"].n_items - 6]
    same((end + 3600,))
    # Two more updates: scored on the side of the built graph, still the exact answers.
    records = [ItemRecord(engines["exact"].items.external_ids[n], "changed again", None, None, text[n + 50]) for n in (7, 9)]
    for engine in engines.values():
        engine.add_items(records)
    assert {7, 9} <= set(graph_index._side.tolist())
    same((end + 3600,))
