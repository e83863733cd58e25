#!/usr/bin/env bash
# Experiment (a): does STC beat its backbone? stc_resnet3d_18 against resnet3d_18 with the same width,
# schedule and data (6 motion classes of `stcnet synth`, plain scenes), 3 seeds each: video accuracy
# (mean ± std), parameters, training clips/s. One command: experiments/a_stc_vs_backbone.sh
# (SMOKE=1 for a minutes-long check of the pipeline). Results: $EXP_OUT/a/results.md and .json.
# 30 epochs by default: at 12 (EPOCHS=12) resnet3d_18 reached only 28.6% (6 classes, seed 0), far from trained.
: "${EPOCHS:=30}"
source "$(dirname "$0")/lib.sh"
OUT="$EXP_OUT/a"
CLASSES=$([ "$SMOKE" = 1 ] && echo 4 || echo 6)
make_data "$OUT/data" "$CLASSES" plain
[ "$DATA_REMADE" = 0 ] || rm -rf "$OUT/runs"
for model in resnet3d_18 stc_resnet3d_18; do
  for seed in $SEEDS; do
    run="$OUT/runs/$model-seed$seed"
    say "train $model seed $seed"
    train_run "$run" "$OUT/data/videos" --cache "$OUT/data/cache" --model "$model" --seed "$seed"
    eval_run "$run" "$OUT/data"
  done
  # Inference clips/s once per model (the weights do not change the cost).
  first="$OUT/runs/$model-seed${SEEDS%% *}"
  [ -f "$first/throughput.json" ] || node "$EXP_DIR/throughput.mjs" "$first/last.safetensors" "$first/throughput.json" 8
done
node "$EXP_DIR/summarize.mjs" a "$OUT"
finish "$OUT/results.md"
