"""Seconds per training epoch of a next-item model on ml-100k's leave-one-out training events.

Builds the model as `fit` would, then runs one warm-up epoch and ``--epochs``
timed epochs of the training loop (Adam, no validation) and prints the median:

    python benchmarks/epoch_time.py fusion
    python benchmarks/epoch_time.py sasrec --set batch_size=256
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from recfuse.data.registry import load_dataset
from recfuse.data.split import leave_one_out
from recfuse.evaluate.cli import coerce
from recfuse.evaluate.runner import config_fields
from recfuse.models import MODELS
from recfuse.train.trainer import resolve_device, seed_everything


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=["sasrec", "gru4rec", "fusion"])
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE")
    args = ap.parse_args()
    fields = config_fields(args.model)
    params = {k: coerce(v, fields[k]) for k, _, v in (s.partition("=") for s in args.set)}
    train = leave_one_out(load_dataset(args.dataset)).train
    model = MODELS[args.model](progress=False, **params)
    seed_everything(model.config.seed)
    if args.model == "fusion":  # what Fusion.fit prepares before the trainer runs
        model._text = model._text_matrix(train) if model.config.use_text else None
        model._warm = np.concatenate([[True], train.item_counts() > 0])
        model._gap, model._next, model._rate, model._floor = model._event_features(train)
    model.n_items, model.n_users = train.n_items, train.n_users
    model.device = resolve_device(model.config.device)
    model.module = model.build_module().to(model.device)
    model._train = train
    opt = torch.optim.Adam(model.module.parameters(), lr=model.config.learning_rate)
    rng = np.random.default_rng(0)

    def epoch() -> int:
        model.module.train()
        steps = 0
        for batch in model.train_batches(rng, model.config.batch_size):
            opt.zero_grad(set_to_none=True)
            model.training_loss(batch).backward()
            opt.step()
            steps += 1
        return steps

    epoch()
    times = []
    for _ in range(args.epochs):
        t = time.perf_counter()
        steps = epoch()
        times.append(time.perf_counter() - t)
    print(f"{args.model} {params} on {args.dataset}: {steps} steps/epoch, {torch.get_num_threads()} threads, "
          f"epoch seconds {[round(x, 2) for x in times]}, median {statistics.median(times):.2f}")


if __name__ == "__main__":
    main()
