"""Time the catalogue softmax cross-entropy, plain vs chunked, forward + backward.

    python benchmarks/ce_speed.py                     # ml-100k's shape: 8,100 rows, D = 64, 1,682 items
    python benchmarks/ce_speed.py --rows 5000 --items 12101

Prints the median of ``--repeat`` timings per path and their ratio, and
checks that both paths give the same loss and gradients.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from recfuse.models.losses import chunk_rows, softmax_cross_entropy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=8100)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--items", type=int, default=1682)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    h = torch.randn(args.rows, args.dim, requires_grad=True)
    table = (0.1 * torch.randn(args.items, args.dim)).requires_grad_()
    y = torch.randint(0, args.items, (args.rows,))

    def step(chunked: bool) -> tuple[float, torch.Tensor, torch.Tensor]:
        h.grad = table.grad = None
        loss = softmax_cross_entropy(h, table, y, chunked=chunked)
        loss.backward()
        assert h.grad is not None and table.grad is not None
        return float(loss.detach()), h.grad.clone(), table.grad.clone()

    (la, ha, ta), (lb, hb, tb) = step(False), step(True)
    print(f"loss plain {la:.3f} chunked {lb:.3f}; max |grad diff| h {float((ha - hb).abs().max()):.2e} "
          f"table {float((ta - tb).abs().max()):.2e}")
    ms = {}
    for chunked in (False, True):
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            step(chunked)
            times.append(1000 * (time.perf_counter() - t))
        ms[chunked] = statistics.median(times)
    print(f"{args.rows} x {args.items} (D = {args.dim}, {args.threads} threads, chunk {chunk_rows(args.items)} rows): "
          f"plain {ms[False]:.1f} ms, chunked {ms[True]:.1f} ms, {ms[False] / ms[True]:.2f}x")


if __name__ == "__main__":
    main()
