#!/usr/bin/env bash
# ml-100k with the LLM-written MovieLens descriptions imported (../shared/data/llm-item-descriptions):
# the fusion model with them against the fusion model without text (use_text=false), seeds 10-12, and
# one seed of the cold-start item protocol with ID dropout 0.05 and 0.2.  Writes full/, notext/, cold-mix/,
# cold-d02/ here.  About 60 minutes on 2 cores (four fits side by side at one thread each would be 35).
set -euo pipefail
cd "$(dirname "$0")/../.."
RECFUSE=${RECFUSE:-.venv/bin/recfuse}
OUT=benchmarks/llm-descriptions
CAT=$OUT/ml-100k+descriptions.parquet
"$RECFUSE" text import ../shared/data/llm-item-descriptions/movielens-llm-descriptions.json --dataset ml-100k \
  --out "$CAT" --show-misses 12
common=(--dataset ml-100k --items "$CAT" --models fusion --no-tune --set fusion.patience=20
        --set fusion.precision=fp32 --threads 1)
"$RECFUSE" benchmark "${common[@]}" --seeds 10-12 --out $OUT/full &
"$RECFUSE" benchmark "${common[@]}" --seeds 10-12 --set fusion.use_text=false --out $OUT/notext &
wait
"$RECFUSE" compare fusion fusion --runs $OUT/full --b-runs $OUT/notext
"$RECFUSE" benchmark "${common[@]}" --seeds 10-10 --cold-items 0.1 --set fusion.id_dropout=0.05 --out $OUT/cold-mix &
"$RECFUSE" benchmark "${common[@]}" --seeds 10-10 --cold-items 0.1 --set fusion.id_dropout=0.2 --out $OUT/cold-d02 &
wait
