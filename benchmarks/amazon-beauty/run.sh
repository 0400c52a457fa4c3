#!/usr/bin/env bash
# The Amazon Beauty figure: the fusion model against SASRec over seeds 0-2, leave-one-out, full ranking,
# both with Beauty's settings (dropout 0.5, batch 256; see README.md).  Writes benchmarks/amazon-beauty/
# results.json, results.md, the slice plots and compare_fusion_vs_sasrec.md; the per-fit records go to
# benchmarks/amazon-beauty/runs/ (not committed).  About 4 hours on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
RECFUSE=${RECFUSE:-.venv/bin/recfuse}

"$RECFUSE" benchmark --dataset amazon-beauty --models sasrec,fusion --seeds 0-2 --jobs 2 --no-tune \
  --set fusion.dropout=0.5 --set fusion.attn_dropout=0.5 --set fusion.batch_size=256 \
  --set fusion.learning_rate=1e-3 --set fusion.long_scope=past --set fusion.user_emb=false \
  --set fusion.label_smoothing=0 --set fusion.trend_days=0 --set fusion.precision=fp32 \
  --set sasrec.dropout=0.5 --set sasrec.attn_dropout=0.5 --set sasrec.batch_size=256 \
  --set sasrec.label_smoothing=0 --set sasrec.precision=fp32 \
  --out benchmarks/amazon-beauty
"$RECFUSE" compare fusion sasrec --runs benchmarks/amazon-beauty
