"""Pair the 1-process and 2-process fits of ``run.sh`` by seed: test NDCG@10 / HR@10, best epoch, seconds.

    python benchmarks/ddp/compare.py /tmp/recfuse-ddp --seeds 10 11 12 --out benchmarks/ddp
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any


def fit(path: Path) -> dict[str, Any]:
    meta = json.loads((path / "bundle.json").read_text())
    info = meta.get("fit_info", {})
    test = meta.get("meta", meta).get("test", {})
    return {"ndcg@10": test.get("ndcg@10"), "hit@10": test.get("hit@10"), "best_epoch": info.get("best_epoch"),
            "epochs_run": info.get("epochs_run"), "train_seconds": info.get("train_seconds"),
            "seconds_to_best_epoch": info.get("seconds_to_best_epoch")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[10, 11, 12])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()
    rows = [{"seed": s, "one": fit(args.runs / f"one-{s}"), "two": fit(args.runs / f"two-{s}")} for s in args.seeds]
    one = [r["one"]["ndcg@10"] for r in rows]
    two = [r["two"]["ndcg@10"] for r in rows]
    diffs = [b - a for a, b in zip(one, two, strict=True)]
    result: dict[str, Any] = {
        "machine": f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), no GPU",
        "dataset": "ml-100k", "model": "fusion", "settings": "patience=20, precision=fp32, 1 torch thread per process",
        "rows": rows,
        "ndcg@10": {"one_mean": statistics.mean(one), "two_mean": statistics.mean(two),
                    "ratio": statistics.mean(two) / statistics.mean(one),
                    "one_seed_std": statistics.stdev(one) if len(one) > 1 else None,
                    "mean_paired_difference": statistics.mean(diffs)},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| seed | NDCG@10, 1 process | NDCG@10, 2 processes | HR@10, 1 / 2 | best epoch, 1 / 2 | s to best epoch, 1 / 2 |",
             "|---|---:|---:|---|---|---|"]
    for r in rows:
        a, b = r["one"], r["two"]
        lines.append(f"| {r['seed']} | {a['ndcg@10']:.4f} | {b['ndcg@10']:.4f} | {a['hit@10']:.4f} / {b['hit@10']:.4f} | "
                     f"{a['best_epoch']} / {b['best_epoch']} | {a['seconds_to_best_epoch']:.0f} / {b['seconds_to_best_epoch']:.0f} |")
    n = result["ndcg@10"]
    lines += ["", (f"Mean NDCG@10: {n['one_mean']:.4f} (1 process) against {n['two_mean']:.4f} (2 processes), "
                  f"ratio {n['ratio']:.3f}; mean paired difference {n['mean_paired_difference']:+.4f}; "
                  f"spread of the 1-process seeds (std) {n['one_seed_std']:.4f}.  {result['machine']}.")]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
