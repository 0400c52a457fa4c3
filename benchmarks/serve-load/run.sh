#!/usr/bin/env bash
# Serving latency and throughput of `recfuse serve` over real HTTP, on this machine: the `make demo` fusion
# model, one server process, closed-loop clients on the same machine.  Two runs with the user-vector cache
# and two without; writes benchmarks/serve-load/results/{cache,nocache}-{1,2}/serve_load.{json,txt}.
# About 6 minutes, plus about 10 for `make demo` when models/demo/fusion does not exist yet.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
MODEL=${MODEL:-models/demo/fusion}

test -f "$MODEL/bundle.json" || make demo
for run in 1 2; do
  "$PY" benchmarks/serve-load/serve_load.py --model "$MODEL" --seconds 10 \
    --out "benchmarks/serve-load/results/cache-$run"
  "$PY" benchmarks/serve-load/serve_load.py --model "$MODEL" --seconds 10 --user-cache 0 \
    --out "benchmarks/serve-load/results/nocache-$run"
done
