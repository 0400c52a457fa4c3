"""Fit one model once on a dataset's leave-one-out split and print valid/test NDCG@10.

For quick comparisons and ablations (one seed), e.g.

    python benchmarks/fit_one.py fusion --set long_len=1
    python benchmarks/fit_one.py fusion --set use_text=false
    python benchmarks/fit_one.py sasrec --dataset ml-100k --set seed=1
"""

from __future__ import annotations

import argparse
import time

from recfuse.data.registry import load_dataset
from recfuse.data.split import leave_one_out
from recfuse.evaluate.cli import coerce
from recfuse.evaluate.protocol import evaluate
from recfuse.evaluate.runner import config_fields
from recfuse.models import MODELS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=sorted(MODELS))
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE")
    args = ap.parse_args()
    fields = config_fields(args.model)
    params = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in fields:
            ap.error(f"{args.model} has no parameter {key!r}; it has {sorted(fields)}")
        params[key] = coerce(value, fields[key])
    split = leave_one_out(load_dataset(args.dataset))
    started = time.perf_counter()
    model = MODELS[args.model](progress=False, **params) if "progress" in fields else MODELS[args.model](**params)
    model.fit(split.train, split.valid)
    wall = time.perf_counter() - started
    test = evaluate(model, split.test, split.train).mean()
    info = model.fit_info
    print(f"{args.model} {params}: best epoch {info.get('best_epoch')} of {info.get('epochs_run')}, "
          f"valid NDCG@10 {info.get('best_valid_ndcg@10')}, test NDCG@10 {test['ndcg@10']:.4f}, "
          f"HR@10 {test['hit@10']:.4f}, fit {wall:.1f} s")


if __name__ == "__main__":
    main()
