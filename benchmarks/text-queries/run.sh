#!/usr/bin/env bash
# Precision@10 of the free-text queries in queries.json (English, Chinese, Spanish) over the ml-100k catalogue,
# per encoder (minilm, e5, use-m3) and per item text (title + genres, and with the imported LLM descriptions).
# Writes benchmarks/text-queries/results.json and results.md.  Needs ../shared/data/llm-item-descriptions.
# First run: encoding the catalogue with each encoder, minutes on 2 cores; a second run reads the cache.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}

"$PY" benchmarks/text-queries/precision.py "$@"
