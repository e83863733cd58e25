#!/usr/bin/env bash
# Experiment (d): does bf16 autocast training reach float32's accuracy (issue 9: "within 1 point")?
# The demo's data and training configuration, trained once per seed with `--amp bf16` and once with
# `--amp none` (the pair shares weights, data order and augmentation until the first rounding), each
# evaluated on the demo's 120 test videos and on 1,200 further videos of the demo's generator (another
# synth seed, none seen in training). experiments/paired.mjs prints the paired differences with 95%
# t-intervals. One command: experiments/d_bf16_accuracy.sh (SEEDS="0 1 …", default 0–27; SMOKE=1 for a
# minutes-long check of the pipeline). Results: $EXP_OUT/d/results.md and .json.
# Each run uses one thread and the two runs of a seed go side by side: on 2 cores a seed takes ~3 minutes.
: "${EPOCHS:=40}"
: "${SEEDS:=$(seq -s ' ' 0 27)}"
source "$(dirname "$0")/lib.sh"
OUT="$EXP_OUT/d"

if [ "$SMOKE" = 1 ]; then DEMO_VIDEOS=6; BIG_VIDEOS=4; else DEMO_VIDEOS=60; BIG_VIDEOS=200; fi

# The demo's data (synth seed 0) and the further test videos (seed 1), by the demo's generator settings. New
# training data drops every run; new further videos drop only the evaluations on them.
VIDEOS=$DEMO_VIDEOS make_data "$OUT/demo" 6 plain --seed 0
[ "$DATA_REMADE" = 0 ] || rm -rf "$OUT/runs"
VIDEOS=$BIG_VIDEOS make_data "$OUT/big" 6 plain --seed 1
[ "$DATA_REMADE" = 0 ] || rm -rf "$OUT"/runs/*/eval-big
awk '{print $2}' "$OUT/demo/videos/classInd.txt" > "$OUT/classes.txt"

# eval_big RUN: video accuracy on every video of the further set (class folders, the demo's class order).
eval_big() {
  local run=$1
  [ -f "$run/eval-big/report.json" ] && return
  STCNET_THREADS=2 stcnet eval "$run/last.safetensors" --data "$OUT/big/videos" --format folder --split all \
    --class-list "$OUT/classes.txt" --cache "$OUT/big/cache" --clips "$TEST_CLIPS" --out "$run/eval-big" --quiet > /dev/null
}

for seed in $SEEDS; do
  say "train seed $seed: bf16 and float32 side by side, one thread each"
  pids=()
  for mode in bf16 float32; do
    STCNET_THREADS=1 train_run "$OUT/runs/$mode-seed$seed" "$OUT/demo/videos" --cache "$OUT/demo/cache" \
      --model stc_resnet3d_18 --seed "$seed" --split train1 --amp "${mode/float32/none}" > /dev/null &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  for mode in bf16 float32; do
    eval_run "$OUT/runs/$mode-seed$seed" "$OUT/demo"
    eval_big "$OUT/runs/$mode-seed$seed"
  done
done
node "$EXP_DIR/paired.mjs" "$OUT" bf16 float32
finish "$OUT/results.md"
