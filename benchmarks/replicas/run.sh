#!/usr/bin/env bash
# Replicated serving over one PostgreSQL store (LISTEN/NOTIFY), on this machine, in one run:
# 1. GET recommendations under wrk at 16 and 64 connections, read-only and with 4 writers, `--workers 1`
#    against `--workers 2` (mixed_load.py of benchmarks/serve-load/, which fits its genre model once)
#    -> load/results.{json,md};
#    Then the same with `--workers 4` as a third server -> load4/results.{json,md};
# 2. lag.py: how long an event and an erasure accepted by replica A take to reach replica B's answers
#    (two `recfuse serve` processes on fresh tables) -> lag.{json,md}.
# Needs PostgreSQL (PG_URL, default the machine's test database) and wrk.  About 8 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
PG_URL=${PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
MODEL=models/serve-load-genre
"$PY" benchmarks/serve-load/mixed_load.py --fit-model "$MODEL" --db "$PG_URL" \
  --variant "one=--workers 1" --variant "two=--workers 2" --seconds 10 --concurrency 16,64 --out benchmarks/replicas/load
"$PY" benchmarks/serve-load/mixed_load.py --model "$MODEL" --db "$PG_URL" --variant "one=--workers 1" \
  --variant "two=--workers 2" --variant "four=--workers 4" --seconds 10 --concurrency 16,64 --out benchmarks/replicas/load4
"$PY" benchmarks/replicas/lag.py --model "$MODEL" --db "$PG_URL" --out benchmarks/replicas
