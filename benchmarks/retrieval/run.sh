#!/usr/bin/env bash
# Retrieval at scale: the service's item index (recfuse.serve.index) against exact search on clustered
# synthetic item vectors (d = 64 plus the trend offsets).  Two steps, each its own process:
#   crossover: single-query latency, exact against HNSW, 5K to 200K items (where EXACT_BELOW comes from);
#   index:     the 1M-item figure with the default sizes: build time, memory, recall@10, p50/p99, and
#              recall and latency per efSearch on the same graph (where hnsw_params comes from).
# Writes benchmarks/retrieval/results.json.  About 25 minutes on 2 cores, plus the HTTP step below.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
R=benchmarks/retrieval/retrieval.py
TMP=$(mktemp -d)
"$PY" $R crossover | tee "$TMP/crossover.json"
"$PY" $R index --items 1000000 | tee "$TMP/index.json"
"$PY" - "$TMP" <<'PY'
import json, os, platform, re, sys
from pathlib import Path

import faiss

tmp = Path(sys.argv[1])
cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
out = {"machine": f"{os.cpu_count()} cores, {cpu.group(1) if cpu else platform.machine()}", "faiss": faiss.__version__}
for step in ("crossover", "index"):
    out[step] = json.loads((tmp / f"{step}.json").read_text())
Path("benchmarks/retrieval/results.json").write_text(json.dumps(out, indent=2) + "\n")
PY
rm -rf "$TMP"
# Over HTTP: the genre model of benchmarks/serve-load with 1M items added, --index exact against hnsw,
# wrk at 16 connections; writes benchmarks/retrieval/http.{json,md}.  About 10 minutes.
MODEL=models/serve-load-genre
test -f "$MODEL/bundle.json" || "$PY" benchmarks/serve-load/mixed_load.py --fit-model "$MODEL" --concurrency 1 --seconds 1 --out "$(mktemp -d)"
"$PY" benchmarks/retrieval/serve_http.py --model "$MODEL" --items 1000000 --out benchmarks/retrieval
