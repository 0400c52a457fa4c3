"""The split and ranking protocol: no leaks, history masked, RecBole's conventions."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recfuse.data.dataset import Interactions
from recfuse.data.split import EvalSet, Queries, leave_one_out, temporal, temporal_events
from recfuse.evaluate.protocol import RARE_EVENTS, evaluate, popularity_buckets, slice_labels
from recfuse.models.base import Recommender, mask_history, top_k
from recfuse.models.pop import Popularity


def _log(n_users: int = 30, n_items: int = 40, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        n = int(rng.integers(1, 25))
        items = rng.choice(n_items, size=min(n, n_items), replace=False)
        times = np.sort(rng.integers(0, 50, size=len(items)))  # many ties on purpose
        rows += [(f"u{u}", f"i{i}", int(t), float(rng.integers(1, 6))) for i, t in zip(items, times)]
    rng.shuffle(rows)
    return Interactions.from_frame(
        pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp", "rating"], orient="row")
    )


def test_ties_keep_file_order() -> None:
    df = pl.DataFrame({"user_id": ["u"] * 3, "item_id": ["c", "a", "b"], "timestamp": [5, 5, 1]})
    d = Interactions.from_frame(df)
    assert d.items.to_external(d.user_items(0)).tolist() == ["b", "c", "a"]
    s = leave_one_out(d)
    assert d.items.to_external(s.test.targets).tolist() == ["a"]
    assert d.items.to_external(s.valid.targets).tolist() == ["c"]


def test_leave_one_out_has_no_leak() -> None:
    d = _log()
    s = leave_one_out(d)
    lengths = d.lengths()
    assert s.info["users_not_evaluated"] == int((lengths < 3).sum())
    held_out = set()
    for phase, offset in ((s.valid, 2), (s.test, 1)):
        for b, u in enumerate(phase.queries.user):
            seq = d.user_items(u)
            ts = d.timestamp[d.indptr[u] : d.indptr[u + 1]]
            cut = len(seq) - offset
            # The target is the event at `cut`; the ranking input is exactly what came before it.
            assert phase.target(b).tolist() == [seq[cut]]
            assert phase.queries.history(b).tolist() == seq[:cut].tolist()
            assert np.all(phase.queries.timestamps[phase.queries.indptr[b] : phase.queries.indptr[b + 1]] <= ts[cut])
            held_out.add((u, d.indptr[u] + cut))
    # No valid or test event reaches training, and training has everything else.
    train_events = {(int(u), int(i)) for u, i in zip(s.train.user, s.train.item)}
    for u, pos in held_out:
        assert (u, int(d.item[pos])) not in train_events
    assert s.train.n_events == d.n_events - len(held_out)
    # Per user, training ends before the valid event in time.
    for b, u in enumerate(s.valid.queries.user):
        tr = s.train.timestamp[s.train.indptr[u] : s.train.indptr[u + 1]]
        assert tr.max() <= s.valid.queries.time[b]


def test_leave_one_out_with_several_valid_events_keeps_the_test_queries_and_leaks_nothing() -> None:
    d = _log(n_users=60)
    one, five = leave_one_out(d), leave_one_out(d, valid_events=5)
    # The test queries do not change: same users, histories, targets and request times.
    assert np.array_equal(one.test.queries.user, five.test.queries.user)
    assert np.array_equal(one.test.queries.items, five.test.queries.items)
    assert np.array_equal(one.test.targets, five.test.targets)
    assert np.array_equal(one.test.queries.time, five.test.queries.time)
    # Each evaluated user has min(5, n - 2) valid events: the ones just before the test event, in order,
    # each ranked from everything before it.
    n_valid = {}
    for b, u in enumerate(five.valid.queries.user):
        n_valid[int(u)] = n_valid.get(int(u), 0) + 1
        seq = d.user_items(u)
        cut = len(five.valid.queries.history(b))
        assert five.valid.queries.history(b).tolist() == seq[:cut].tolist()
        assert five.valid.target(b).tolist() == [seq[cut]]
        assert len(seq) - 6 <= cut <= len(seq) - 2
    lengths = d.lengths()
    assert n_valid == {int(u): min(5, int(lengths[u]) - 2) for u in one.test.queries.user}
    assert five.info["valid_queries"] == len(five.valid) == sum(n_valid.values())
    # Training holds exactly the events before each user's first valid event (all events of unevaluated users).
    assert five.train.n_events == d.n_events - len(five.valid) - len(five.test)
    for u in range(d.n_users):
        seq = d.user_items(u)
        keep = len(seq) - (n_valid.get(u, 0) + 1 if u in n_valid else 0)
        assert five.train.user_items(u).tolist() == seq[:keep].tolist()
    with pytest.raises(ValueError, match="valid_events"):
        leave_one_out(d, valid_events=0)


def test_temporal_split_has_no_leak() -> None:
    d = _log(n_users=60)
    s = temporal(d, test_frac=0.2, valid_frac=0.2)
    assert s.train.timestamp.max() < s.info["t_valid"]
    for phase, cut in ((s.valid, s.info["t_valid"]), (s.test, s.info["t_test"])):
        assert len(phase) > 0
        # Nothing at or after the cut is in a ranking input; no target is in its own history.
        assert np.all(phase.queries.timestamps < cut)
        for b in range(len(phase)):
            assert not set(phase.target(b).tolist()) & set(phase.queries.history(b).tolist())
    with pytest.raises(ValueError, match="timestamps"):
        temporal(Interactions.from_sequences([("u", ["a", "b", "c"])]))


def test_temporal_events_makes_one_query_per_new_event_with_its_past() -> None:
    rows = [("u", "a", 1), ("u", "b", 2), ("u", "c", 3), ("u", "d", 8), ("u", "e", 9),
            ("v", "a", 2), ("v", "c", 7), ("v", "b", 8), ("v", "d", 9), ("v", "a", 10),  # a again: not a target
            ("w", "e", 9)]  # first seen in the test phase: no query
    d = Interactions.from_frame(pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row"))
    s = temporal_events(d, test_frac=0.4, valid_frac=0.2)  # cuts at t=7 (valid) and t=8 (test)
    ext = d.items.external_ids
    got = lambda ph: [(int(ph.queries.user[b]), "".join(ext[i] for i in ph.queries.history(b)), ext[int(ph.target(b)[0])],
                       float(ph.queries.time[b])) for b in range(len(ph))]
    u, v = d.users.index("u"), d.users.index("v")
    assert got(s.valid) == [(v, "a", "c", 7.0)]
    # earlier test-phase events are in the history (seen online, never trained on)
    assert got(s.test) == [(u, "abc", "d", 8.0), (u, "abcd", "e", 9.0), (v, "ac", "b", 8.0), (v, "acb", "d", 9.0)]
    assert s.train.timestamp.max() < 7 and s.info["test_users"] == 2 and s.info["test_queries"] == 4
    # every history event is strictly before its request time
    q = s.test.queries
    assert all(np.all(q.timestamps[q.indptr[b] : q.indptr[b + 1]] < q.time[b]) for b in range(len(q)))


class _Fixed(Recommender):
    """A fake model whose scores are given: for testing masking only."""

    name = "fixed"

    def __init__(self, scores: np.ndarray) -> None:
        super().__init__()
        self.scores = scores

    def fit(self, train, valid=None):  # type: ignore[no-untyped-def]
        return self

    def score(self, queries: Queries) -> np.ndarray:
        return np.repeat(self.scores[None], len(queries), axis=0)


def test_history_items_are_masked_from_the_ranking() -> None:
    d = Interactions.from_sequences([("u", ["a", "b", "c", "d", "e"])])
    s = leave_one_out(d)  # history a, b, c (valid d is history at test time); target e
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0])  # the history items score highest
    r = evaluate(_Fixed(scores), s.test, s.train, ks=(1,))
    assert r.top[0].tolist() == [4] and r.per_query["hit@1"][0] == 1.0
    unmasked = evaluate(_Fixed(scores), s.test, s.train, ks=(1,), mask_history_items=False)
    assert unmasked.top[0].tolist() == [0] and unmasked.per_query["hit@1"][0] == 0.0
    q = s.test.queries
    masked = mask_history(np.repeat(scores[None], 1, axis=0), q)
    assert np.isinf(masked[0, :4]).all() and np.isfinite(masked[0, 4])
    assert top_k(masked, 1)[0].tolist() == [[4]]


def test_popularity_on_known_answer_log() -> None:
    d = Interactions.from_sequences(
        [("u1", ["x", "a", "p", "q"]), ("u2", ["x", "b", "p", "q"]), ("u3", ["x", "c", "p", "q"])]
    )
    s = leave_one_out(d)
    m = Popularity().fit(s.train)
    # Train: x×3, a, b, c; valid p and test q held out.  At test time x, p and the user's own
    # letter are masked, so pop's top-1 is the lowest-index count-1 item not already seen.
    r = evaluate(m, s.test, s.train, ks=(1, 2, 3))
    assert d.items.to_external(r.top[:, 0]).tolist() == ["b", "a", "a"]
    # q was never seen in training: it ranks after the two unseen letters, at 3.
    assert r.per_query["hit@2"].tolist() == [0.0, 0.0, 0.0]
    assert r.per_query["mrr@3"].tolist() == pytest.approx([1 / 3] * 3)


def test_recbole_count_is_one_per_batch_with_negatives_the_user_has_not_seen() -> None:
    """``count="recbole"``: RecBole 1.2.1's Pop adds 1 per batch an item is in, as a positive or a negative."""
    # u and v have seen a and b, so each of their negatives is c; w has seen c and a, so its negatives are b.
    d = Interactions.from_sequences([("u", ["a", "b"]), ("v", ["a", "b"]), ("w", ["c", "a"])])
    one_per_batch = Popularity(count="recbole", batch_size=1).fit(d)
    # a: 3 positives; b: 2 positives + w's 2 negatives; c: 1 positive + 4 negatives.
    assert np.floor(one_per_batch.counts).tolist() == [3.0, 4.0, 5.0]
    # One batch holds everything: every item is counted once, the saturation RecBole's ranking shows;
    # the tied items then stand in an arbitrary order (fractions below 0.5), as torch.topk leaves them.
    saturated = Popularity(count="recbole", batch_size=6).fit(d).counts
    assert np.floor(saturated).tolist() == [1.0, 1.0, 1.0] and len(set(saturated.tolist())) == 3
    assert Popularity().fit(d).counts.tolist() == [3.0, 2.0, 1.0]  # true popularity
    with pytest.raises(ValueError, match="pop count must be one of"):
        Popularity(count="batches")


def test_recbole_count_changes_with_the_seed_and_saturates_at_the_batch_count() -> None:
    rng = np.random.default_rng(0)
    d = Interactions.from_sequences([(f"u{u}", list(rng.choice(40, size=12, replace=False).astype(str)))
                                     for u in range(60)])
    fits = [Popularity(count="recbole", batch_size=16, seed=s).fit(d).counts for s in (0, 1)]
    n_batches = -(-d.n_events // 16)
    assert max(np.floor(f).max() for f in fits) <= n_batches and not np.array_equal(*fits)
    assert np.array_equal(Popularity(count="recbole", batch_size=16, seed=0).fit(d).counts, fits[0])


def test_popularity_buckets_split_training_mass_in_thirds() -> None:
    d = Interactions.from_sequences([("u", ["a"] * 6 + ["b"] * 3 + ["c"] * 2 + ["d"]), ("v", ["e"])])
    # counts a6 b3 c2 d1 e1 of 13: a starts at 0 (head), b at 6/13 (torso), c at 9/13 (tail)...
    assert popularity_buckets(d).tolist() == [0, 1, 2, 2, 2]


def test_target_events_slice_marks_targets_with_at_most_five_training_events_rare() -> None:
    train = Interactions.from_sequences([("u", ["a"] * 6 + ["b"] * RARE_EVENTS + ["c"])])  # a 6, b 5, c 1
    targets = np.array([train.items.index(x) for x in "abc"])
    evalset = EvalSet(Queries.from_histories([[0], [0], [0]]), np.arange(4), targets)
    assert slice_labels(evalset, train)["target_events"].tolist() == ["common", "rare", "rare"]
