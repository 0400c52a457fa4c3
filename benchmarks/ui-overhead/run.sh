#!/usr/bin/env bash
# API latency with and without the web page's own requests in flight (issue 29, item 4): fits the genre test
# model once (about a minute), then three rounds of three 8-second conditions, interleaved.  Writes
# benchmarks/ui-overhead/results.{json,md}.  About 2 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
"$PY" benchmarks/ui-overhead/ui_overhead.py --out benchmarks/ui-overhead "$@"
