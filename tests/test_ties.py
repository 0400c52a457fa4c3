"""Same-timestamp events (`shuffle_ties`): their file order is arbitrary, so training may reorder them."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from recfuse.data.dataset import Interactions
from recfuse.data.split import Queries
from recfuse.models.fusion import Fusion
from recfuse.models.sasrec import SASRec
from recfuse.models.sequential import tie_order


def _log(rows: list[tuple[str, str, int]]) -> Interactions:
    user, item, ts = zip(*rows, strict=True)
    return Interactions.from_frame(pl.DataFrame({"user_id": user, "item_id": item, "timestamp": ts}))


def test_tie_order_moves_only_events_that_share_a_user_and_a_timestamp() -> None:
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{rng.integers(40)}", int(t)) for u in range(30) for t in np.sort(rng.integers(0, 8, 12))]
    data = _log(rows)
    user = np.repeat(np.arange(data.n_users), np.diff(data.indptr))
    assert data.timestamp is not None
    moved = False
    for seed in range(5):
        order = tie_order(data, np.random.default_rng(seed))
        assert sorted(order.tolist()) == list(range(data.n_events))  # a permutation
        np.testing.assert_array_equal(user[order], user)  # nobody's event goes to another user
        np.testing.assert_array_equal(data.timestamp[order], data.timestamp)  # nor to another time
        moved |= bool((order != np.arange(data.n_events)).any())
    assert moved
    untimed = Interactions.from_sequences([("u", list("abc"))])
    np.testing.assert_array_equal(tie_order(untimed, rng), [0, 1, 2])


@pytest.mark.parametrize("model_cls", [SASRec, Fusion], ids=["sasrec", "fusion"])
def test_shuffled_ties_teach_that_either_tied_item_may_come_next(model_cls: type) -> None:
    """Every user has x, then y and z in the same second, always written y before z.

    Read literally, z never follows x; with the ties shuffled, y and z each
    follow x half the time, so after [x] the two are about equally likely.
    """
    data = _log([(f"u{u}", item, t) for u in range(200) for item, t in (("x", 1), ("y", 2), ("z", 2))])
    x, y, z = (int(i) for i in data.items.to_index(["x", "y", "z"]))
    small = {"embedding_size": 16, "max_len": 4, "dropout": 0.0, "attn_dropout": 0.0, "progress": False,
             "epochs": 25, "learning_rate": 5e-3, "batch_size": 32}
    if model_cls is Fusion:  # the query below has no timestamps, so neither has training
        small |= {"long_len": 4, "use_time": False}
    share = {}
    for shuffle in (False, True):
        model = model_cls(**small, shuffle_ties=shuffle, seed=0).fit(data)
        p = torch.from_numpy(model.score(Queries.from_histories([[x]]))[0]).softmax(-1)
        share[shuffle] = float(p[y] / (p[y] + p[z]))
    assert share[False] > 0.85  # the file's order, learnt as if it meant something
    assert 0.2 < share[True] < 0.8  # about even (0.30-0.49 over seeds 0-2)
