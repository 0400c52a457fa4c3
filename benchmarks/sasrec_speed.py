"""Wall time for SASRec to reach its best epoch on ml-100k (leave-one-out, CPU).

The acceptance figure of issue 2 is "best epoch in under 2 minutes on 2 CPU
cores".  This fits SASRec with its defaults for several seeds and prints, per
seed, the best epoch, seconds per epoch, seconds to the best epoch, and test
NDCG@10, then the medians.  Run it on a quiet machine:

    OPENBLAS_NUM_THREADS=1 python benchmarks/sasrec_speed.py --seeds 3 [--model sasrec] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from recfuse.data.registry import load_dataset
from recfuse.data.split import leave_one_out
from recfuse.evaluate.cli import coerce
from recfuse.evaluate.protocol import evaluate
from recfuse.evaluate.runner import config_fields
from recfuse.models import MODELS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--model", default="sasrec")
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (the target machine has 2 cores)")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    ap.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE", help="a model setting (repeatable)")
    args = ap.parse_args()
    fields = config_fields(args.model)
    try:
        params = {k: coerce(v, fields[k]) for k, _, v in (s.partition("=") for s in args.set)}
    except (KeyError, ValueError) as e:
        raise SystemExit(f"--set: {e}") from None
    torch.set_num_threads(args.threads)
    split = leave_one_out(load_dataset(args.dataset))
    rows = []
    for seed in range(args.seeds):
        started = time.perf_counter()
        model = MODELS[args.model](seed=seed, progress=False, **params).fit(split.train, split.valid)
        wall = time.perf_counter() - started
        info = model.fit_info
        test = evaluate(model, split.test, split.train).mean()
        rows.append({
            "seed": seed,
            "best_epoch": info["best_epoch"],
            "epochs_run": info["epochs_run"],
            "seconds_per_epoch": info["train_seconds"] / info["epochs_run"],
            "seconds_to_best_epoch": info["seconds_to_best_epoch"],
            "fit_seconds": wall,
            "valid_ndcg@10": info["best_valid_ndcg@10"],
            "test_ndcg@10": test["ndcg@10"],
        })
        r = rows[-1]
        print(f"seed {seed}: best epoch {r['best_epoch']:3d}/{r['epochs_run']:3d}  "
              f"{r['seconds_per_epoch']:.2f} s/epoch  to best {r['seconds_to_best_epoch']:.1f} s  "
              f"fit {wall:.1f} s  valid {r['valid_ndcg@10']:.4f}  test {r['test_ndcg@10']:.4f}", flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "seed"}
    print(f"median over {len(rows)} seeds: to best epoch {med['seconds_to_best_epoch']:.1f} s "
          f"({med['seconds_per_epoch']:.2f} s/epoch, best epoch {med['best_epoch']:.0f}), "
          f"test NDCG@10 {med['test_ndcg@10']:.4f}")
    print(f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"model": args.model, "dataset": args.dataset, "seeds": rows, "median": med,
                       "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}, f, indent=2)


if __name__ == "__main__":
    main()
