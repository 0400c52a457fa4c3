"""Is the file order of same-timestamp events information or noise?

For each dataset with timestamps: the share of events in a run of one user's
events with the same timestamp, the share of leave-one-out valid and test
targets tied with the event before them, and a direction test on adjacent
pairs.  For every unordered item pair {a, b} seen adjacent at least
``--min-pairs`` times, count a-then-b (n) against b-then-a (m); if the order
is random, (n - m)^2 / (n + m) is chi-square with one degree of freedom, so
its mean over pairs is about 1.  Above 1, order carries signal.

    python benchmarks/tie_order.py [--dataset ml-100k]
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from recfuse.data.registry import load_dataset


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


if __name__ == "__main__":
    main()
