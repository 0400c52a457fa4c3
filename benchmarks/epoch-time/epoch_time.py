"""Seconds per training epoch of a next-item model on a dataset's leave-one-out training events.

Builds the model's network as ``fit`` does (item text included for a model
that reads it), then runs one warm-up epoch and ``--epochs`` timed epochs of
the training loop (Adam, the trainer's autocast, no validation) and prints
the median:

    python benchmarks/epoch-time/epoch_time.py fusion
    python benchmarks/epoch-time/epoch_time.py sasrec --set batch_size=256 --dataset amazon-beauty
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from recfuse.config import parse_overrides
from recfuse.data.registry import load_dataset
from recfuse.data.split import leave_one_out
from recfuse.evaluate.runner import reads_text, split_item_text
from recfuse.models import MODELS
from recfuse.train.trainer import resolve_device, resolve_precision, seed_everything

MODELS_TIMED = ("sasrec", "gru4rec", "fusion")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=MODELS_TIMED)
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")
    ap.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE")
    args = ap.parse_args()
    try:
        params = parse_overrides([f"{args.model}.{s}" for s in args.set], [args.model]).get(args.model, {})
    except ValueError as e:
        raise SystemExit(f"--set: {e}") from None
    split = leave_one_out(load_dataset(args.dataset))
    train = split.train
    model = MODELS[args.model](progress=False, **params)
    c = model.config
    seed_everything(c.seed)
    model.n_items, model.n_users = train.n_items, train.n_users
    model.device = resolve_device(c.device)
    text = split_item_text(split) if reads_text(args.model) else None
    model.module = model.build_module(train, text).to(model.device)
    model._train = train  # what fit sets while the trainer runs: train_batches reads it
    opt = torch.optim.Adam(model.module.parameters(), lr=c.learning_rate)
    dtype = resolve_precision(c.precision, model.device)
    rng = np.random.default_rng(0)

    def epoch() -> int:
        model.module.train()
        steps = 0
        for batch in model.train_batches(rng, c.batch_size):
            opt.zero_grad(set_to_none=True)
            with torch.autocast(model.device.type, dtype=dtype, enabled=dtype != torch.float32):
                loss = model.training_loss(batch)
            loss.backward()
            opt.step()
            steps += 1
        return steps

    epoch()
    times = []
    steps = 0
    for _ in range(args.epochs):
        t = time.perf_counter()
        steps = epoch()
        times.append(time.perf_counter() - t)
    print(f"{args.model} {params} on {args.dataset}: {steps} steps/epoch, {torch.get_num_threads()} threads, "
          f"precision {c.precision} ({dtype}), epoch seconds {[round(x, 2) for x in times]}, "
          f"median {statistics.median(times):.2f}")


if __name__ == "__main__":
    main()
