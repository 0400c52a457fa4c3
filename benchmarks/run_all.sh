#!/usr/bin/env bash
# `make bench`: every figure quoted in README.md, from this repository's commands.
# CPU, 2 cores: the baselines take about 45 minutes; the fusion rows (6-9) add
# several hours (one ml-100k fusion fit is ~5-10 minutes on 2 quiet cores).
# Beauty's neural models are much faster on a GPU (recfuse picks CUDA when torch sees one).
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1
R=.venv/bin/recfuse
PY=.venv/bin/python
OUT=${OUT:-benchmarks/results}
ALL=pop,itemknn,als,bpr,gru4rec,sasrec
# Rows run before session 13, when the fusion model had no trend term by default, turn it off:
NT="--set fusion.trend_days=0"
off() { if [ "$1" = fusion ]; then echo "--set trend_days=0"; fi; }
# Rows before section 19 ran before session 18, when the fusion model had no per-user vector (user_emb=false
# then; on since).  Their fusion rows reproduce at commit db5a365 or earlier; run as they stand, they measure
# today's default.  Sections 18-19 name the switch where it matters.
# Rows before section 16 ran before session 15, when SASRec and fusion had no label smoothing:
L0="--set label_smoothing=0"
ls0() { for m in sasrec fusion; do case ",$1," in *,$m,*) printf -- "--set %s.label_smoothing=0 " $m;; esac; done; }

# 1. ml-100k leaderboard, leave-one-out (RecBole's protocol), 3 seeds.
$R benchmark --dataset ml-100k --models $ALL $(ls0 $ALL) --seeds 3 --out $OUT/ml-100k-loo --quiet
# 2. ml-100k, global temporal split (many more test events).
$R benchmark --dataset ml-100k --split temporal --models $ALL $(ls0 $ALL) --seeds 3 --out $OUT/ml-100k-temporal --quiet
# 3. RecBole's Pop (0.0354): recfuse's pop with count=recbole (RecBole 1.2.1's per-batch count) over 20 seeds
#    against RecBole's own 20 seeds; then the same through the CLI.
$PY benchmarks/recbole_pop_quirk.py --seeds 20 | tee $OUT/recbole_pop_quirk.txt
$R benchmark --dataset ml-100k --models pop --set pop.count=recbole --seeds 20 --no-tune --out $OUT/ml-100k-pop-recbole --quiet
# 4. SASRec time to best epoch on 2 cores.
$PY benchmarks/sasrec_speed.py $L0 --seeds 3 --out $OUT/sasrec_speed.json
# 5. Amazon Beauty (S3-Rec split); needs a local copy: recfuse data get amazon-beauty --from DIR
#    Published settings for this sparse set: dropout 0.5, batch 256.
$R benchmark --dataset amazon-beauty --models pop,itemknn,als,bpr --seeds 3 --out $OUT/beauty-cpu --quiet
$R benchmark --dataset amazon-beauty --models sasrec,gru4rec $(ls0 sasrec,gru4rec) --seeds 3 --no-tune \
  --set sasrec.dropout=0.5 --set sasrec.attn_dropout=0.5 --set sasrec.batch_size=256 \
  --set gru4rec.dropout=0.5 --set gru4rec.batch_size=256 --out $OUT/beauty-neural --quiet
# 6. The fusion model against SASRec (and the ALS baseline), leave-one-out, 5 seeds.
$R benchmark --dataset ml-100k --models als,sasrec,fusion $(ls0 als,sasrec,fusion) --seeds 5 --no-tune --set als.embedding_size=32 \
  --set als.reg=0.01 $NT --out $OUT/ml-100k-fusion --save-models models/bench --quiet
# 6b. The same comparison with early-stopping patience 20 for both (two weak fusion seeds of row 6
#     stopped at epochs 25 and 30): one process per (model, seed), 1 thread each, two side by side.
P20=$OUT/ml-100k-fusion-p20-s5
for s in 0 1 2 3 4; do echo "fusion $s trend_days=0"; echo "sasrec $s"; done | OMP_NUM_THREADS=1 xargs -P 2 -L 1 \
  sh -c '"$0" benchmarks/seed_runs.py fit "$2" "$3" --set label_smoothing=0 --set patience=20 ${4:+--set $4} --out "$1"' $PY $P20
$PY benchmarks/seed_runs.py compare fusion sasrec --out $P20
# 6c. Session 6: reduce-on-plateau learning rate for both models (seeds 0-1; worse on valid, not adopted).
for s in 0 1; do for m in fusion sasrec; do
  OMP_NUM_THREADS=1 $PY benchmarks/seed_runs.py fit $m $s $L0 --set patience=20 $(off $m) --set lr_decay=0.3 --set decay_after=5 \
    --out $OUT/ml-100k-fusion-decay
done; done
# 7. Cold-start items: 10 % of items held out of training; then the warm-target figure of a
#    fusion model that saw every item (same protocol seed), for the "within 5 %" check.
$R benchmark --dataset ml-100k --models pop,sasrec,fusion $(ls0 pop,sasrec,fusion) --seeds 1 --no-tune --cold-items 0.1 \
  $NT --out $OUT/ml-100k-cold --quiet
$PY benchmarks/cold_warm_check.py --model fusion $L0 --seeds 1 --set trend_days=0 --out $OUT/ml-100k-cold/warm_all_items_seen.json
#    ... 3 seeds with 5 % ID dropout, patience 20 (session 5), against the warm-target figure of
#    row 6b's fusion fits (every item seen; no new fits: their stored per-user metrics).
$R benchmark --dataset ml-100k --models pop,fusion $(ls0 pop,fusion) --seeds 3 --no-tune --cold-items 0.1 \
  --set fusion.id_dropout=0.05 --set fusion.patience=20 $NT --jobs 2 --out $OUT/ml-100k-cold-iddrop05-s3 --quiet
$PY benchmarks/cold_warm_check.py --model fusion $L0 --seeds 3 --from-runs $P20 \
  --out $OUT/ml-100k-cold-iddrop05-s3/warm_all_items_seen.json
#    ... and with ID dropout (20 % of items trained through their text-predicted ID part).
$R benchmark --dataset ml-100k --models fusion $(ls0 fusion) --seeds 1 --no-tune --cold-items 0.1 --set fusion.id_dropout=0.2 \
  $NT --out $OUT/ml-100k-cold-iddrop --quiet
# 8. Ablations of the fusion model, and the gate against the time since the previous event.
$R ablate $L0 --dataset ml-100k --seeds 3 --variants no_text,long_only,short_only,fixed_gate,no_time \
  --set patience=20 --set trend_days=0 --jobs 2 --out $OUT/ml-100k-ablation-p20 --quiet
$R ablate $L0 --dataset ml-100k --split temporal-events --seeds 3 --variants short_only --set patience=20 --set trend_days=0 --jobs 2 \
  --out $OUT/ml-100k-temporal-events-ablation --quiet
# 9. Global temporal split and Amazon Beauty (no text, no timestamps) for the fusion model.
$R benchmark --dataset ml-100k --split temporal --models als,sasrec,fusion $(ls0 als,sasrec,fusion) --seeds 3 --no-tune \
  --set als.embedding_size=32 --set als.reg=0.01 $NT --out $OUT/ml-100k-temporal-fusion --quiet
$R benchmark --dataset ml-100k --split temporal-events --models als,sasrec,fusion $(ls0 als,sasrec,fusion) --seeds 5 --no-tune \
  --set als.embedding_size=32 --set als.reg=0.01 --set sasrec.patience=20 --set fusion.patience=20 --jobs 2 \
  $NT --out $OUT/ml-100k-temporal-events-s5 --quiet
#    Beauty, session 6 on the 2-core CPU (~1 hour per fit; minutes on a GPU): fusion at SASRec's learning rate,
#    2 seeds; SASRec seed 0 on the same machine; then the two variants tried against the fusion's stall.
$R benchmark --dataset amazon-beauty --models fusion $(ls0 fusion) --seeds 2 --no-tune --set fusion.learning_rate=1e-3 \
  --set fusion.dropout=0.5 --set fusion.attn_dropout=0.5 --set fusion.batch_size=256 --jobs 2 \
  --out $OUT/beauty-fusion --quiet
BEAUTY="--dataset amazon-beauty --set dropout=0.5 --set attn_dropout=0.5 --set batch_size=256"
$PY benchmarks/seed_runs.py fit sasrec 0 $L0 $BEAUTY --out $OUT/beauty-cpu-sasrec
$PY benchmarks/seed_runs.py fit fusion 0 $L0 $BEAUTY --set learning_rate=1e-3 --set aux_loss=0 --out $OUT/beauty-fusion-noaux
$PY benchmarks/seed_runs.py fit fusion 0 $L0 $BEAUTY --set learning_rate=1e-3 --set long_dropout=0.5 \
  --out $OUT/beauty-fusion-longdrop
#    Session 7: which branch a 30-epoch Beauty fusion model uses (the gate collapses onto the long one),
#    then the long-term branch kept to the events older than the window (long_scope=past).
$R train --model fusion $L0 $BEAUTY --set learning_rate=1e-3 --set epochs=30 --set patience=30 \
  --out models/beauty-fusion-e30 --quiet
$PY benchmarks/fusion_branches.py models/beauty-fusion-e30 --dataset amazon-beauty
$PY benchmarks/seed_runs.py fit fusion 0 $L0 $BEAUTY --set learning_rate=1e-3 --set long_scope=past \
  --out $OUT/beauty-fusion-past
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/beauty-fusion-past --b-out $OUT/beauty-cpu-sasrec
#    ... and the same switch on ml-100k (selected on valid per dataset), with long_dropout at the short branch's rate.
$PY benchmarks/seed_runs.py fit fusion 0 $L0 --set patience=20 --set trend_days=0 --out $OUT/ml-100k-scope/all
$PY benchmarks/seed_runs.py fit fusion 0 $L0 --set patience=20 --set trend_days=0 --set long_scope=past --out $OUT/ml-100k-scope/past
$PY benchmarks/seed_runs.py fit fusion 0 $L0 --set patience=20 --set trend_days=0 --set long_dropout=0.2 --out $OUT/ml-100k-scope/longdrop02
#    Session 8: past scope with an empty long branch giving gate 1 (the short-term vector; measured at
#    commit 3484c35, which still had the short branch's loss there), then with SASRec's input dropout
#    (drop_positions); on ml-100k, future targets and drop_positions over 5 seeds.
$PY benchmarks/seed_runs.py fit fusion 0 $L0 $BEAUTY --set learning_rate=1e-3 --set long_scope=past \
  --out $OUT/beauty-fusion-past-empty
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/beauty-fusion-past-empty --b-out $OUT/beauty-cpu-sasrec
$PY benchmarks/seed_runs.py fit fusion 0 $L0 $BEAUTY --set learning_rate=1e-3 --set long_scope=past \
  --set drop_positions=true --out $OUT/beauty-fusion-past-v2
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/beauty-fusion-past-v2 --b-out $OUT/beauty-cpu-sasrec
$PY benchmarks/seed_runs.py fit fusion 0 $L0 --set patience=20 --set trend_days=0 --set future=2 --out $OUT/ml-100k-future/f2
for s in 0 1 2 3 4; do
  $PY benchmarks/seed_runs.py fit fusion $s $L0 --set patience=20 --set trend_days=0 --set drop_positions=true --out $OUT/ml-100k-fusion-v3
done
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/ml-100k-fusion-v3 --b-out $OUT/ml-100k-fusion-p20-s5
#    Session 9: a second Beauty seed of both models (fusion as in beauty-fusion-past-v2, SASRec as in
#    beauty-cpu-sasrec), then ml-100k with same-timestamp events shuffled each epoch (shuffle_ties).
$PY benchmarks/seed_runs.py fit fusion 1 $L0 $BEAUTY --set learning_rate=1e-3 --set long_scope=past \
  --set drop_positions=true --out $OUT/beauty-fusion-past-v2
$PY benchmarks/seed_runs.py fit sasrec 1 $L0 $BEAUTY --out $OUT/beauty-cpu-sasrec
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/beauty-fusion-past-v2 --b-out $OUT/beauty-cpu-sasrec
for s in 0 1 2 3 4; do
  $PY benchmarks/seed_runs.py fit fusion $s $L0 --set patience=20 --set trend_days=0 --set shuffle_ties=true --out $OUT/ml-100k-ties
done
for s in 0 1 2 3 4; do
  $PY benchmarks/seed_runs.py fit sasrec $s $L0 --set patience=20 --set shuffle_ties=true --out $OUT/ml-100k-ties
done
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/ml-100k-ties   # both shuffled
mv $OUT/ml-100k-ties/compare_fusion_vs_sasrec.md $OUT/ml-100k-ties/compare_fusion_vs_sasrec_both_shuffled.md
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/ml-100k-ties --b-out $OUT/ml-100k-fusion-p20-s5
$PY benchmarks/tie_order.py --runs $OUT/ml-100k-ties $OUT/ml-100k-fusion-p20-s5 | tee $OUT/ml-100k-ties/tie_order.txt
$PY benchmarks/tie_order.py --runs $OUT/ml-100k-ties $OUT/ml-100k-fusion-p20-s5 --model sasrec \
  | tail -4 > $OUT/ml-100k-ties/tie_order_sasrec.txt
#     Session 10: the trend term ("what is popular now").  A late-fusion probe first, then the
#     learned weight (2 seeds, at commit 6824083 where it was the only mode) and the calibrated one (5 seeds;
#     each fit is also stored scored without the term, as fusion_notrend), then the temporal cut.
$PY benchmarks/trend_probe.py sasrec 0 $L0 > $OUT/ml-100k-trend-probe/sasrec-seed0.txt
$PY benchmarks/trend_probe.py fusion 0 $L0 > $OUT/ml-100k-trend-probe/fusion-seed0.txt
$PY benchmarks/trend_probe.py fusion 1 $L0 > $OUT/ml-100k-trend-probe/fusion-seed1.txt
$PY benchmarks/trend_probe.py fusion 0 $L0 --set embedding_size=128 > $OUT/ml-100k-trend-probe/fusion-seed0-embedding128.txt
for s in 0 1; do
  $PY benchmarks/seed_runs.py fit fusion $s $L0 --set patience=20 --set trend_days=30 --set trend_mode=learned \
    --out $OUT/ml-100k-trend-learned
done
for s in 0 1 2 3 4; do
  $PY benchmarks/seed_runs.py fit fusion $s $L0 --set patience=20 --set trend_days=30 --out $OUT/ml-100k-trend
done
for s in 0 1 2 3 4; do
  $PY benchmarks/seed_runs.py fit sasrec $s $L0 --set patience=20 --out $OUT/ml-100k-trend   # the same machine's SASRec
done
$PY benchmarks/seed_runs.py compare fusion fusion_notrend --out $OUT/ml-100k-trend
$PY benchmarks/seed_runs.py compare fusion_notrend sasrec --out $OUT/ml-100k-trend
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/ml-100k-trend --b-out $OUT/ml-100k-fusion-p20-s5
mv $OUT/ml-100k-trend/compare_fusion_vs_sasrec.md $OUT/ml-100k-trend/compare_fusion_vs_sasrec_session5.md
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/ml-100k-trend
for s in 0 1; do
  $PY benchmarks/seed_runs.py fit fusion $s $L0 --split temporal-events --set patience=20 --set trend_days=30 \
    --out $OUT/ml-100k-temporal-events-trend
done
$PY benchmarks/seed_runs.py compare fusion fusion_notrend --out $OUT/ml-100k-temporal-events-trend
#     Session 11: other windows, pairs of windows, a weight per user group and a newness bonus, on the
#     same fits (scores kept in /tmp, reused); then the trend with drop_positions (5 seeds) and the temporal
#     cut's seeds 2-4 with SASRec beside them.
P=benchmarks/results/ml-100k-trend-probe
for s in 0 1; do
  $PY benchmarks/trend_probe.py fusion $s $L0 --set precision=fp32 --windows 0.0417,0.25,1,3,7,30 --bucketed --pairs \
    --scores /tmp/trend-probe-fusion$s.npz > $P/fusion-seed$s-windows.txt
  $PY benchmarks/trend_probe.py fusion $s $L0 --set precision=fp32 --windows 30 --bucketed --by gap --by length --newness \
    --scores /tmp/trend-probe-fusion$s.npz | grep -v "^window 30d alpha [0-9.]*:" > $P/fusion-seed$s-by.txt
done
for s in 0 1; do  # stopped after two seeds: behind on valid (the selection criterion)
  $PY benchmarks/seed_runs.py fit fusion $s $L0 --set patience=20 --set trend_days=30 --set drop_positions=true \
    --set precision=fp32 --out $OUT/ml-100k-trend-droppos
done
$PY benchmarks/seed_runs.py compare fusion fusion --out $OUT/ml-100k-trend-droppos --b-out $OUT/ml-100k-trend
for s in 2 3 4; do
  $PY benchmarks/seed_runs.py fit fusion $s $L0 --split temporal-events --set patience=20 --set trend_days=30 \
    --set precision=fp32 --out $OUT/ml-100k-temporal-events-trend
done
for s in 0 1 2 3 4; do
  $PY benchmarks/seed_runs.py fit sasrec $s $L0 --split temporal-events --set patience=20 --set precision=fp32 \
    --out $OUT/ml-100k-temporal-events-trend
done
$PY benchmarks/seed_runs.py compare fusion fusion_notrend --out $OUT/ml-100k-temporal-events-trend
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/ml-100k-temporal-events-trend
$PY benchmarks/seed_runs.py fit fusion 0 $L0 --set patience=20 --set average_top=5 --set precision=fp32 \
  --out $OUT/ml-100k-trend-soup   # greedy weight averaging: kept only the best epoch (fit_info.soup)
#     Cold-start items and the ablation with the trend term (run at commit 6efdb53, where it was the
#     default; the cold run with zero-filled unseen items at commit 04bf32d, into ml-100k-cold-trend-zerofill).
$R benchmark --dataset ml-100k --models pop,fusion $(ls0 pop,fusion) --seeds 3 --no-tune --cold-items 0.1 --set fusion.id_dropout=0.05 \
  --set fusion.trend_days=30 --set fusion.patience=20 --set fusion.precision=fp32 --out $OUT/ml-100k-cold-trend --quiet
$PY benchmarks/cold_warm_check.py --model fusion $L0 --seeds 3 --from-runs $OUT/ml-100k-trend \
  --out $OUT/ml-100k-cold-trend/warm_all_items_seen.json
$R ablate $L0 --dataset ml-100k --seeds 3 --variants no_text,long_only,short_only,fixed_gate,no_time --set patience=20 \
  --set trend_days=30 --set precision=fp32 --jobs 2 --out $OUT/ml-100k-ablation-trend --quiet
# 10. Speed: the chunked catalogue softmax, epoch times, and the service under load with and
#     without the user-vector cache (model: seed 0 of row 6, saved under models/bench/fusion).
$PY benchmarks/ce_speed.py
$PY benchmarks/epoch_time.py sasrec $L0
$PY benchmarks/epoch_time.py fusion $L0
$PY benchmarks/serve_load.py --model models/bench/fusion --seconds 10 --out $OUT/serve-load-cache
$PY benchmarks/serve_load.py --model models/bench/fusion --seconds 10 --user-cache 0 --out $OUT/serve-load-nocache
#     Session 5 (repeat requests answered on the event loop): the demo's fusion model, 3 runs each.
for r in 1 2 3; do
  $PY benchmarks/serve_load.py --model models/demo/fusion --seconds 10 --out $OUT/serve-load-s5/cache-$r
  $PY benchmarks/serve_load.py --model models/demo/fusion --seconds 10 --user-cache 0 --out $OUT/serve-load-s5/nocache-$r
done
# 14. Session 13.  Trend vs SASRec, seeds 5-9 (pre-registered ten-seed comparison), and the cold-start fill.
#     Since session 13 the trend term is the fusion default; the ml-100k rows above that ran without it
#     turn it off ($NT, off, --set trend_days=0; trend_probe.py fits the fusion model without it itself).
for s in 5 6 7 8 9; do
  $PY benchmarks/seed_runs.py fit fusion $s $L0 --set patience=20 --set trend_days=30 --set precision=fp32 --out $OUT/ml-100k-trend
  $PY benchmarks/seed_runs.py fit sasrec $s $L0 --set patience=20 --set precision=fp32 --out $OUT/ml-100k-trend
done
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/ml-100k-trend
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/ml-100k-trend --seeds 5-9
$PY benchmarks/seed_runs.py compare fusion fusion_notrend --out $OUT/ml-100k-trend
$PY benchmarks/gap_slices.py fusion sasrec --runs $OUT/ml-100k-trend > $OUT/ml-100k-trend/gap_slices_test.md
$PY benchmarks/gap_slices.py fusion sasrec --runs $OUT/ml-100k-trend --valid > $OUT/ml-100k-trend/gap_slices_valid_seeds5-9.md
mkdir -p $OUT/ml-100k-cold-trend-fill
for s in 0 1 2; do
  $PY benchmarks/trend_probe.py fusion $s $L0 --set precision=fp32 --set id_dropout=0.05 --windows 30 --cold-items 0.1 \
    --fill text,mean,event,zero > $OUT/ml-100k-cold-trend-fill/fusion-seed$s.txt
done
$PY benchmarks/seed_runs.py fit fusion 2 $L0 --dataset amazon-beauty --set dropout=0.5 --set attn_dropout=0.5 --set batch_size=256 \
  --set learning_rate=1e-3 --set long_scope=past --set drop_positions=true --set precision=fp32 --out $OUT/beauty-fusion-past-v2
# 15. Session 14.  Cold-start items with the trend default, Beauty SASRec seed 2 (CPU), the window check
#     (rules in the results READMEs), and the service with the term on and off.
$R benchmark --dataset ml-100k --models pop,fusion $(ls0 pop,fusion) --seeds 3 --no-tune --cold-items 0.1 --set fusion.id_dropout=0.05 \
  --set fusion.patience=20 --set fusion.precision=fp32 --out $OUT/ml-100k-cold-trend-event --quiet
$PY benchmarks/cold_warm_check.py --model fusion $L0 --seeds 3 --from-runs $OUT/ml-100k-trend \
  --out $OUT/ml-100k-cold-trend-event/warm_all_items_seen.json
$PY benchmarks/seed_runs.py fit sasrec 2 $L0 --dataset amazon-beauty --set dropout=0.5 --set attn_dropout=0.5 --set batch_size=256 \
  --set precision=fp32 --out $OUT/beauty-cpu-sasrec
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/beauty-fusion-past-v2 --b-out $OUT/beauty-cpu-sasrec
for s in 0 1; do
  $PY benchmarks/seed_runs.py fit sasrec $s $L0 --set patience=20 --set max_len=100 --set precision=fp32 --out $OUT/ml-100k-maxlen100
  $PY benchmarks/seed_runs.py fit fusion $s $L0 --set patience=20 --set max_len=25 --set precision=fp32 --out $OUT/ml-100k-maxlen25
done
$PY benchmarks/seed_runs.py fit fusion 0 $L0 --set patience=20 --set max_len=100 --set precision=fp32 --out $OUT/ml-100k-maxlen100
for s in 0 1; do
  $PY benchmarks/seed_runs.py fit fusion $s $L0 --set patience=20 --set max_len=25 --set dropout=0.3 --set attn_dropout=0.3 \
    --set precision=fp32 --out $OUT/ml-100k-w25-do03
done
for s in 0 1; do for m in fusion sasrec; do
  $PY benchmarks/seed_runs.py fit $m $s $L0 --set patience=20 --set dropout=0.3 --set attn_dropout=0.3 --set precision=fp32 \
    --out $OUT/ml-100k-dropout03
done; done
$R train --dataset ml-100k --model fusion $L0 --out models/notrend-s14/fusion --set trend_days=0 --set max_seconds=270 --quiet
for r in 1 2; do   # models/demo/fusion: the model make demo trains
  $PY benchmarks/serve_load.py --model models/demo/fusion --seconds 10 --out $OUT/serve-load-s14/cache-$r
  $PY benchmarks/serve_load.py --model models/demo/fusion --seconds 10 --user-cache 0 --out $OUT/serve-load-s14/nocache-$r
  $PY benchmarks/serve_load.py --model models/notrend-s14/fusion --seconds 10 --out $OUT/serve-load-s14/notrend-cache-$r
done
# 16. Session 15.  The equal-budget fusion/SASRec search ran on one H200 (it needs a GPU; the carried wheels and
#     data are in benchmarks/results/ml-100k-search/README.md): skipped without one.  Label smoothing 0.1 on
#     the CPU (seeds 0-1, the valid-only rule in ml-100k-labelsmooth/decision.md).
if $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  $PY benchmarks/gpu_search.py --out $OUT/ml-100k-search/h200-run1 --workers 14 --deadline 490
else
  echo "16: no GPU, the search (gpu_search.py) is skipped"
fi
for s in 0 1; do for m in fusion sasrec; do
  $PY benchmarks/seed_runs.py fit $m $s --set patience=20 --set label_smoothing=0.1 --set precision=fp32 \
    --out $OUT/ml-100k-labelsmooth
done; done
for s in 2 3 4; do for m in fusion sasrec; do
  $PY benchmarks/seed_runs.py fit $m $s --set patience=20 --set label_smoothing=0.1 --set precision=fp32 \
    --out $OUT/ml-100k-labelsmooth
done; done
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/ml-100k-labelsmooth
for m in fusion sasrec; do
  $PY benchmarks/seed_runs.py compare $m $m --out $OUT/ml-100k-labelsmooth --b-out $OUT/ml-100k-trend --seeds 0-4
done
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/ml-100k-trend --b-out $OUT/ml-100k-labelsmooth --seeds 0-4
mv $OUT/ml-100k-trend/compare_fusion_vs_sasrec_seeds0-4.md $OUT/ml-100k-labelsmooth/compare_fusion_nols_vs_sasrec_ls.md
# Fusion to its best epoch with the new defaults (2 threads, quiet machine), and cold-start items with them.
$PY benchmarks/seed_runs.py fit fusion 0 --out $OUT/ml-100k-fusion-speed-s15
$R benchmark --dataset ml-100k --models pop,fusion --seeds 3 --no-tune --cold-items 0.1 --set fusion.id_dropout=0.05 \
  --set fusion.patience=20 --set fusion.precision=fp32 --jobs 2 --out $OUT/ml-100k-cold-ls --quiet
$PY benchmarks/cold_warm_check.py --model fusion --seeds 3 --from-runs $OUT/ml-100k-labelsmooth \
  --out $OUT/ml-100k-cold-ls/warm_all_items_seen.json
# SASRec time to best epoch with label smoothing on (its default now), 2 threads, quiet machine.
$PY benchmarks/sasrec_speed.py --seeds 3 --out $OUT/sasrec_speed_ls.json | tee $OUT/sasrec_speed_ls.txt
# Label smoothing on the fused loss only (rule in ml-100k-ls-fused/decision.md).
for s in 0 1; do
  $PY benchmarks/seed_runs.py fit fusion $s --set patience=20 --set smooth_branches=false --set precision=fp32 \
    --out $OUT/ml-100k-ls-fused
done

# 17. Session 16.  The request-time gap in the short-term state (rules in ml-100k-now-short/decision*.md).
for s in 0 1 2 3 4; do
  $PY benchmarks/seed_runs.py fit fusion $s --set patience=20 --set now_short=true --set precision=fp32 \
    --out $OUT/ml-100k-now-short
done
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/ml-100k-now-short --b-out $OUT/ml-100k-labelsmooth --seeds 0-4
$PY benchmarks/seed_runs.py compare fusion fusion --out $OUT/ml-100k-now-short --b-out $OUT/ml-100k-labelsmooth --seeds 0-4
# The global temporal cut, event by event, with the session-15 defaults (label smoothing 0.1 for both), 5 seeds.
TE=$OUT/ml-100k-temporal-events-ls
for s in 0 1 2 3 4; do echo "fusion $s"; echo "sasrec $s"; done | OMP_NUM_THREADS=1 xargs -P 2 -L 1 \
  sh -c '"$0" benchmarks/seed_runs.py fit "$2" "$3" --split temporal-events --set patience=20 --set precision=fp32 --out "$1"' $PY $TE
$PY benchmarks/seed_runs.py compare fusion sasrec --out $TE
$PY benchmarks/seed_runs.py compare fusion fusion_notrend --out $TE
# Ablations with the session-15 defaults, 3 seeds.
$R ablate --dataset ml-100k --seeds 3 --variants no_text,long_only,short_only,fixed_gate,no_time --set patience=20 \
  --set precision=fp32 --jobs 2 --out $OUT/ml-100k-ablation-ls --quiet
# 18. Session 17.  Candidates on leave-one-out (rules in each folder's decision.md), the learned gate against a
#     fixed one on the temporal cut, and seeds 5-9 of both models at today's defaults.
for s in 0 1; do
  $PY benchmarks/seed_runs.py fit fusion $s --set patience=20 --set long_heads=4 --set precision=fp32 --out $OUT/ml-100k-long-heads
done
$PY benchmarks/seed_runs.py compare fusion fusion --out $OUT/ml-100k-long-heads --b-out $OUT/ml-100k-labelsmooth --seeds 0,1
for s in 0 1 2 3 4 5 6 7 8 9; do
  $PY benchmarks/seed_runs.py fit fusion $s --set patience=20 --set user_emb=true --set precision=fp32 --out $OUT/ml-100k-user-emb
done
$PY benchmarks/seed_runs.py compare fusion fusion --out $OUT/ml-100k-user-emb --b-out $OUT/ml-100k-labelsmooth --seeds 0-4
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/ml-100k-user-emb --b-out $OUT/ml-100k-labelsmooth
for s in 0 1 2 3 4; do
  $PY benchmarks/seed_runs.py fit fusion $s --split temporal-events --set user_emb=true --set patience=20 \
    --set precision=fp32 --out $OUT/ml-100k-temporal-events-user-emb
  $PY benchmarks/seed_runs.py fit fusion $s --split temporal-events --set gate=fixed --set patience=20 \
    --set precision=fp32 --out $OUT/ml-100k-temporal-events-fixedgate
done
$PY benchmarks/seed_runs.py compare fusion fusion --out $OUT/ml-100k-temporal-events-user-emb --b-out $OUT/ml-100k-temporal-events-ls
$PY benchmarks/seed_runs.py compare fusion fusion --out $OUT/ml-100k-temporal-events-ls --b-out $OUT/ml-100k-temporal-events-fixedgate
$PY benchmarks/seed_runs.py compare fusion_notrend fusion_notrend --out $OUT/ml-100k-temporal-events-ls \
  --b-out $OUT/ml-100k-temporal-events-fixedgate
for s in 5 6 7 8 9; do echo "fusion $s"; echo "sasrec $s"; done | OMP_NUM_THREADS=1 xargs -P 2 -L 1 \
  sh -c '"$0" benchmarks/seed_runs.py fit "$2" "$3" --set patience=20 --set precision=fp32 --out "$1"' $PY $OUT/ml-100k-labelsmooth
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/ml-100k-labelsmooth
# 19. Session 18.  The selection split loo-valid5 (five valid events per user), per-user vectors decided on it
#     (rule in ml-100k-loo-valid5/decision.md; adopted), then the new default's time to best epoch (2 threads,
#     quiet machine), cold-start slice, ablation rows (seeds 0-2) and `make demo` from a fresh clone.
V5=$OUT/ml-100k-loo-valid5
for s in 0 1 2 3 4; do
  echo "$s --set user_emb=false --out $V5"; echo "$s --set user_emb=true --out $V5/user-emb"
done | OMP_NUM_THREADS=1 xargs -P 2 -L 1 sh -c '"$0" benchmarks/seed_runs.py fit fusion "$@" --split loo-valid5 \
  --set patience=20 --set precision=fp32' $PY
$PY benchmarks/seed_runs.py compare fusion fusion --on valid --out $V5/user-emb --b-out $V5
for s in 0 1 2; do
  OMP_NUM_THREADS=1 $PY benchmarks/seed_runs.py fit sasrec $s --split loo-valid5 --set patience=20 --set precision=fp32 --out $V5
done
$PY benchmarks/seed_runs.py compare fusion sasrec --on valid --out $V5 --seeds 0-2
$PY benchmarks/seed_runs.py compare fusion sasrec --on valid --out $V5/user-emb --b-out $V5 --seeds 0-2
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/ml-100k-user-emb --b-out $OUT/ml-100k-labelsmooth --seeds 5-9
$PY benchmarks/seed_runs.py compare fusion sasrec --out $OUT/ml-100k-temporal-events-user-emb --b-out $OUT/ml-100k-temporal-events-ls
$PY benchmarks/seed_runs.py fit fusion 0 --out $OUT/ml-100k-fusion-speed-s18
$R benchmark --dataset ml-100k --models pop,fusion --seeds 3 --no-tune --cold-items 0.1 --set fusion.id_dropout=0.05 \
  --set fusion.patience=20 --set fusion.precision=fp32 --jobs 2 --out $OUT/ml-100k-cold-ue --quiet
$PY benchmarks/cold_warm_check.py --model fusion --seeds 3 --from-runs $OUT/ml-100k-user-emb \
  --out $OUT/ml-100k-cold-ue/warm_all_items_seen.json
AB=$OUT/ml-100k-ablation-ue
for s in 0 1 2; do
  for row in no_text:use_text=false long_only:gate=long short_only:gate=short fixed_gate:gate=fixed no_time:use_time=false; do
    echo "$s --set ${row#*:} --out $AB/${row%%:*}"
  done
done | OMP_NUM_THREADS=1 xargs -P 2 -L 1 sh -c '"$0" benchmarks/seed_runs.py fit fusion "$@" --set patience=20 \
  --set precision=fp32' $PY
for row in no_text long_only short_only fixed_gate no_time; do
  $PY benchmarks/seed_runs.py compare fusion fusion --out $AB/$row --b-out $OUT/ml-100k-user-emb --seeds 0-2
done
# 20. Session 19.  Issue 3 item 1 on five fresh seeds (rule in ml-100k-seeds10-14/decision.md), then users the
#     model never saw: five user folds held out of training, the zero vector against fold-in (rule in
#     ml-100k-cold-users/decision.md), SASRec on the same folds.
S10=$OUT/ml-100k-seeds10-14
for s in 10 11 12 13 14; do echo "fusion $s"; echo "sasrec $s"; done | OMP_NUM_THREADS=1 xargs -P 2 -L 1 \
  sh -c '"$0" benchmarks/seed_runs.py fit "$1" "$2" --set patience=20 --set precision=fp32 --out '"$S10" $PY
$PY benchmarks/seed_runs.py compare fusion sasrec --out $S10
$PY benchmarks/seed_runs.py compare fusion sasrec --out $S10 --a-more $OUT/ml-100k-user-emb --b-more $OUT/ml-100k-labelsmooth
$PY benchmarks/seed_runs.py compare fusion fusion_anon --out $S10
$PY benchmarks/seed_runs.py compare fusion_anon sasrec --out $S10
CU=$OUT/ml-100k-cold-users
for s in 0 1 2 3 4; do
  echo "fusion $s --fold-in 10,30,100"; echo "sasrec $s"
done | OMP_NUM_THREADS=1 xargs -P 2 -L 1 sh -c '"$0" benchmarks/seed_runs.py fit "$@" --split loo-valid5 \
  --cold-users "$2" --set patience=20 --set precision=fp32 --out '"$CU" $PY
for steps in 10 30 100; do
  $PY benchmarks/seed_runs.py compare fusion_foldin$steps fusion --users cold --on valid --out $CU
done
