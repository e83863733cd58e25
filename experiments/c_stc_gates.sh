#!/usr/bin/env bash
# Experiment (c): which channels and time steps the STC gates weight, per class, as pictures. Uses the
# stc_resnet3d_18 of experiment (a), seed 0 (trains it, with (a)'s settings, when (a) has not run).
# One command: experiments/c_stc_gates.sh (SMOKE=1: minutes). Results: $EXP_OUT/c/gates-*.png, gates.txt.
# 30 epochs by default: at 12 (EPOCHS=12) resnet3d_18 reached only 28.6% (6 classes, seed 0), far from trained.
: "${EPOCHS:=30}"
source "$(dirname "$0")/lib.sh"
A="$EXP_OUT/a"
CLASSES=$([ "$SMOKE" = 1 ] && echo 4 || echo 6)
make_data "$A/data" "$CLASSES" plain
[ "$DATA_REMADE" = 0 ] || rm -rf "$A/runs"
run="$A/runs/stc_resnet3d_18-seed0"
say "model: $run"
train_run "$run" "$A/data/videos" --cache "$A/data/cache" --model stc_resnet3d_18 --seed 0
node "$EXP_DIR/gates.mjs" "$run/last.safetensors" "$A/data/videos" "$A/data/cache" "$EXP_OUT/c" "$TEST_CLIPS"
finish "$EXP_OUT/c"
