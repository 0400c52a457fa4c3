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

# Tail latency, read-only and with 4 writers posting events, at 1/16/64 connections: the tree at BEFORE_REF
# ("before", default d4b50f9: the service before issue 27) against the working tree ("after"), in one run
# on one machine.  Readers: wrk (Debian's package), writers: an asyncio client; the model is a fusion fit on
# the genre log of recfuse.serve.testing sized like ml-100k (943 users, 1,680 items; about a minute to fit
# once).  Writes benchmarks/serve-load/results.{json,md}.  About 5 minutes.
command -v wrk >/dev/null || echo "wrk not found (apt-get install wrk): the asyncio reader stands in"
BEFORE_REF=${BEFORE_REF:-d4b50f9}
BEFORE=$(mktemp -d)
git archive "$BEFORE_REF" src | tar -x -C "$BEFORE"
"$PY" benchmarks/serve-load/mixed_load.py --fit-model models/serve-load-genre --before "$BEFORE" \
  --seconds 10 --out benchmarks/serve-load
rm -rf "$BEFORE"
