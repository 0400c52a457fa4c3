"""Gate by time gap, on hand-made queries whose gaps (and so buckets) are known in advance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recfuse.data.split import EvalSet, Queries
from recfuse.evaluate.analysis import (
    GAP_LABELS,
    gap_bucket_index,
    gate_by_gap,
    model_gate_by_gap,
    plot_gate_by_gap,
    request_gaps,
)

MIN, HOUR, DAY = 60.0, 3600.0, 86400.0

# (history timestamps, request time): the gap is request time - last timestamp.
CASES = [
    ([0.0, 100.0], 110.0),  # 10 s          -> <1 min
    ([50.0], 50.0),  # 0 s (same second)     -> <1 min
    ([0.0, 5.0], 5.0 + 2 * MIN),  # 2 min   -> <1 h
    ([0.0], 2 * HOUR),  # 2 h                -> <1 day
    ([0.0, 1.0, 2.0], 2.0 + 3 * DAY),  # 3 d -> <1 week
    ([0.0], 10 * DAY),  # 10 d               -> <1 month
    ([0.0], 60 * DAY),  # 60 d               -> ≥1 month
    ([7.0], 7.0 + 45 * DAY),  # 45 d         -> ≥1 month
    ([], 1000.0),  # no history: unknown gap
]
EXPECTED_GAPS = [10.0, 0.0, 2 * MIN, 2 * HOUR, 3 * DAY, 10 * DAY, 60 * DAY, 45 * DAY, np.nan]
EXPECTED_BUCKET = [0, 0, 1, 2, 3, 4, 5, 5, -1]


def hand_queries() -> Queries:
    lengths = [len(ts) for ts, _ in CASES]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    timestamps = np.concatenate([np.asarray(ts, np.float64) for ts, _ in CASES])
    return Queries(
        user=np.arange(len(CASES), dtype=np.int64),
        indptr=indptr,
        items=np.arange(int(indptr[-1]), dtype=np.int64) % 5,
        timestamps=timestamps,
        time=np.array([t for _, t in CASES]),
    )


class GateIsUserId:
    """A fake model whose gate is ``user / 10``: each bucket's mean is known by hand."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def gates(self, queries: Queries) -> np.ndarray:
        self.batches.append(len(queries))
        return queries.user / 10.0


def test_request_gaps_and_buckets() -> None:
    gaps = request_gaps(hand_queries())
    np.testing.assert_array_equal(gaps, EXPECTED_GAPS)
    assert gap_bucket_index(gaps).tolist() == EXPECTED_BUCKET


def test_gaps_unknown_without_times() -> None:
    q = Queries.from_histories([[1, 2], [3]])
    assert np.isnan(request_gaps(q)).all()
    r = gate_by_gap(np.array([0.3, 0.4]), request_gaps(q))
    assert r["n_unknown_gap"] == 2 and r["mean_gate"] is None and all(b["n"] == 0 for b in r["buckets"])


def test_model_gate_by_gap_known_means() -> None:
    model = GateIsUserId()
    q = hand_queries()
    targets = EvalSet(q, np.arange(len(q) + 1, dtype=np.int64), np.zeros(len(q), np.int64))
    r = model_gate_by_gap(model, targets, batch_size=4)
    assert model.batches == [4, 4, 1]  # batched, every query once
    assert [b["label"] for b in r["buckets"]] == list(GAP_LABELS)
    assert [b["n"] for b in r["buckets"]] == [2, 1, 1, 1, 1, 2]
    # users 0,1 | 2 | 3 | 4 | 5 | 6,7  -> gates /10
    assert [b["mean_gate"] for b in r["buckets"]] == pytest.approx([0.05, 0.2, 0.3, 0.4, 0.5, 0.65])
    assert r["buckets"][0]["std_gate"] == pytest.approx(0.05)
    assert r["buckets"][5]["upper_s"] is None and r["buckets"][1]["lower_s"] == MIN and r["buckets"][1]["upper_s"] == HOUR
    assert r["n_queries"] == 9 and r["n_unknown_gap"] == 1
    assert r["mean_gate"] == pytest.approx(np.mean(np.arange(8) / 10))
    json.dumps(r, allow_nan=False)


def test_empty_bucket_is_listed_with_null_mean() -> None:
    r = gate_by_gap(np.array([0.5]), np.array([5.0]))
    assert [b["n"] for b in r["buckets"]] == [1, 0, 0, 0, 0, 0]
    assert r["buckets"][3]["mean_gate"] is None and r["buckets"][3]["std_gate"] is None
    with pytest.raises(ValueError):
        gate_by_gap(np.array([0.5, 0.1]), np.array([5.0]))


def test_plot(tmp_path: Path) -> None:
    r = model_gate_by_gap(GateIsUserId(), hand_queries())
    path = plot_gate_by_gap(r, tmp_path / "gate_by_gap.png", title="toy")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    assert plot_gate_by_gap(gate_by_gap(np.zeros(1), np.array([np.nan])), tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_real_fusion_gates_by_gap() -> None:
    """A fitted fusion model (one tiny epoch) gives one gate in [0, 1] per query with a known gap."""
    import polars as pl

    from recfuse.data.dataset import Interactions
    from recfuse.data.split import leave_one_out
    from recfuse.models.fusion import Fusion

    rng = np.random.default_rng(0)
    rows: dict[str, list[object]] = {"user_id": [], "item_id": [], "timestamp": []}
    for u in range(30):
        n = 8
        gaps = rng.choice([5.0, 2 * HOUR, 40 * DAY], size=n)
        rows["user_id"] += [f"u{u}"] * n
        rows["item_id"] += [f"i{i}" for i in rng.integers(0, 20, size=n)]
        rows["timestamp"] += np.cumsum(gaps).tolist()
    s = leave_one_out(Interactions.from_frame(pl.DataFrame(rows)))
    m = Fusion(epochs=1, progress=False, embedding_size=16, max_len=5, long_len=5, device="cpu").fit(s.train)
    r = model_gate_by_gap(m, s.test)
    assert sum(b["n"] for b in r["buckets"]) == len(s.test) == 30 and r["n_unknown_gap"] == 0
    means = [b["mean_gate"] for b in r["buckets"] if b["n"]]
    assert means and all(0.0 <= g <= 1.0 for g in means)
