"""Compare RecBole's leave-one-out valid/test targets with recfuse's, per user.

The CSV comes from ``benchmarks/recbole_check.py --out FILE`` (run in the
separate RecBole env; see its docstring).  This script runs in recfuse's own
venv and needs no RecBole:

    .venv/bin/python benchmarks/compare_targets.py /tmp/recbole_targets.csv

It prints how many users have the same valid item, the same test item and the
same number of training events in both splits, then lists the users that
differ with their last events as they stand in the raw file (RecBole sorts on
min-max normalised float32 timestamps, so events a second or so apart tie and
keep file order; recfuse sorts on the exact timestamps).  Finally it scores
recfuse's Pop on the recfuse split and on the split RecBole made (targets from
the CSV, training = every other event), both ranked the recfuse way.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from recfuse.data.registry import load_dataset
from recfuse.data.split import leave_one_out


def pop_ndcg_on(per_user: dict[str, list[str]], valid: dict[str, str], test: dict[str, str], k: int = 10) -> float:
    """Test NDCG@k of true popularity (train counts) with train+valid masked; ties by lowest item id."""
    items = sorted({i for s in per_user.values() for i in s}, key=lambda x: (len(x), x))
    idx = {x: j for j, x in enumerate(items)}
    counts = np.zeros(len(items))
    for u, seq in per_user.items():
        held = {valid.get(u), test.get(u)}
        for i in seq:
            if i not in held:
                counts[idx[i]] += 1
    total, n = 0.0, 0
    for u, t in test.items():
        s = counts.copy()
        s[[idx[i] for i in per_user[u] if i != t]] = -np.inf
        top = np.argsort(-s, kind="stable")[:k]
        hit = np.flatnonzero(top == idx[t])
        total += 1.0 / np.log2(hit[0] + 2) if len(hit) else 0.0
        n += 1
    return total / max(n, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", type=Path, help="per-user targets written by recbole_check.py --out")
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument(
        "--raw", type=Path, default=None, help="the atomic .inter file (default /work/shared/data/<ds>/<ds>.inter)"
    )
    args = ap.parse_args()

    with args.csv.open() as fh:
        rb = {r["user"]: r for r in csv.DictReader(fh)}

    split = leave_one_out(load_dataset(args.dataset))
    d = split.full
    rf_test = dict(zip(d.users.to_external(split.test.queries.user), d.items.to_external(split.test.targets)))
    rf_valid = dict(zip(d.users.to_external(split.valid.queries.user), d.items.to_external(split.valid.targets)))
    rf_ntrain = dict(zip(*np.unique(d.users.to_external(split.train.user), return_counts=True)))

    users = sorted(set(rf_test) | set(rb), key=lambda x: (len(x), x))
    same_test = [u for u in users if u in rb and rb[u]["test_item"] == rf_test.get(u)]
    same_valid = [u for u in users if u in rb and rb[u]["valid_item"] == rf_valid.get(u)]
    same_ntrain = [u for u in users if u in rb and int(rb[u]["n_train"]) == int(rf_ntrain.get(u, 0))]
    print(f"users: recfuse test {len(rf_test)}, RecBole {len(rb)}, in both {len(set(rf_test) & set(rb))}")
    print(f"same test item:          {len(same_test)}/{len(users)}")
    print(f"same valid item:         {len(same_valid)}/{len(users)}")
    print(f"same # training events:  {len(same_ntrain)}/{len(users)}")
    both = [u for u in users if u in same_test and u in same_valid]
    print(f"same valid and test:     {len(both)}/{len(users)}")

    raw = args.raw or Path(f"/work/shared/data/{args.dataset}/{args.dataset}.inter")
    rows = []
    if raw.exists():
        with raw.open() as fh:
            cols = [h.split(":")[0] for h in fh.readline().rstrip("\n").split("\t")]
            iu, ii, it = cols.index("user_id"), cols.index("item_id"), cols.index("timestamp")
            for n, line in enumerate(fh, start=2):
                f = line.rstrip("\n").split("\t")
                rows.append((f[iu], f[ii], int(float(f[it])), n))
    by_user: dict[str, list[tuple[str, str, int, int]]] = {}
    for r in rows:
        by_user.setdefault(r[0], []).append(r)
    differ = [u for u in users if u not in both]
    if differ:
        print("\nusers that differ (recfuse valid/test | RecBole valid/test), last events by exact time:")
        for u in differ:
            print(
                f"  user {u}: recfuse {rf_valid.get(u)}/{rf_test.get(u)} | "
                f"RecBole {rb.get(u, {}).get('valid_item')}/{rb.get(u, {}).get('test_item')}"
            )
            for _, i, t, n in sorted(by_user.get(u, []), key=lambda r: r[2])[-6:]:
                print(f"      item {i:>5s}  time {t}  file line {n}")

    if rows:
        seqs = {u: [r[1] for r in rs] for u, rs in by_user.items()}
        rb_valid = {u: r["valid_item"] for u, r in rb.items() if r["valid_item"]}
        rb_test = {u: r["test_item"] for u, r in rb.items() if r["test_item"]}
        print()
        print("true-popularity test NDCG@10, ties by lowest item id, train+valid masked:")
        print(f"  on recfuse's split: {pop_ndcg_on(seqs, rf_valid, rf_test):.4f}")
        print(f"  on RecBole's split: {pop_ndcg_on(seqs, rb_valid, rb_test):.4f}")
    from recfuse.evaluate.protocol import evaluate
    from recfuse.models import MODELS

    pop = MODELS["pop"]().fit(split.train)
    print(f"  recfuse pop via recfuse.evaluate: {evaluate(pop, split.test, split.train).mean()['ndcg@10']:.4f}")


if __name__ == "__main__":
    main()
