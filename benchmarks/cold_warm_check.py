"""Does holding items out hurt the warm ones?  (Issue 3, cold-start acceptance.)

Fits a model on the ordinary leave-one-out split (every item seen) and
reports NDCG@10 / HR@10 on the test queries whose target is *warm* under the
cold-start protocol (``--cold-items FRAC``, same protocol seed), so the figure
lines up with ``slices.warm_items`` of ``recfuse benchmark --cold-items FRAC``:

    python benchmarks/cold_warm_check.py --model fusion --seeds 1

``--from-runs DIR`` fits nothing: it reads the per-user test metrics that
``benchmarks/seed_runs.py fit MODEL SEED --out DIR`` stored for the same
leave-one-out split (``MODEL-seedN.npz``) and keeps the warm-target rows:

    python benchmarks/cold_warm_check.py --model fusion --seeds 3 --from-runs benchmarks/results/ml-100k-fusion-p20-s5
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from seed_runs import load_runs  # this folder is on sys.path when run as a script

from recfuse.data.registry import load_dataset
from recfuse.data.split import COLD_ITEMS_SEED, cold_target_mask, hold_out_items, leave_one_out, select_targets
from recfuse.evaluate.cli import parse_overrides
from recfuse.evaluate.protocol import evaluate
from recfuse.evaluate.runner import make_config
from recfuse.models import MODELS


def from_runs(folder: str, model: str, seeds: int, users: np.ndarray, warm_rows: np.ndarray) -> list[dict]:
    """Warm-target figures from ``seed_runs.py``'s stored per-user test metrics (seeds 0..seeds-1)."""
    runs = load_runs(Path(folder), model)
    rows = []
    for seed in range(seeds):
        if seed not in runs:
            raise SystemExit(f"{folder}: no {model}-seed{seed} (benchmarks/seed_runs.py fit {model} {seed} --out {folder})")
        info, per = runs[seed]
        if not np.array_equal(per["user"], users):
            raise SystemExit(f"{folder}/{model}-seed{seed}.npz: its test users differ from this split's; not the same protocol")
        fi = info.get("fit_info", {})
        row = {"seed": seed, "ndcg@10": float(per["ndcg@10"][warm_rows].mean()),
               "hit@10": float(per["hit@10"][warm_rows].mean()), "all_test_ndcg@10": float(per["ndcg@10"].mean()),
               "fit_seconds": info.get("wall_seconds"), "best_epoch": fi.get("best_epoch"),
               "seconds_to_best_epoch": fi.get("seconds_to_best_epoch"), "best_valid_ndcg@10": info["valid"]["ndcg@10"],
               "params": info.get("params")}
        print(f"{model} seed {seed} (stored run), all items seen in training: warm-target test queries "
              f"({len(warm_rows)}) NDCG@10 {row['ndcg@10']:.4f}, HR@10 {row['hit@10']:.4f}; whole test NDCG@10 "
              f"{row['all_test_ndcg@10']:.4f}", flush=True)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="fusion", choices=sorted(MODELS))
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--cold-items", type=float, default=0.1)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    ap.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE", help="model setting of the fits made here")
    ap.add_argument("--from-runs", default=None, help="seed_runs.py output folder: use its stored per-user test "
                    "metrics (seeds 0..N-1) instead of fitting")
    args = ap.parse_args()

    base = leave_one_out(load_dataset(args.dataset))
    cold = hold_out_items(base, args.cold_items, COLD_ITEMS_SEED)
    warm_test, warm_rows = select_targets(base.test, ~cold_target_mask(cold))
    rows = from_runs(args.from_runs, args.model, args.seeds, base.test.queries.user, warm_rows) if args.from_runs else []
    params = parse_overrides([f"{args.model}.{s}" for s in args.set], [args.model]).get(args.model, {})
    for seed in range(0 if args.from_runs else args.seeds):  # fit here only without --from-runs
        started = time.perf_counter()
        model = MODELS[args.model](make_config(args.model, {**params, "seed": seed, "progress": False})).fit(base.train, base.valid)
        seconds = time.perf_counter() - started
        m = evaluate(model, warm_test, base.train).mean()
        full = evaluate(model, base.test, base.train).mean()
        info = model.fit_info
        rows.append({"seed": seed, "ndcg@10": float(m["ndcg@10"]), "hit@10": float(m["hit@10"]),
                     "all_test_ndcg@10": float(full["ndcg@10"]), "fit_seconds": seconds,
                     "best_epoch": info.get("best_epoch"), "seconds_to_best_epoch": info.get("seconds_to_best_epoch"),
                     "best_valid_ndcg@10": info.get("best_valid_ndcg@10")})
        print(f"{args.model} seed {seed}, all items seen in training: warm-target test queries "
              f"({len(warm_rows)}) NDCG@10 {m['ndcg@10']:.4f}, HR@10 {m['hit@10']:.4f}; whole test NDCG@10 "
              f"{full['ndcg@10']:.4f}; valid {info.get('best_valid_ndcg@10')}; best epoch {info.get('best_epoch')}, "
              f"fit {seconds:.0f} s", flush=True)
    summary = {"model": args.model, "source": args.from_runs or "fitted here", "dataset": args.dataset, "cold_items": args.cold_items,
               "protocol_seed": COLD_ITEMS_SEED, "warm_queries": len(warm_rows), "runs": rows,
               "ndcg@10_mean": float(np.mean([r["ndcg@10"] for r in rows]))}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
