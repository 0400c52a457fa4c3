#!/usr/bin/env bash
# The headline ml-100k figure: the fusion model against SASRec over seeds 10-14, leave-one-out, full ranking.
# Writes benchmarks/ml-100k/results.json, results.md, the slice plots and compare_fusion_vs_sasrec.md;
# the per-fit records go to benchmarks/ml-100k/runs/ (not committed).  About 50 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
RECFUSE=${RECFUSE:-.venv/bin/recfuse}

"$RECFUSE" benchmark --dataset ml-100k --models sasrec,fusion --seeds 10-14 --jobs 2 --no-tune \
  --set sasrec.patience=20 --set fusion.patience=20 --set sasrec.precision=fp32 --set fusion.precision=fp32 \
  --out benchmarks/ml-100k
"$RECFUSE" compare fusion sasrec --runs benchmarks/ml-100k
