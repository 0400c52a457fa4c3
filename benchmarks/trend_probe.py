"""Does "what is popular right now" add to a fitted model?  A late-fusion probe.

Fits ``MODEL`` (seed ``SEED``, patience 20, ``--set`` overrides) on ml-100k's
leave-one-out training set, then adds ``alpha * log1p(count)`` to its scores,
where ``count`` is each item's number of training events in the ``w`` days
before the request time (``[t - w, t)``, exact seconds; the user's own history
is masked as usual).  Prints valid and test NDCG@10 for a grid of windows and
weights: pick on valid, read test.  The fusion model's trend term
(``trend_days``) is the learned version of this.

    python benchmarks/trend_probe.py sasrec 0
    python benchmarks/trend_probe.py fusion 0 [--set embedding_size=128]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from recfuse.data.registry import load_dataset
from recfuse.data.split import EvalSet, leave_one_out
from recfuse.evaluate import metrics
from recfuse.evaluate.cli import parse_overrides
from recfuse.evaluate.runner import make_config
from recfuse.models import MODELS

WINDOWS = (7, 30, 60)  # days
ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)


def windowed_counts(item: np.ndarray, time: np.ndarray, n_items: int, es: EvalSet, days: float) -> np.ndarray:
    """``(B, n_items)``: each item's training events in the ``days`` before each query's request time."""
    t = es.queries.time
    out = np.zeros((len(es), n_items), np.float32)
    for b in range(len(es)):
        m = (time < t[b]) & (time >= t[b] - days * 86400)
        out[b] = np.bincount(item[m], minlength=n_items)
    return out


def ndcg10(scores: np.ndarray, es: EvalSet) -> float:
    """Mean NDCG@10 with each query's history masked, through the protocol's own metrics."""
    s = scores.copy()
    q = es.queries
    s[np.repeat(np.arange(len(es)), q.lengths()), q.items] = -np.inf
    top = np.argsort(-s, axis=1, kind="stable")[:, :10]
    return float(metrics.per_query(metrics.hits_matrix(top, es.target_indptr, es.targets), np.diff(es.target_indptr), (10,))["ndcg@10"].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("seed", type=int)
    ap.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE")
    args = ap.parse_args()
    torch.set_num_threads(1)
    params = parse_overrides([f"{args.model}.{s}" for s in args.set], [args.model]).get(args.model, {})
    params = {"patience": 20, "progress": False, **params, "seed": args.seed}
    split = leave_one_out(load_dataset("ml-100k"))
    tr = split.train
    rec = MODELS[args.model](make_config(args.model, params)).fit(tr, split.valid)
    print(f"{args.model} seed {args.seed} {args.set}: best epoch {rec.fit_info.get('best_epoch')}", flush=True)
    sets = {"valid": split.valid, "test": split.test}
    scores = {n: rec.score(es.queries) for n, es in sets.items()}
    for w in WINDOWS:
        counts = {n: np.log1p(windowed_counts(tr.item, tr.timestamp, tr.n_items, es, w)) for n, es in sets.items()}
        for a in ALPHAS:
            v, t = (ndcg10(scores[n] + a * counts[n], sets[n]) for n in ("valid", "test"))
            print(f"window {w}d alpha {a}: valid {v:.4f} test {t:.4f}", flush=True)


if __name__ == "__main__":
    main()
