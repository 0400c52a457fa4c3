"""Scale tooling on tiny inputs: the synthetic log, the lazy preparation, the sampled softmax."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from recfuse.columns import Columns
from recfuse.data.cli import app as data_app
from recfuse.data.dataset import DataError, Interactions
from recfuse.data.prep import prepare, prepare_split
from recfuse.data.split import leave_one_out
from recfuse.data.synth import SynthConfig, synthesize
from recfuse.models.fusion import Fusion
from recfuse.models.losses import sampled_negatives, sampled_softmax_cross_entropy, softmax_cross_entropy
from recfuse.models.sasrec import SASRec

TINY = SynthConfig(users=60, items=80, events=1200, chunk_events=300, seed=1)


@pytest.fixture(scope="module")
def tiny_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(tmp_path_factory.mktemp("synth"), TINY)


def test_synth_writes_chunks_items_and_the_events_asked_for(tiny_log: Path) -> None:
    parts = sorted((tiny_log / "events").glob("part-*.parquet"))
    assert len(parts) >= 4  # 1,200 events in chunks of about 300
    events = pl.read_parquet(parts)
    assert events.height == TINY.events
    assert events[Columns.USER].n_unique() == TINY.users
    assert int(events.group_by(Columns.USER).len()["len"].min()) >= 3  # type: ignore[arg-type]
    items = pl.read_parquet(tiny_log / "items.parquet")
    assert items.columns == [Columns.ITEM, "title", "description", "cluster"]
    assert items.height == TINY.items and set(events[Columns.ITEM].unique()) <= set(items[Columns.ITEM])
    # Each item's words come from its own cluster's vocabulary, disjoint across clusters.
    words = items.with_columns(pl.col("description").str.split(" ")).explode("description")
    assert words.group_by("description").agg(pl.col("cluster").n_unique())["cluster"].max() == 1
    # Power-law popularity: the most popular item has many times the median item's events.
    counts = events[Columns.ITEM].value_counts()["count"].to_numpy()
    assert counts.max() > 5 * np.median(counts)


def test_synth_is_reproducible_and_sessions_stay_in_the_users_clusters(tiny_log: Path, tmp_path: Path) -> None:
    again = synthesize(tmp_path, TINY)
    read = lambda d: pl.read_parquet(sorted((d / "events").glob("*.parquet")))
    assert read(again).equals(read(tiny_log))
    events = read(tiny_log).join(pl.read_parquet(tiny_log / "items.parquet"), on=Columns.ITEM)
    users = pl.read_parquet(tiny_log / "users.parquet")
    fav = dict(zip(users[Columns.USER].to_list(), users["clusters"].to_list(), strict=True))
    k = TINY.n_clusters
    near = [min((c - f) % k for f in fav[u]) <= 2 or min((f - c) % k for f in fav[u]) <= 2
            for u, c in zip(events[Columns.USER].to_list(), events["cluster"].to_list(), strict=True)]
    assert np.mean(near) > 0.9  # drift moves sessions only a step or two from a favourite cluster


def test_synth_refuses_too_few_events(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="fewer than 3 events"):
        synthesize(tmp_path, SynthConfig(users=10, items=5, events=20))


def test_data_synth_command(tmp_path: Path) -> None:
    result = CliRunner().invoke(data_app, ["synth", "--users", "5", "--items", "7", "--events", "40", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(sorted((tmp_path / "events").glob("*.parquet"))).height == 40


def test_prepare_gives_the_log_from_frame_gives(tiny_log: Path) -> None:
    lazy = prepare(tiny_log)
    frame = pl.read_parquet(sorted((tiny_log / "events").glob("*.parquet")))
    eager = Interactions.from_frame(frame, item_features=pl.read_parquet(tiny_log / "items.parquet").select(Columns.ITEM))
    assert lazy.users == eager.users and lazy.items == eager.items
    np.testing.assert_array_equal(lazy.item, eager.item)
    np.testing.assert_array_equal(lazy.indptr, eager.indptr)
    np.testing.assert_array_equal(lazy.timestamp, eager.timestamp)
    split = prepare_split(tiny_log)
    np.testing.assert_array_equal(split.test.targets, leave_one_out(eager).test.targets)


def test_prepare_names_an_empty_field(tmp_path: Path) -> None:
    pl.DataFrame({Columns.USER: [1, None], Columns.ITEM: [2, 3]}).write_parquet(tmp_path / "log.parquet")
    with pytest.raises(DataError, match="1 rows with an empty field 'user_id'"):
        prepare(tmp_path / "log.parquet")


def test_sampled_softmax_against_a_hand_computed_value() -> None:
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    table = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    target = torch.tensor([0, 1])
    # Negatives items 1 and 2 with expected counts 2 and 1; the targets' expected counts 1 and 2.
    draw = (torch.tensor([1, 2]), torch.tensor([math.log(2.0), 0.0]), torch.tensor([0.0, math.log(2.0)]))
    loss = sampled_softmax_cross_entropy(h, table, target, negatives=draw)
    # Row 0: target logit 1 - log 1; negatives 0 - log 2 and 1 - log 1.
    row0 = math.log(math.exp(1.0) + math.exp(-math.log(2.0)) + math.exp(1.0)) - 1.0
    # Row 1: target logit 1 - log 2; negative item 1 is its own target (left out), item 2 gives 1.
    z = 1.0 - math.log(2.0)
    row1 = math.log(math.exp(z) + math.exp(1.0)) - z
    assert float(loss) == pytest.approx(row0 + row1, rel=1e-6)
    weighted = sampled_softmax_cross_entropy(h, table, target, torch.tensor([2.0, 0.0]), negatives=draw)
    assert float(weighted) == pytest.approx(2 * row0, rel=1e-6)
    # Label smoothing e: (1 - e) CE + e x mean over the row's candidates of -log p.
    e = 0.1
    p0 = np.array([1.0, -math.log(2.0), 1.0])
    lp0 = p0 - np.log(np.exp(p0).sum())
    p1 = np.array([z, 1.0])
    lp1 = p1 - np.log(np.exp(p1).sum())
    smooth = (1 - e) * (row0 + row1) - e * (lp0.mean() + lp1.mean())
    assert float(sampled_softmax_cross_entropy(h, table, target, negatives=draw, smoothing=e)) == pytest.approx(smooth, rel=1e-6)


def test_sampled_negatives_expected_counts() -> None:
    target = torch.tensor([3, 3, 3, 1])
    cand, log_q, log_q_t = sampled_negatives(target, 5, 8, 10, torch.Generator().manual_seed(0))
    assert cand.shape == (18,) and set(cand[:8].tolist()) <= {1, 3}
    q = {1: 8 * 1 / 4 + 10 / 5, 3: 8 * 3 / 4 + 10 / 5, 0: 10 / 5}
    for c, lq in zip(cand.tolist(), log_q.tolist(), strict=True):
        assert lq == pytest.approx(math.log(q.get(c, 2.0)))
    assert log_q_t.exp().tolist() == pytest.approx([8.0, 8.0, 8.0, 4.0])


def test_sampled_softmax_with_every_item_as_a_negative_is_the_full_softmax() -> None:
    """Uniform negatives covering the catalogue once each (Q = 1): the full softmax's value."""
    g = torch.Generator().manual_seed(0)
    h, table = torch.randn(6, 4, generator=g), torch.randn(9, 4, generator=g)
    target = torch.tensor([0, 3, 3, 8, 2, 5])
    draw = (torch.arange(9), torch.zeros(9), torch.zeros(6))
    full = softmax_cross_entropy(h, table, target, chunked=False)
    assert float(sampled_softmax_cross_entropy(h, table, target, negatives=draw)) == pytest.approx(float(full), rel=1e-5)


def test_sampled_softmax_is_automatic_above_the_threshold_only() -> None:
    m = SASRec(progress=False)
    m.n_items = 50_000
    assert not m.sampled
    m.n_items = 50_001
    assert m.sampled
    m = SASRec(progress=False, sampled_above=0)  # always
    m.n_items = 10
    assert m.sampled
    with pytest.raises(ValueError, match="sampled_above"):
        SASRec(sampled_above=-1)


@pytest.mark.parametrize("cls", [SASRec, Fusion])
def test_models_train_with_the_sampled_softmax_forced_on(cls: type[SASRec | Fusion], tiny_log: Path) -> None:
    split = prepare_split(tiny_log)
    model = cls(epochs=4, batch_size=16, max_len=10, progress=False, precision="fp32", sampled_above=0,
                sampled_in_batch=16, sampled_uniform=16, seed=0)
    model.fit(split.train, split.valid)
    history = model.fit_info["history"]
    assert all(np.isfinite(r["loss"]) for r in history)
    assert history[-1]["loss"] < history[0]["loss"]
    top, _ = model.recommend(split.test.queries, 5)
    assert top.shape == (len(split.test), 5)
