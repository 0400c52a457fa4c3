"""What does each branch of a trained fusion model rank on its own?

Loads a fusion model directory (``recfuse train --out DIR``) and scores the
leave-one-out valid and test users three ways: the fused user vector (the
model as it is), the short-term branch alone and the long-term branch alone
(each is trained as a predictor of its own through the auxiliary losses).
It also prints the gate's distribution.  If a branch alone ranks better
than the fused vector, the gate is choosing badly; if the short branch is
far below a plain SASRec of the same size, the fusion hurts it in training.

    python benchmarks/fusion_branches.py models/beauty-fusion-e30 --dataset amazon-beauty
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from recfuse.bundle import Bundle
from recfuse.data.registry import load_dataset
from recfuse.data.split import Queries, leave_one_out
from recfuse.evaluate.analysis import model_gates
from recfuse.evaluate.protocol import evaluate


def branch_scorer(model, branch: str):  # type: ignore[no-untyped-def]
    """A ``user_vectors`` that returns one branch (``fused``, ``short`` or ``long``)."""
    original = model.user_vectors

    @torch.no_grad()
    def user_vectors(queries: Queries) -> torch.Tensor:
        fused = original(queries)  # runs the module, which keeps (short, long) of this call
        if branch == "fused":
            return fused
        short, long = model.module.branches  # (B, 1, D) each
        return (short if branch == "short" else long)[:, -1]

    return user_vectors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="fusion model directory")
    ap.add_argument("--dataset", default="ml-100k")
    args = ap.parse_args()

    split = leave_one_out(load_dataset(args.dataset))
    m = Bundle.load(args.model).model
    m.module.eval()
    print(f"{args.model}: {args.dataset}, {len(split.valid)} valid / {len(split.test)} test users")
    print("| scored by | valid NDCG@10 | valid HR@10 | test NDCG@10 | test HR@10 |")
    print("|---|---|---|---|---|")
    original = m.user_vectors
    for branch in ("fused", "short", "long"):
        m.user_vectors = branch_scorer(m, branch)
        v = evaluate(m, split.valid, split.train, ks=(10,)).mean()
        t = evaluate(m, split.test, split.train, ks=(10,)).mean()
        print(f"| {branch} | {v['ndcg@10']:.4f} | {v['recall@10']:.4f} | {t['ndcg@10']:.4f} | {t['recall@10']:.4f} |")
    m.user_vectors = original
    for name, es in (("valid", split.valid), ("test", split.test)):
        g = model_gates(m, es)
        q = np.quantile(g, [0.1, 0.5, 0.9])
        print(f"gate (short-term share) on {name}: mean {g.mean():.3f}, p10 {q[0]:.3f}, median {q[1]:.3f}, p90 {q[2]:.3f}")


if __name__ == "__main__":
    main()
