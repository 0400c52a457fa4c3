"""The trend dimension of the fusion model: what is popular at request time.

* the windowed counts never include an event in its own request bucket (no event
  counts toward the request it is the target of), and events age out of the window;
* on a log where the next item depends on *when* (one item is the fashion for a
  month, then another), the model with the trend term ranks the fashion of the
  request's month first; without it both requests get the same scores;
* the weight is picked on valid;
* a model with the term saves and loads to identical scores and explains
  (the term counts toward recency).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recfuse.data.dataset import Interactions
from recfuse.data.split import EvalSet, Queries
from recfuse.models.fusion import Fusion, FusionConfig, Trend

DAY = 86400.0
SMALL = {"embedding_size": 16, "max_len": 4, "long_len": 4, "dropout": 0.0, "attn_dropout": 0.0, "progress": False}


def test_counts_are_strictly_before_the_request_bucket_and_age_out() -> None:
    # item 1 once, on day 10; item 0 on days 0 and 50; a 30-day window in 1-day buckets
    item, time = np.array([0, 1, 0]), np.array([0.0, 10 * DAY + 5, 50 * DAY])
    table = Trend.of(item, time, 2, 30 * DAY)
    counts = table.table
    assert table.width == DAY and table.t0 == 0.0
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


def test_an_item_without_events_gets_the_trend_of_the_item_a_random_event_went_to() -> None:
    """The default fill weighs the seen items by their events: a never-seen item sits where the recent events are,
    not at the level of the many rarely-seen items (which would sink it under everything popular)."""
    # the day after: item 0 has 8 events in the window, items 1-3 one each, item 4 never occurs
    item = np.array([0] * 8 + [1, 2, 3])
    time = np.zeros(len(item))
    counts = Trend.of(item, time, 5, 30 * DAY).table
    row = counts[2]  # request bucket 1: the events of bucket 0
    n = np.array([8.0, 1.0, 1.0, 1.0])
    assert np.isclose(row[4], (8 * np.log(9) + 3 * np.log(2)) / 11)  # sum(n * log1p(n)) / sum(n), by hand
    assert np.isclose(row[4], (n * np.log1p(n)).sum() / n.sum())
    assert row[1] < row[4] < row[0]  # above the rarely-seen items, below the most popular one
    assert counts[0, 4] == 0.0 and counts[1, 4] == 0.0  # rows with no event in the window: 0


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
    without = Fusion(epochs=20, learning_rate=1e-2, patience=20, trend_days=0, **SMALL).fit(data, valid)
    assert "trend" not in without.fit_info  # no term: the months look alike
    assert np.isclose(_x_minus_y(without, data, 35), _x_minus_y(without, data, 95), atol=1e-5)


def test_a_trend_model_round_trips_and_explains() -> None:
    data = _fashion_log()
    valid = EvalSet(_queries(data, [35, 95]), np.arange(3), data.items.to_index(["x", "y"]))
    model = Fusion(epochs=2, trend_days=30, **SMALL).fit(data, valid)
    model.module.trend_alpha.fill_(0.5)  # whatever valid picked, the term is in the scores
    again = Fusion(FusionConfig(epochs=2, trend_days=30, **SMALL))
    again.n_items, again.n_users = model.n_items, model.n_users
    again.load_state(model.state())
    q = _queries(data, [35])
    assert np.array_equal(model.score(q), again.score(q))
    why = model.explain(q, k=2)[0]
    assert {it["dimension"] for it in why["items"]} <= {"content", "rating", "recency"}
    assert why["items"][0]["dimensions"]["recency"] > 0
