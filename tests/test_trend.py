"""The trend dimension of the fusion model: what is popular at request time.

* the windowed counts never include an event in its own request bucket (no event
  counts toward the request it is the target of), and events age out of the window;
* on a log where the next item depends on *when* (one item is the fashion for a
  month, then another), the model with the trend term ranks the fashion of the
  request's month first; without it both requests get the same scores;
* calibrated (the default mode), the weight is picked on valid;
* a model with the term saves and loads to identical scores and explains
  (the term counts toward recency).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recfuse.data.dataset import Interactions
from recfuse.data.split import EvalSet, Queries
from recfuse.models.fusion import Fusion, FusionConfig, trend_counts, trend_table

DAY = 86400.0
SMALL = {"embedding_size": 16, "max_len": 4, "long_len": 4, "dropout": 0.0, "attn_dropout": 0.0, "progress": False}


def test_counts_are_strictly_before_the_request_bucket_and_age_out() -> None:
    # item 1 once, on day 10; item 0 on days 0 and 50; a 30-day window in 1-day buckets
    item, time = np.array([0, 1, 0]), np.array([0.0, 10 * DAY + 5, 50 * DAY])
    counts, t0, width = trend_counts(item, time, 2, 30 * DAY)
    assert width == DAY and t0 == 0.0
    table = trend_table(item, time, 2, 30 * DAY, rank=2)
    row = lambda t: counts[table.bucket(np.array([t]), 1)[0], 1]
    assert row(10 * DAY + 5) == 0.0  # its own day: not yet
    assert row(10 * DAY + 86399) == 0.0
    assert np.isclose(row(11 * DAY), np.log1p(1.0))  # the next day
    assert np.isclose(row(40 * DAY), np.log1p(1.0))  # 30 days on, still in the window
    assert row(41 * DAY) == 0.0  # aged out
    assert table.bucket(np.array([400 * DAY]), 1)[0] == len(counts) - 1  # after the log: its latest window
    assert np.isclose(counts[-1, 0], np.log1p(1.0)) and counts[-1, 1] == 0.0
    assert table.bucket(np.array([np.nan]), 1)[0] == 0  # unknown time: the zero row
    assert table.bucket(np.array([-5 * DAY]), 1)[0] == 1  # before the log: an empty window
    assert counts[1].sum() == 0.0


def test_an_item_without_events_gets_each_rows_mean() -> None:
    """Unknown popularity is not zero popularity: with fill="mean" a cold item sits at the row's mean."""
    item, time = np.array([0, 0, 1]), np.array([0.0, 1.0, 45 * DAY])  # item 2 never occurs
    counts, _, _ = trend_counts(item, time, 3, 30 * DAY, fill="mean")
    assert np.allclose(counts[:, 2], counts[:, :2].mean(axis=1))
    assert np.isclose(counts[2, 2], np.log1p(2.0) / 2) and counts[0, 2] == 0.0  # day 1: item 0 twice, item 1 not yet
    seen, _, _ = trend_counts(item, time, 2, 30 * DAY)
    assert np.array_equal(counts[:, :2], seen)  # the seen items are untouched


def test_an_item_without_events_gets_the_trend_of_the_item_a_random_event_went_to() -> None:
    """The default fill weighs the seen items by their events: a never-seen item sits where the recent events are,
    not at the level of the many rarely-seen items (which would sink it under everything popular)."""
    # the day after: item 0 has 8 events in the window, items 1-3 one each, item 4 never occurs
    item = np.array([0] * 8 + [1, 2, 3])
    time = np.zeros(len(item))
    counts, _, _ = trend_counts(item, time, 5, 30 * DAY)
    row = counts[2]  # request bucket 1: the events of bucket 0
    n = np.array([8.0, 1.0, 1.0, 1.0])
    assert np.isclose(row[4], (8 * np.log(9) + 3 * np.log(2)) / 11)  # sum(n * log1p(n)) / sum(n), by hand
    assert np.isclose(row[4], (n * np.log1p(n)).sum() / n.sum())
    assert row[1] < row[4] < row[0]  # above the rarely-seen items, below the most popular one
    mean, _, _ = trend_counts(item, time, 5, 30 * DAY, fill="mean")
    assert mean[2, 4] < row[4] and np.array_equal(mean[:, :4], counts[:, :4])
    assert counts[0, 4] == 0.0 and counts[1, 4] == 0.0  # rows with no event in the window: 0


def test_an_item_without_events_takes_the_trend_of_its_nearest_items_by_text() -> None:
    """With item text, a never-seen item gets the mean of its 10 nearest items with events, not the row's mean."""
    rng = np.random.default_rng(1)
    item = np.concatenate([np.repeat(np.arange(10), 2), np.full(30, 10)])  # items 0-9 twice each, item 10 30 times
    time = rng.uniform(0, 40 * DAY, len(item))
    text = np.zeros((12, 3))
    text[:10, 0] = 1.0  # items 0-9 read alike ...
    text[:10, 1] = rng.uniform(0, 0.1, 10)
    text[10, 2] = 1.0  # ... the popular item 10 reads otherwise
    text[11] = [1.0, 0.05, 0.0]  # the never-seen item 11 reads like 0-9
    counts, _, _ = trend_counts(item, time, 12, 30 * DAY, text, fill="text")
    assert np.allclose(counts[:, 11], counts[:, :10].mean(axis=1), atol=1e-6)
    plain, _, _ = trend_counts(item, time, 12, 30 * DAY, text=None, fill="text")
    assert np.allclose(plain[:, 11], plain[:, :11].mean(axis=1))  # without text: every seen item, item 10 included
    assert counts[-1, 11] < plain[-1, 11]  # so the popular item 10 no longer lifts it
    assert np.array_equal(counts[:, :11], plain[:, :11])


def test_rank_reconstructs_the_centred_table() -> None:
    rng = np.random.default_rng(0)
    item, time = rng.integers(0, 6, 300), np.sort(rng.uniform(0, 90 * DAY, 300))
    counts, _, _ = trend_counts(item, time, 6, 30 * DAY)
    full = trend_table(item, time, 6, 30 * DAY, rank=6)
    centred = counts[1:] - counts[1:].mean(axis=1, keepdims=True)
    assert np.allclose(full.basis[1:] @ full.items.T, centred, atol=1e-4)
    assert not full.basis[0].any()


def _fashion_log() -> Interactions:
    """Every user reads a, b, then the month's fashion: x in days 0-40, y in days 60-100 (and one user ten others)."""
    rows = []
    for u in range(60):
        day = (u % 30) * 40 / 30 + (0 if u < 30 else 60)
        t = day * DAY
        nxt = "x" if u < 30 else "y"
        rows += [(f"u{u}", "a", t), (f"u{u}", "b", t + 60), (f"u{u}", nxt, t + 120)]
    rows += [("filler", f"f{i}", 50 * DAY + 60 * i) for i in range(10)]  # enough items for NDCG@10
    user, item, ts = zip(*rows, strict=True)
    return Interactions.from_frame(pl.DataFrame({"user_id": user, "item_id": item, "timestamp": ts}), name="fashion")


def _queries(data: Interactions, days: list[float]) -> Queries:
    """Anonymous requests with history a, b on each day, two minutes after a."""
    n = len(days)
    stamps = np.array([[d * DAY, d * DAY + 60] for d in days]).ravel()
    return Queries(user=np.full(n, -1), indptr=np.arange(0, 2 * n + 1, 2), items=np.tile(data.items.to_index(["a", "b"]), n),
                   timestamps=stamps, time=np.array([d * DAY + 120 for d in days]))


def _x_minus_y(model: Fusion, data: Interactions, day: float) -> float:
    s = model.score(_queries(data, [day]))[0]
    x, y = data.items.to_index(["x", "y"])
    return float(s[x] - s[y])


def test_the_trend_term_ranks_the_fashion_of_the_request_month() -> None:
    data = _fashion_log()
    with_trend = Fusion(epochs=60, learning_rate=1e-2, patience=60, trend_days=30, trend_mode="learned", **SMALL).fit(data)
    assert _x_minus_y(with_trend, data, 35) > 0 > _x_minus_y(with_trend, data, 95)
    without = Fusion(epochs=60, learning_rate=1e-2, patience=60, trend_days=0, **SMALL).fit(data)
    assert np.isclose(_x_minus_y(without, data, 35), _x_minus_y(without, data, 95), atol=1e-5)


def test_the_calibrated_weight_is_picked_on_valid() -> None:
    """Trained without the term, the model cannot tell the months apart; valid asks for x on day 35 and
    y on day 95, so calibration picks a weight above 0, and the answer then follows the month."""
    data = _fashion_log()
    valid = EvalSet(_queries(data, [35, 38, 95, 98]), np.arange(5), data.items.to_index(["x", "x", "y", "y"]))
    model = Fusion(epochs=20, learning_rate=1e-2, patience=20, trend_days=30, **SMALL).fit(data, valid)
    info = model.fit_info["trend"]
    assert info["alpha"] > 0 and info["valid_ndcg@10"]["0.0"] < info["valid_ndcg@10"][str(info["alpha"])]
    assert _x_minus_y(model, data, 35) > 0 > _x_minus_y(model, data, 95)
    off = Fusion(epochs=20, learning_rate=1e-2, patience=20, trend_days=30, **SMALL).fit(data)  # no valid: weight 0
    assert off.fit_info["trend"]["alpha"] == 0.0


@pytest.mark.parametrize("mode", ["calibrated", "learned"])
def test_a_trend_model_round_trips_and_explains(mode: str) -> None:
    data = _fashion_log()
    valid = EvalSet(_queries(data, [35, 95]), np.arange(3), data.items.to_index(["x", "y"]))
    model = Fusion(epochs=2, trend_days=30, trend_mode=mode, **SMALL).fit(data, valid)
    again = Fusion(FusionConfig(epochs=2, trend_days=30, trend_mode=mode, **SMALL))
    again.n_items, again.n_users = model.n_items, model.n_users
    again.load_state(model.state())
    q = _queries(data, [35])
    assert np.array_equal(model.score(q), again.score(q))
    why = model.explain(q, k=2)[0]
    assert {it["dimension"] for it in why["items"]} <= {"content", "rating", "recency"}
    assert why["items"][0]["dimensions"]["recency"] > 0
