#!/usr/bin/env bash
# Data-parallel training on ml-100k: the fusion model fitted by 1 process and by 2 (torchrun, gloo, one
# torch thread each; the same global batch), seeds 10-12, the headline settings (patience 20, fp32).
# Each fit's test NDCG@10 and HR@10 and its best epoch come from `recfuse train`'s model directory;
# compare.py pairs them by seed.  Writes benchmarks/ddp/results.{json,md}.  About 45 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
RECFUSE=${RECFUSE:-.venv/bin/recfuse}
OUT=${OUT:-/tmp/recfuse-ddp}
SEEDS=${SEEDS:-10 11 12}
SET=(--set patience=20 --set precision=fp32)
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
for seed in $SEEDS; do  # one process per fit, two fits side by side
  [ -f "$OUT/one-$seed/bundle.json" ] || "$RECFUSE" train --dataset ml-100k --seed "$seed" "${SET[@]}" --quiet \
    --out "$OUT/one-$seed" > "$OUT/one-$seed.log" 2>&1 &
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do sleep 5; done
done
wait
for seed in $SEEDS; do  # two processes per fit
  [ -f "$OUT/two-$seed/bundle.json" ] || "$RECFUSE" train --nproc 2 --dataset ml-100k --seed "$seed" "${SET[@]}" --quiet \
    --out "$OUT/two-$seed" > "$OUT/two-$seed.log" 2>&1
done
.venv/bin/python benchmarks/ddp/compare.py "$OUT" --seeds $SEEDS --out benchmarks/ddp
