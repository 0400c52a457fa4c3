#!/usr/bin/env bash
# Does serving explanations in words slow the plain recommendation request?  GET recommendations (explain
# off) at 1, 16 and 64 connections, read-only and with 4 writers, on the tree at BEFORE_REF ("before",
# default 0987872: the service before explain=text and /profile) against the working tree ("after"), in one
# run on one machine, with mixed_load.py of benchmarks/serve-load/.  Writes results.{json,md} here.
# About 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
command -v wrk >/dev/null || echo "wrk not found (apt-get install wrk): the asyncio reader stands in"
BEFORE_REF=${BEFORE_REF:-0987872}
BEFORE=$(mktemp -d)
git archive "$BEFORE_REF" src | tar -x -C "$BEFORE"
"$PY" benchmarks/serve-load/mixed_load.py --fit-model models/serve-load-genre --before "$BEFORE" \
  --seconds 10 --concurrency "${CONCURRENCY:-1,16,64}" --out benchmarks/words-overhead "$@"
rm -rf "$BEFORE"
