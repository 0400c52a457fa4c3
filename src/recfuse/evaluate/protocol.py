"""Full-ranking evaluation: score every item, mask history, cut at K, measure.

One function, :func:`evaluate`, used for early stopping, for the benchmark
and in tests; see :mod:`recfuse.data.split` for the protocol defaults.  It
ranks through ``model.recommend`` — the same call the service makes — so
offline and online share one code path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recfuse import metrics
from recfuse.data.dataset import Interactions
from recfuse.data.split import EvalSet
from recfuse.models.base import Recommender

KS = (5, 10, 20)


@dataclass
class EvalResult:
    """Per-query metrics (arrays aligned with the eval set) and the top lists."""

    per_query: dict[str, np.ndarray]
    top: np.ndarray
    beyond: dict[str, float] = field(default_factory=dict)

    def mean(self) -> dict[str, float]:
        out = {k: float(np.mean(v)) if len(v) else 0.0 for k, v in self.per_query.items()}
        out.update(self.beyond)
        return out


def evaluate(
    model: Recommender,
    evalset: EvalSet,
    train: Interactions,
    ks: tuple[int, ...] = KS,
    mask_history_items: bool = True,
    batch_size: int = 1024,
) -> EvalResult:
    """Rank all items for each query of ``evalset`` and compute metrics.

    ``train`` supplies item popularity for novelty (never the targets).
    """
    k_max = max(ks)
    tops = []
    for start in range(0, len(evalset), batch_size):
        rows = np.arange(start, min(start + batch_size, len(evalset)))
        q = evalset.queries.take(rows)
        top = model.recommend(q, k_max, exclude_history=mask_history_items)[0]
        if top.shape != (len(rows), min(k_max, train.n_items)):
            raise ValueError(f"{model.name}.recommend returned {top.shape}, expected {(len(rows), k_max)}")
        tops.append(top)
    top = np.concatenate(tops) if tops else np.zeros((0, k_max), dtype=np.int64)
    hits = metrics.hits_matrix(top, evalset.target_indptr, evalset.targets)
    per_query = metrics.per_query(hits, np.diff(evalset.target_indptr), ks)
    item_users = np.diff(train.matrix().tocsc().indptr)
    beyond: dict[str, float] = {}
    for k in ks:
        beyond[f"coverage@{k}"] = metrics.coverage(top[:, :k], train.n_items)
        beyond[f"novelty@{k}"] = metrics.novelty(top[:, :k], item_users, train.n_users)
        beyond[f"gini@{k}"] = metrics.gini(top[:, :k], train.n_items)
    return EvalResult(per_query=per_query, top=top, beyond=beyond)


#: Training events up to which a target item counts as ``rare`` in the ``target_events`` slice.
RARE_EVENTS = 5


def popularity_buckets(train: Interactions) -> np.ndarray:
    """Bucket per item by training count: 0 head, 1 torso, 2 tail.

    Items sorted by count; head = the most popular items that together hold the
    first third of training events, torso the second third, tail the rest
    (items never seen in training included).
    """
    counts = train.item_counts()
    order = np.argsort(-counts, kind="stable")
    share = np.cumsum(counts[order]) / max(counts.sum(), 1)
    # An item that crosses a boundary belongs to the bucket it starts in.
    prev_share = np.concatenate([[0.0], share[:-1]])
    bucket_sorted = np.where(prev_share < 1 / 3, 0, np.where(prev_share < 2 / 3, 1, 2))
    out = np.empty_like(bucket_sorted)
    out[order] = bucket_sorted
    return out


def slice_labels(evalset: EvalSet, train: Interactions) -> dict[str, np.ndarray]:
    """Per-query slice labels: ``{slice_name: array of str}``.

    * ``target_popularity``: head/torso/tail of the (first) target item;
    * ``history_length``: short/medium/long by tertiles of the query history length;
    * ``target_events``: ``rare`` when the (first) target has at most :data:`RARE_EVENTS` training events
      (never-seen items included), else ``common``: where what an item *is* must place it.
    """
    pop = popularity_buckets(train)
    first_target = evalset.targets[evalset.target_indptr[:-1]]
    names = np.array(["head", "torso", "tail"])
    lengths = evalset.queries.lengths()
    if len(lengths):
        lo, hi = np.quantile(lengths, [1 / 3, 2 / 3])
    else:
        lo = hi = 0
    hist = np.where(lengths <= lo, "short", np.where(lengths <= hi, "medium", "long"))
    rare = train.item_counts()[first_target] <= RARE_EVENTS
    return {"target_popularity": names[pop[first_target]], "history_length": hist,
            "target_events": np.where(rare, "rare", "common")}
