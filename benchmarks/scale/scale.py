"""Scale figures on the synthetic log: preparation, a fusion training epoch, evaluation; time and peak memory.

    scale.py synth --events 1000000 --out DATA/1m      # users = events / 25, 100,000 items
    scale.py prep DATA/1m                               # scan, validate, map ids, sort, split
    scale.py train DATA/1m --max-seconds 300            # one fusion epoch (sampled softmax), then evaluation
    scale.py plot results.jsonl --out scale.png         # the figure of docs/scale.md

Each measuring command runs in its own process and prints one JSON line: wall seconds and the
process's peak resident memory (``ru_maxrss``), so one figure's memory is not another's.
An epoch cut by ``--max-seconds`` is reported with the batches it ran and extrapolated to all.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch


def peak_gb() -> float:
    """Peak resident memory of this process so far, GB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def cmd_synth(a: argparse.Namespace) -> dict[str, object]:
    from recfuse.data.synth import SynthConfig, synthesize

    t = time.perf_counter()
    synthesize(a.out, SynthConfig(users=max(1, a.events // 25), items=a.items, events=a.events, seed=a.seed))
    return {"step": "synth", "events": a.events, "seconds": round(time.perf_counter() - t, 2), "peak_gb": round(peak_gb(), 3)}


def cmd_prep(a: argparse.Namespace) -> dict[str, object]:
    from recfuse.data.prep import prepare
    from recfuse.data.split import leave_one_out

    t = time.perf_counter()
    data = prepare(a.data)
    t_read = time.perf_counter() - t
    split = leave_one_out(data)
    total = time.perf_counter() - t
    return {"step": "prep", "events": data.n_events, "users": data.n_users, "items": data.n_items,
            "read_map_sort_seconds": round(t_read, 2), "seconds": round(total, 2),
            "train_events": split.train.n_events, "peak_gb": round(peak_gb(), 3)}


def cmd_train(a: argparse.Namespace) -> dict[str, object]:
    from recfuse.data.prep import prepare
    from recfuse.data.split import leave_one_out
    from recfuse.evaluate.protocol import evaluate
    from recfuse.models.fusion import Fusion

    class Counted(Fusion):
        """The fusion model, counting its training batches (to extrapolate an epoch cut by the clock)."""

        batches = 0

        def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
            for batch in super().train_batches(rng, batch_size):
                self.batches += 1
                yield batch

    torch.set_num_threads(a.threads)
    split = leave_one_out(prepare(a.data))
    after_prep = peak_gb()
    model = Counted(epochs=1, progress=False, precision="fp32", use_text=False, batch_size=a.batch_size,
                    max_seconds=a.max_seconds, seed=0)
    windows = len(model._windows(split.train, np.random.default_rng(0)))
    total_batches = math.ceil(windows / a.batch_size)
    t = time.perf_counter()
    model.fit(split.train)
    fit_seconds = time.perf_counter() - t
    train_s = float(model.fit_info["train_seconds"])
    epoch_s = train_s * total_batches / max(model.batches, 1)
    after_train = peak_gb()
    users = np.arange(min(a.eval_users, len(split.test))) if a.eval_users else np.arange(len(split.test))
    t = time.perf_counter()
    result = evaluate(model, split.test.take(users), split.train, ks=(10,))
    eval_s = time.perf_counter() - t
    return {"step": "train", "events": split.full.n_events, "items": split.train.n_items, "users": split.train.n_users,
            "sampled_softmax": model.sampled, "batch_size": a.batch_size, "threads": a.threads,
            "batches_run": model.batches, "batches_per_epoch": total_batches,
            "epoch_seconds": round(epoch_s, 1), "epoch_extrapolated": model.batches < total_batches,
            "fit_seconds_incl_setup": round(fit_seconds, 1), "peak_gb_after_prep": round(after_prep, 3),
            "peak_gb_after_train": round(after_train, 3), "eval_users": len(users), "eval_seconds": round(eval_s, 1),
            "eval_users_per_second": round(len(users) / max(eval_s, 1e-9)), "ndcg@10": round(result.mean()["ndcg@10"], 4),
            "peak_gb": round(peak_gb(), 3)}


def cmd_plot(a: argparse.Namespace) -> dict[str, object]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in a.results.read_text().splitlines() if line.strip()]
    prep = sorted((r for r in rows if r["step"] == "prep"), key=lambda r: r["events"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    ev = [r["events"] / 1e6 for r in prep]
    left.plot(ev, [r["seconds"] for r in prep], "o-", label="prep (s)")
    left.plot(ev, [r["peak_gb"] for r in prep], "s--", label="prep peak (GB)")
    left.set_xlabel("events (millions)")
    left.set_title("Preparation: scan, validate, map, sort, split")
    left.legend()
    train = sorted((r for r in rows if r["step"] == "train"), key=lambda r: r["events"])
    if train:
        x = np.arange(len(train))
        right.bar(x - 0.2, [r["epoch_seconds"] / 60 for r in train], 0.4, label="epoch (min)")
        right.bar(x + 0.2, [r["peak_gb"] for r in train], 0.4, label="peak (GB)")
        right.set_xticks(x, [f"{r['events'] / 1e6:g}M" for r in train])
        right.set_title(f"Fusion epoch, {train[0]['items']:,} items (sampled softmax)")
        right.legend()
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    return {"step": "plot", "out": str(a.out)}


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synth")
    s.add_argument("--events", type=int, required=True)
    s.add_argument("--items", type=int, default=100_000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("prep")
    s.add_argument("data", type=Path)
    s = sub.add_parser("train")
    s.add_argument("data", type=Path)
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--max-seconds", type=float, default=0.0, help="cut the epoch here and extrapolate (0: whole epoch)")
    s.add_argument("--eval-users", type=int, default=0, help="evaluate on the first N test users (0: all)")
    s.add_argument("--threads", type=int, default=2)
    s = sub.add_parser("plot")
    s.add_argument("results", type=Path)
    s.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    out = {"synth": cmd_synth, "prep": cmd_prep, "train": cmd_train, "plot": cmd_plot}[a.cmd](a)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
