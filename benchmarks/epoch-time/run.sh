#!/usr/bin/env bash
# Seconds per training epoch of SASRec and the fusion model on ml-100k (defaults, fp32, 2 threads) and on
# Amazon Beauty (batch 256, Beauty's fusion settings).  Writes benchmarks/epoch-time/epoch-time.txt.
# About 10 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=benchmarks/epoch-time/epoch-time.txt

{
  "$PY" benchmarks/epoch-time/epoch_time.py sasrec --set precision=fp32
  "$PY" benchmarks/epoch-time/epoch_time.py fusion --set precision=fp32
  "$PY" benchmarks/epoch-time/epoch_time.py sasrec --dataset amazon-beauty --epochs 1 \
    --set batch_size=256 --set precision=fp32
  "$PY" benchmarks/epoch-time/epoch_time.py fusion --dataset amazon-beauty --epochs 1 \
    --set batch_size=256 --set long_scope=past --set user_emb=false --set precision=fp32
} | tee "$OUT"
