#!/usr/bin/env bash
# Scale figures on the synthetic log (users = events / 25, 100,000 items), 2 torch threads:
# preparation at 1M, 5M and 25M events; a fusion training epoch (sampled softmax) and evaluation at 1M
# and 5M events.  Writes benchmarks/scale/results.jsonl and docs/img/scale.png.
# DATA (default /tmp/recfuse-scale) holds the generated logs (~0.5 GB for 25M events).
# MAX_SECONDS caps each timed epoch (it is then extrapolated from the batches run); 0 runs it whole.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-/tmp/recfuse-scale}
MAX_SECONDS=${MAX_SECONDS:-240}
EVAL_USERS=${EVAL_USERS:-20000}
OUT=benchmarks/scale/results.jsonl
S=benchmarks/scale/scale.py

for n in 1000000 5000000 25000000; do
  [ -f "$DATA/e$n/synth.json" ] || "$PY" $S synth --events $n --out "$DATA/e$n"
done
: > "$OUT"
for n in 1000000 5000000 25000000; do
  "$PY" $S prep "$DATA/e$n" | tee -a "$OUT"
done
for n in 1000000 5000000; do
  "$PY" $S train "$DATA/e$n" --max-seconds "$MAX_SECONDS" --eval-users "$EVAL_USERS" | tee -a "$OUT"
done
"$PY" $S plot "$OUT" --out docs/img/scale.png
