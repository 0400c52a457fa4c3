#!/usr/bin/env bash
# `make bench`: every figure quoted in README.md, from this repository's commands.
# CPU, 2 cores: about 45 minutes.  Beauty's neural models are much faster on a GPU
# (recfuse picks CUDA automatically when torch sees one).
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1
R=.venv/bin/recfuse
PY=.venv/bin/python
OUT=${OUT:-benchmarks/results}
ALL=pop,itemknn,als,bpr,gru4rec,sasrec

# 1. ml-100k leaderboard, leave-one-out (RecBole's protocol), 3 seeds.
$R benchmark --dataset ml-100k --models $ALL --seeds 3 --out $OUT/ml-100k-loo --quiet
# 2. ml-100k, global temporal split (many more test events).
$R benchmark --dataset ml-100k --split temporal --models $ALL --seeds 3 --out $OUT/ml-100k-temporal --quiet
# 3. Why RecBole's Pop reads 0.0354: its batch-count quirk emulated on our split.
$PY benchmarks/recbole_pop_quirk.py --seeds 20 | tee $OUT/recbole_pop_quirk.txt
# 4. SASRec time to best epoch on 2 cores.
$PY benchmarks/sasrec_speed.py --seeds 3 --out $OUT/sasrec_speed.json
# 5. Amazon Beauty (S3-Rec split); needs a local copy: recfuse data get amazon-beauty --from DIR
#    Published settings for this sparse set: dropout 0.5, batch 256.
$R benchmark --dataset amazon-beauty --models pop,itemknn,als,bpr --seeds 3 --out $OUT/beauty-cpu --quiet
$R benchmark --dataset amazon-beauty --models sasrec,gru4rec --seeds 3 --no-tune \
  --set sasrec.dropout=0.5 --set sasrec.attn_dropout=0.5 --set sasrec.batch_size=256 \
  --set gru4rec.dropout=0.5 --set gru4rec.batch_size=256 --out $OUT/beauty-neural --quiet
