"""Where does the fusion model win?  Test NDCG@10 by the time since the user's previous event.

Reads the per-user test metrics that ``benchmarks/seed_runs.py`` stored
(``MODEL-seedN.npz``, leave-one-out on ml-100k), averages each user over the
seeds both models have, and splits the users by the gap between their last
history event and the test event (the "time since last activity" the fusion
gate reads):

    python benchmarks/gap_slices.py fusion sasrec --runs benchmarks/results/ml-100k-fusion-p20-s5

``--model DIR`` (a fusion model directory) adds, per slice, that model's mean
gate and its NDCG@10 with the request time hidden (the gap bucket set to
"unknown"), i.e. what the time-since-last-event signal is worth there.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
from seed_runs import load_runs  # this folder is on sys.path when run as a script

from recfuse.data.registry import load_dataset
from recfuse.data.split import leave_one_out

SLICES = [(0, 60, "under 1 min"), (60, 3600, "1 min - 1 h"), (3600, 86400, "1 h - 1 day"), (86400, np.inf, "over 1 day")]


def per_user(runs: Path, a: str, b: str, key: str = "ndcg@10") -> tuple[np.ndarray, np.ndarray]:
    """Each model's per-user ``key`` (test NDCG@10; ``valid_ndcg@10`` on valid), averaged over the seeds both have."""
    ra, rb = load_runs(runs, a), load_runs(runs, b)
    seeds = sorted(s for s in set(ra) & set(rb) if key in ra[s][1] and key in rb[s][1])
    if not seeds:
        raise SystemExit(f"{runs}: no seed where both {a} and {b} have {key} "
                         f"(benchmarks/seed_runs.py fit MODEL SEED --out {runs}; valid metrics since session 12)")
    return tuple(np.mean([r[s][1][key] for s in seeds], axis=0) for r in (ra, rb))  # type: ignore[return-value]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_a")
    ap.add_argument("model_b")
    ap.add_argument("--runs", type=Path, required=True, help="seed_runs.py output folder")
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--model", type=Path, default=None, help="a fusion model directory: gate and hidden-time NDCG")
    ap.add_argument("--valid", action="store_true", help="the valid queries instead of the test ones")
    args = ap.parse_args()

    split = leave_one_out(load_dataset(args.dataset))
    es = split.valid if args.valid else split.test
    q = es.queries
    last = q.timestamps[q.indptr[1:] - 1]
    gap = q.time - last  # (n_users,) seconds from the last history event to the target event
    a, b = per_user(args.runs, args.model_a, args.model_b, "valid_ndcg@10" if args.valid else "ndcg@10")
    extra: dict[str, np.ndarray] = {}
    if args.model is not None:
        from recfuse.bundle import Bundle
        from recfuse.evaluate.protocol import evaluate

        m = Bundle.load(args.model).model
        hidden = dataclasses.replace(es, queries=dataclasses.replace(q, time=np.full(len(q), np.nan)))
        extra = {"gate": m.gates(q), "ndcg": evaluate(m, es, split.train).per_query["ndcg@10"],
                 "ndcg_hidden": evaluate(m, hidden, split.train).per_query["ndcg@10"]}
    head = f"| gap to the {'valid' if args.valid else 'test'} event | users | {args.model_a} | {args.model_b} | ratio |"
    if extra:
        head += f" {args.model.name}: gate | NDCG@10 | NDCG@10, time hidden |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for lo, hi, name in SLICES:
        k = (gap >= lo) & (gap < hi)
        row = f"| {name} | {int(k.sum())} | {a[k].mean():.4f} | {b[k].mean():.4f} | {a[k].mean() / b[k].mean():.2f} |"
        if extra:
            row += f" {extra['gate'][k].mean():.2f} | {extra['ndcg'][k].mean():.4f} | {extra['ndcg_hidden'][k].mean():.4f} |"
        print(row)
    print(f"| all | {len(gap)} | {a.mean():.4f} | {b.mean():.4f} | {a.mean() / b.mean():.3f} |")


if __name__ == "__main__":
    main()
