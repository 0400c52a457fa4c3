"""Does "what is popular right now" add to a fitted model?  A late-fusion probe.

Fits ``MODEL`` (seed ``SEED``, patience 20, ``--set`` overrides; the fusion model
without its own trend term unless ``--set trend_days=...``) on ml-100k's
leave-one-out training set, then adds ``alpha * log1p(count)`` to its scores,
where ``count`` is each item's number of training events in the ``w`` days
before the request time (``[t - w, t)``, exact seconds; with ``--bucketed``
the fusion model's own day-bucketed table, :func:`recfuse.models.fusion.trend_counts`;
the user's own history is masked as usual).  Prints valid and test NDCG@10
for a grid of windows and weights, and with ``--pairs`` for every pair of
windows with one weight each: pick on valid, read test.  The fusion model's
trend term (``trend_days``) is the in-model version of this.

``--by GAP|LENGTH`` also picks one weight per tercile of the queries' time since
their last event (or history length) on valid, and ``--newness`` tries a bonus
for movies released in the request's last year on top of the valid-best trend.

``--cold-items FRAC`` fits on the cold-start protocol instead (that share of
items held out of training) and prints, per weight, valid NDCG@10, the ranks
of the valid queries whose target is held out (the protocol's valid set drops
them; here they choose the fill), the test queries' cold Recall@10/50/100,
NDCG@10 and median rank, and warm NDCG@10, for each way of filling a
never-seen item's trend (``--fill``: ``text``, the mean of its 10 nearest
items by text, as the model does; ``mean``, each row's mean; ``event``, each
row's mean over events, i.e. the trend of the item a random event went to;
``zero``).

``--scores FILE`` keeps the fitted model's valid/test scores in ``FILE``
(``.npz``) and reuses them on the next run, so a new grid needs no refit.

    python benchmarks/trend_probe.py sasrec 0
    python benchmarks/trend_probe.py fusion 0 [--set embedding_size=128]
    python benchmarks/trend_probe.py fusion 0 --windows 0.04,1,7,30 --bucketed --pairs --scores /tmp/f0.npz
    python benchmarks/trend_probe.py fusion 0 --windows 30 --bucketed --by gap --newness --scores /tmp/f0.npz
    python benchmarks/trend_probe.py fusion 0 --windows 30 --cold-items 0.1 --set id_dropout=0.05 --scores /tmp/c0.npz
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os

import numpy as np
import torch

from recfuse.data.dataset import Interactions
from recfuse.data.registry import load_dataset
from recfuse.data.split import (
    EvalSet,
    Split,
    cold_target_mask,
    drop_history_items,
    hold_out_items,
    leave_one_out,
    select_targets,
)
from recfuse.evaluate import metrics
from recfuse.evaluate.cli import parse_overrides
from recfuse.evaluate.runner import make_config
from recfuse.models import MODELS
from recfuse.models.fusion import Trend, trend_counts

ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def windowed_counts(item: np.ndarray, time: np.ndarray, n_items: int, es: EvalSet, days: float) -> np.ndarray:
    """``(B, n_items)``: each item's training events in the ``days`` before each query's request time."""
    t = es.queries.time
    out = np.zeros((len(es), n_items), np.float32)
    for b in range(len(es)):
        m = (time < t[b]) & (time >= t[b] - days * 86400)
        out[b] = np.bincount(item[m], minlength=n_items)
    return np.log1p(out)


def bucketed_counts(
    item: np.ndarray,
    time: np.ndarray,
    n_items: int,
    es: EvalSet,
    days: float,
    text: np.ndarray | None = None,
    fill: str = "event",
) -> np.ndarray:
    """The fusion model's table row for each query: ``(B, n_items)``, already ``log1p``."""
    counts, t0, width = trend_counts(item, time, n_items, days * 86400.0, text, fill)
    return counts[Trend(counts, None, t0, width).bucket(es.queries.time, len(es))]


def cold_valid_set(base: Split, cold: Split) -> EvalSet:
    """The valid queries of ``base`` whose target is a held-out item of ``cold``, held-out items dropped from
    their histories: the cold-start protocol's valid set leaves these out (early stopping sees warm targets
    only), and here they pick how a never-seen item's trend is filled, never the test set."""
    is_cold = np.zeros(base.train.n_items, dtype=bool)
    is_cold[cold.info["cold_items"]] = True
    queries, _ = drop_history_items(base.valid.queries, is_cold)
    out, _ = select_targets(EvalSet(queries, base.valid.target_indptr, base.valid.targets), is_cold[base.valid.targets])
    return out


def rank_line(name: str, scores: np.ndarray, es: EvalSet, rows: np.ndarray | slice = slice(None)) -> str:
    """Recall@10/50/100 and the median rank of the targets of ``es``'s ``rows``."""
    rank = target_ranks(scores, es)[rows]
    return (f"{name} Recall@10 {np.mean(rank <= 10):.4f} @50 {np.mean(rank <= 50):.4f} "
            f"@100 {np.mean(rank <= 100):.4f} median rank {np.median(rank):.0f}")


def cold_report(
    data: Interactions, split: Split, scores: dict, days: float, fills: list[str], cold_valid: EvalSet | None = None
) -> None:
    """Per fill and weight: valid NDCG@10 (the weight's pick), the cold-valid queries' ranks (the fill's pick),
    test cold Recall@10 / NDCG@10 / ranks, warm NDCG@10."""
    from recfuse.text.cache import encode_items

    tr = split.train
    cold = cold_target_mask(split)
    sets = {"valid": split.valid, "test": split.test}
    if cold_valid is not None and "cold_valid" in scores:
        sets["cold_valid"] = cold_valid
    seen = np.bincount(tr.item, minlength=tr.n_items) > 0
    print(f"{int(cold.sum())} test queries with a cold target, {int((~cold).sum())} warm; "
          f"{len(sets.get('cold_valid', ()))} valid queries with a cold target; "
          f"{int((~seen).sum())} items without a training event", flush=True)
    for fill in fills:
        text = encode_items(data)[0] if fill == "text" else None
        counts = {n: bucketed_counts(tr.item, tr.timestamp, tr.n_items, es, days, text, fill.replace("zero", "mean"))
                  for n, es in sets.items()}
        for c in counts.values() if fill == "zero" else ():
            c[:, ~seen] = 0.0
        pick = {}
        for a in ALPHAS:
            v = ndcg10(scores["valid"] + a * counts["valid"], sets["valid"])
            s = scores["test"] + a * counts["test"]
            hit = per_query_metrics(s, sets["test"])
            pick[a] = v
            cv = (rank_line(" | cold valid", scores["cold_valid"] + a * counts["cold_valid"], sets["cold_valid"])
                  if "cold_valid" in sets else "")
            print(f"fill {fill} window {days:g}d alpha {a}: valid {v:.4f}{cv} | test cold NDCG@10 "
                  f"{hit['ndcg@10'][cold].mean():.4f} {rank_line('', s, sets['test'], cold)} "
                  f"| warm NDCG@10 {hit['ndcg@10'][~cold].mean():.4f}", flush=True)
        print(f"fill {fill}: valid picks alpha {max(pick, key=lambda a: pick[a])}", flush=True)


def target_ranks(scores: np.ndarray, es: EvalSet) -> np.ndarray:
    """Each query's best target rank (1 = top) among the items left after masking its history; ties count
    against the target (an item level with it ranks above it)."""
    s = scores.copy()
    q = es.queries
    s[np.repeat(np.arange(len(es)), q.lengths()), q.items] = -np.inf
    owner = np.repeat(np.arange(len(es)), np.diff(es.target_indptr))
    target_score = s[owner, es.targets]
    above = (s[owner] >= target_score[:, None]).sum(axis=1)  # the target itself included
    best = np.full(len(es), np.iinfo(np.int64).max)
    np.minimum.at(best, owner, above)
    return best


def per_query_metrics(scores: np.ndarray, es: EvalSet) -> dict[str, np.ndarray]:
    """Each query's metrics at 10 (``ndcg@10``, ``hit@10``, ...), history masked."""
    s = scores.copy()
    q = es.queries
    s[np.repeat(np.arange(len(es)), q.lengths()), q.items] = -np.inf
    top = np.argsort(-s, axis=1, kind="stable")[:, :10]
    return metrics.per_query(metrics.hits_matrix(top, es.target_indptr, es.targets), np.diff(es.target_indptr), (10,))


def per_query_ndcg10(scores: np.ndarray, es: EvalSet) -> np.ndarray:
    """Each query's NDCG@10, history masked."""
    return per_query_metrics(scores, es)["ndcg@10"]


def ndcg10(scores: np.ndarray, es: EvalSet) -> float:
    """Mean NDCG@10 with each query's history masked, through the protocol's own metrics."""
    return float(per_query_ndcg10(scores, es).mean())


def by_tercile(scores: dict, counts: dict, sets: dict, feature: str) -> str:
    """One trend weight per tercile of ``feature`` (edges and weights picked on valid); valid and test NDCG@10."""
    feats = {}
    for n, es in sets.items():
        q = es.queries
        feats[n] = (
            q.lengths().astype(float)
            if feature == "length"
            else (q.time - q.timestamps[q.indptr[1:] - 1]).astype(float)
        )
    edges = np.unique(np.quantile(feats["valid"], [1 / 3, 2 / 3]))
    group = {n: np.searchsorted(edges, feats[n], side="left") for n in sets}  # a value on an edge: the lower group
    per = {n: {a: per_query_ndcg10(scores[n] + a * counts[n], sets[n]) for a in ALPHAS} for n in sets}
    pick = [max(ALPHAS, key=lambda a: per["valid"][a][group["valid"] == k].mean()) for k in range(len(edges) + 1)]
    v, t = (float(np.mean([per[n][pick[g]][i] for i, g in enumerate(group[n])])) for n in ("valid", "test"))
    return f"weight per {feature} tercile (edges {np.round(edges, 1).tolist()}): {pick}: valid {v:.4f} test {t:.4f}"


def release_year(data: Interactions) -> np.ndarray:
    """Each item's release year from the item table's `year` (NaN where missing)."""
    years = (
        data.item_features["year"].to_list()
        if data.item_features is not None and "year" in data.item_features.columns
        else []
    )
    return np.array([float(y) if y and str(y).isdigit() else np.nan for y in years])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("seed", type=int)
    ap.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE")
    ap.add_argument("--windows", default="7,30,60", help="comma-separated window lengths in days")
    ap.add_argument(
        "--bucketed", action="store_true", help="the fusion model's day-bucketed table instead of exact seconds"
    )
    ap.add_argument(
        "--pairs", action="store_true", help="also every pair of windows, a weight each (prints the valid-best)"
    )
    ap.add_argument("--by", choices=("gap", "length"), action="append", default=[], help="a weight per tercile of this")
    ap.add_argument(
        "--newness", action="store_true", help="bonus for movies released in the last year (ml-100k's year)"
    )
    ap.add_argument("--cold-items", type=float, default=0.0, metavar="FRAC",
                    help="the cold-start protocol: hold this share of items out of training")
    ap.add_argument("--fill", default="text,mean,event,zero",
                    help="with --cold-items: how never-seen items get a trend (event: the row's event-weighted mean)")
    ap.add_argument("--scores", default=None, metavar="FILE", help="keep/reuse the model's scores here (.npz)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("ml-100k")
    split = leave_one_out(data)
    sets = {}
    if args.cold_items:
        base, split = split, hold_out_items(split, args.cold_items)
        sets["cold_valid"] = cold_valid_set(base, split)
    tr = split.train
    sets = {"valid": split.valid, "test": split.test, **sets}
    if args.scores and os.path.exists(args.scores):
        z = np.load(args.scores)
        scores = {n: z[n] for n in sets if n in z.files}
        print(f"{args.model} seed {args.seed}: scores from {args.scores}", flush=True)
    else:
        params = parse_overrides([f"{args.model}.{s}" for s in args.set], [args.model]).get(args.model, {})
        # The probe adds its own late trend term, so the fitted fusion model has none unless --set says so.
        fixed = {"trend_days": 0.0} if args.model == "fusion" else {}
        params = {"patience": 20, "progress": False, **fixed, **params, "seed": args.seed}
        rec = MODELS[args.model](make_config(args.model, params)).fit(tr, split.valid)
        print(f"{args.model} seed {args.seed} {args.set}: best epoch {rec.fit_info.get('best_epoch')}", flush=True)
        scores = {n: rec.score(es.queries) for n, es in sets.items()}
        if args.scores:
            np.savez_compressed(args.scores, **scores)
    windows = [float(w) for w in args.windows.split(",")]
    if args.cold_items:
        for w in windows:
            cold_report(data, split, scores, w, args.fill.split(","), sets.get("cold_valid"))
        return
    count = bucketed_counts if args.bucketed else windowed_counts
    counts = {w: {n: count(tr.item, tr.timestamp, tr.n_items, es, w) for n, es in sets.items()} for w in windows}
    for w in windows:
        for a in ALPHAS:
            v, t = (ndcg10(scores[n] + a * counts[w][n], sets[n]) for n in ("valid", "test"))
            print(f"window {w:g}d alpha {a}: valid {v:.4f} test {t:.4f}", flush=True)
    if args.pairs:
        for w1, w2 in itertools.combinations(windows, 2):
            grid = {
                (a1, a2): ndcg10(scores["valid"] + a1 * counts[w1]["valid"] + a2 * counts[w2]["valid"], sets["valid"])
                for a1 in ALPHAS
                for a2 in ALPHAS
            }
            a1, a2 = max(grid, key=lambda k: grid[k])
            t = ndcg10(scores["test"] + a1 * counts[w1]["test"] + a2 * counts[w2]["test"], sets["test"])
            print(f"pair {w1:g}d x{a1} + {w2:g}d x{a2} (valid-best): valid {grid[a1, a2]:.4f} test {t:.4f}", flush=True)
    for w in windows if args.by or args.newness else ():
        for feature in args.by:
            print(f"window {w:g}d, {by_tercile(scores, counts[w], sets, feature)}", flush=True)
        if args.newness:
            a = max(ALPHAS, key=lambda a: ndcg10(scores["valid"] + a * counts[w]["valid"], sets["valid"]))
            year = release_year(data)
            for b in (0.0, 0.1, 0.2, 0.3, 0.5, 1.0):
                out = []
                for n in ("valid", "test"):
                    now = np.array([dt.datetime.fromtimestamp(t, dt.UTC).year for t in sets[n].queries.time], float)
                    new = (now[:, None] - year[None, :] <= 1).astype(np.float32)  # released this year or the one before
                    out.append(ndcg10(scores[n] + a * counts[w][n] + b * new, sets[n]))
                print(f"window {w:g}d alpha {a} + newness x{b}: valid {out[0]:.4f} test {out[1]:.4f}", flush=True)


if __name__ == "__main__":
    main()
