"""The fusion model's gate by the time since the user's previous event, from a saved model directory.

    python benchmarks/gate-by-gap/plot.py models/demo/fusion docs/img/gate_by_gap.png

The model is asked at each test query's time (ml-100k leave-one-out, the dataset the directory names);
the plot and ``gate_by_gap.json`` (per bucket: queries, mean and std of the gate) go beside ``OUT``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from recfuse.bundle import Bundle
from recfuse.data.registry import load_dataset
from recfuse.data.split import leave_one_out
from recfuse.evaluate.analysis import model_gate_by_gap, plot_gate_by_gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="fusion model directory (recfuse train / benchmark --save-models)")
    parser.add_argument("out", type=Path, help="PNG to write")
    args = parser.parse_args()
    bundle = Bundle.load(args.model)
    split = leave_one_out(load_dataset(str(bundle.meta["dataset"])))
    result = model_gate_by_gap(bundle.model, split.test)  # type: ignore[arg-type]
    title = f"Fusion gate by time since the previous event ({bundle.meta['dataset']}, test queries)"
    plot_gate_by_gap(result, args.out, title)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}; mean gate {result['mean_gate']:.3f} over {result['n_queries']} queries")


if __name__ == "__main__":
    main()
