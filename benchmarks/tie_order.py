"""Is the file order of same-timestamp events information or noise?

For each dataset with timestamps: the share of events in a run of one user's
events with the same timestamp, the share of leave-one-out valid and test
targets tied with the event before them, and a direction test on adjacent
pairs.  For every unordered item pair {a, b} seen adjacent at least
``--min-pairs`` times, count a-then-b (n) against b-then-a (m); if the order
is random, (n - m)^2 / (n + m) is chi-square with one degree of freedom, so
its mean over pairs is about 1.  Above 1, order carries signal.

    python benchmarks/tie_order.py [--dataset ml-100k]

``--runs A B`` (two ``benchmarks/seed_runs.py`` output folders, leave-one-out
on this dataset) adds ``--model``'s per-user test NDCG@10 in each, averaged
over the seeds both have, for users whose test target is tied with the event
before it and for the others.

    python benchmarks/tie_order.py --runs benchmarks/results/ml-100k-ties benchmarks/results/ml-100k-fusion-p20-s5
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
from seed_runs import load_runs  # this folder is on sys.path when run as a script

from recfuse.data.registry import load_dataset
from recfuse.evaluate.significance import paired_test


def direction_chi2(a: np.ndarray, b: np.ndarray, min_pairs: int) -> tuple[float, int]:
    """Mean (n - m)^2 / (n + m) over unordered pairs seen ``min_pairs`` times or more, and their number."""
    c = Counter(zip(a.tolist(), b.tolist(), strict=True))
    stats = []
    for (x, y), n in c.items():
        if x < y:
            m = c.get((y, x), 0)
            if n + m >= min_pairs:
                stats.append((n - m) ** 2 / (n + m))
    return float(np.mean(stats)) if stats else float("nan"), len(stats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--min-pairs", type=int, default=5)
    ap.add_argument("--runs", type=Path, nargs=2, metavar=("A", "B"), help="two seed_runs.py output folders")
    ap.add_argument("--model", default="fusion", help="the model name inside both --runs folders")
    args = ap.parse_args()
    ds = load_dataset(args.dataset)
    if ds.timestamp is None:
        raise SystemExit(f"{args.dataset} has no timestamps: nothing is tied")
    ts, item = ds.timestamp, ds.item
    user = np.repeat(np.arange(ds.n_users), np.diff(ds.indptr))
    same_user = user[1:] == user[:-1]
    tied = same_user & (ts[1:] == ts[:-1])
    in_run = np.zeros(len(ts), bool)
    in_run[1:] |= tied
    in_run[:-1] |= tied
    last = ds.indptr[1:] - 1
    ok = ds.lengths() >= 3
    print(f"{args.dataset}: {ds.n_events:,} events, {in_run.mean():.1%} in a run of one user's same-timestamp events")
    print(f"  test target tied with the event before it:  {(ts[last[ok]] == ts[last[ok] - 1]).mean():.1%} of users")
    print(f"  valid target tied with the event before it: {(ts[last[ok] - 1] == ts[last[ok] - 2]).mean():.1%}")
    for name, mask in (("tied", tied), ("untied", same_user & ~tied)):
        chi2, n = direction_chi2(item[:-1][mask], item[1:][mask], args.min_pairs)
        print(f"  adjacent {name:6s} pairs: mean direction chi-square {chi2:.2f} over {n} item pairs (1 = random order)")
    if args.runs:
        ra, rb = (load_runs(folder, args.model) for folder in args.runs)
        seeds = sorted(set(ra) & set(rb))
        if not seeds:
            raise SystemExit(f"no seed of {args.model} in both {args.runs[0]} and {args.runs[1]}")
        test_tied = ts[last] == ts[last - 1]
        print(f"  {args.model} test NDCG@10, per user averaged over seeds {seeds}:")
        per_user = []
        for folder, runs in zip(args.runs, (ra, rb), strict=True):
            users = runs[seeds[0]][1]["user"]
            ndcg = np.mean([runs[s][1]["ndcg@10"] for s in seeds], axis=0)
            per_user.append(ndcg)
            t = test_tied[users]
            print(f"    {folder!s:48s} all {ndcg.mean():.4f}  tied {ndcg[t].mean():.4f} ({t.sum()} users)"
                  f"  untied {ndcg[~t].mean():.4f} ({(~t).sum()})")
        test = paired_test(*per_user)
        print(f"    A / B = {per_user[0].mean() / per_user[1].mean():.3f}; paired over users: Wilcoxon p = "
              f"{test['wilcoxon_p']:.3g}, t-test p = {test['ttest_p']:.3g}")


if __name__ == "__main__":
    main()
