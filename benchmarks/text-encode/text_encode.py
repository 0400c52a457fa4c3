"""Time item-text encoding on a dataset: first run (empty cache) vs cached run.

Usage::

    python benchmarks/text-encode/text_encode.py [--dataset ml-100k] [--model all-MiniLM-L6-v2] [--batch-size 64]

The embedding cache goes to a fresh temporary folder (removed afterwards), so
the first run always encodes everything.  The first run includes loading the
model; the cached run uses a new, never-loaded encoder, as a new process
would.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time

import numpy as np

from recfuse.data.registry import load_dataset
from recfuse.text import TextEncoder, build_item_texts, encode_items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k", help="registered dataset name or path")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="sentence encoder name or directory")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per forward pass")
    parser.add_argument("--device", default="cpu", help="torch device")
    args = parser.parse_args()

    data = load_dataset(args.dataset)
    n_chars = sum(map(len, build_item_texts(data).texts))
    cache_dir = tempfile.mkdtemp(prefix="recfuse-emb-bench-")
    try:
        import torch

        encoder = TextEncoder(args.model, device=args.device, batch_size=args.batch_size)
        t0 = time.perf_counter()
        first, s1 = encode_items(data, encoder, cache_dir=cache_dir)
        first_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        second, s2 = encode_items(data, TextEncoder(args.model, device=args.device), cache_dir=cache_dir)
        cached_s = time.perf_counter() - t0
        assert s2.n_encoded == 0 and np.array_equal(first, second)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)

    print(
        f"{args.dataset}: {data.n_items} items ({n_chars / data.n_items:.0f} chars/text), model {s1.model}, "
        f"dim {s1.dim}, batch {args.batch_size}, {args.device}, torch threads {torch.get_num_threads()}, "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}"
    )
    print(
        f"first run : {first_s:6.2f} s  (model load {encoder.load_seconds or 0:.2f} s, "
        f"encode {s1.encode_seconds:.2f} s = {s1.encoded_per_s:,.0f} texts/s; {s1.n_encoded} encoded)"
    )
    print(f"cached run: {cached_s:6.3f} s  ({s2.n_cached} from cache, {s2.items_per_s:,.0f} items/s)")


if __name__ == "__main__":
    main()
