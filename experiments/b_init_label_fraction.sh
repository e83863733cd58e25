#!/usr/bin/env bash
# Experiment (b): does a better initialisation help when labels are few? stc_resnet3d_18 fine-tuned
# with 10% and 100% of the training labels, from random initialisation, from 2D→3D transfer
# (`stcnet transfer`, no labels) and from inflation (`stcnet inflate` of a `stcnet train-2d` teacher),
# 3 seeds each, on `plain` and `varied` scenes (4 direction classes: MoveRight/Left/Up/Down).
# The teacher learns the object's shape from single frames of a separate dataset
# (`stcnet synth --label shape`); transfer sees only the training videos of the target, unlabeled.
# With 10% of the labels, each chosen video is listed ~10× so every run takes about the same number of steps.
# One command: experiments/b_init_label_fraction.sh (SMOKE=1: minutes). Results: $EXP_OUT/b/results.md, .json.
source "$(dirname "$0")/lib.sh"
OUT="$EXP_OUT/b"
CLASSES=4
MODEL=stc_resnet3d_18

# 1. The 2D teacher: the object's shape from single frames of plain scenes. (On varied scenes a
#    single frame does not say which shape moves, among static distractor shapes: teachers trained
#    there memorised the training videos and stayed at chance on held-out ones.) Whole frames
#    (--crop-scales 1): a corner crop can cut the object out.
VIDEOS=$SHAPE_VIDEOS make_data "$OUT/shapes" "$CLASSES" plain --label shape
TEACHER="$OUT/teacher/teacher.safetensors"
TEACHER_SETTINGS="shapes=$(cat "$OUT/shapes/cache/.complete") epochs=$TEACHER_EPOCHS batch=$TEACHER_BATCH width=$WIDTH"
if [ ! -f "$TEACHER" ] || [ "$(cat "$OUT/teacher/.settings" 2>/dev/null)" != "$TEACHER_SETTINGS" ]; then
  # A new teacher: what was made from the old one (inflation, transfer and their fine-tunings) goes too.
  rm -rf "$OUT/teacher" "$OUT/inflated.safetensors" "$OUT"/*/transfer "$OUT"/runs/*/transfer-* "$OUT"/runs/*/inflation-*
  say "train-2d teacher (resnet2d_18 ×$WIDTH on shapes)"
  stcnet train-2d "$OUT/shapes/videos" --cache "$OUT/shapes/cache" --out "$OUT/teacher" --width-multiplier "$WIDTH" \
    --size "$SIZE" --crop-scales 1 --epochs "$TEACHER_EPOCHS" --batch-size "$TEACHER_BATCH" --optimizer adamw --lr 0.002 --workers "$WORKERS" --quiet
  echo "$TEACHER_SETTINGS" > "$OUT/teacher/.settings"
fi
# A teacher at chance would make "transfer" a second random initialisation: stop rather than report that.
TEACHER_ACCURACY=$(node -e 'const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); process.stdout.write(String((s.best ?? s.last ?? {}).valAccuracy ?? 0))' "$OUT/teacher/summary.json")
say "teacher: held-out shape accuracy $TEACHER_ACCURACY (5 shapes, chance 0.2)"
if [ "$SMOKE" != 1 ] && node -e 'process.exit(Number(process.argv[1]) < 0.3 ? 0 : 1)' "$TEACHER_ACCURACY"; then
  echo "experiments: the teacher reached only $TEACHER_ACCURACY on held-out shapes (chance 0.2); more TEACHER_EPOCHS or SHAPE_VIDEOS" >&2
  rm -rf "$OUT/teacher"
  exit 2
fi

# 2. Inflation (the same 3D initialisation for both scenes; fc replaced for the 4 direction classes).
INFLATED="$OUT/inflated.safetensors"
[ -f "$INFLATED" ] || stcnet inflate "$TEACHER" --arch "$MODEL" --frames "$FRAMES" --num-classes "$CLASSES" --out "$INFLATED"

for scene in plain varied; do
  DATA="$OUT/$scene"
  make_data "$DATA" "$CLASSES" "$scene"
  [ "$DATA_REMADE" = 0 ] || rm -rf "$OUT/runs/$scene"
  # 3. Transfer on this scene's training videos, labels ignored.
  node "$EXP_DIR/subset.mjs" unlabeled "$DATA/videos" "$DATA/unlabeled" > /dev/null
  TRANSFER="$DATA/transfer"
  TRANSFER_SETTINGS="$TEACHER_SETTINGS epochs=$TRANSFER_EPOCHS positions=$TRANSFER_POSITIONS batch=$TRANSFER_BATCH lr=0.0005"
  if ! { [ -f "$TRANSFER/summary.json" ] && grep -q '"status": *"completed"' "$TRANSFER/summary.json" &&
         [ "$(cat "$TRANSFER/.settings" 2>/dev/null)" = "$TRANSFER_SETTINGS" ]; }; then
    rm -rf "$TRANSFER" "$OUT/runs/$scene"/transfer-*
    say "transfer ($scene): teacher → $MODEL"
    stcnet transfer "$DATA/videos" --format ucf101 --annotations "$DATA/unlabeled" --cache "$DATA/cache" --teacher "$TEACHER" \
      --model "$MODEL" --frames "$FRAMES" --size "$SIZE" --width-multiplier "$WIDTH" --teacher-frames 4 --positions "$TRANSFER_POSITIONS" \
      --epochs "$TRANSFER_EPOCHS" --batch-size "$TRANSFER_BATCH" --optimizer adamw --lr 0.0005 --schedule cosine --cache-teacher \
      --out "$TRANSFER" --workers "$WORKERS" --quiet
    echo "$TRANSFER_SETTINGS" > "$TRANSFER/.settings"
  fi
  STUDENT="$TRANSFER/best.safetensors"; [ -f "$STUDENT" ] || STUDENT="$TRANSFER/last.safetensors"
  # 4. Fine-tuning: 2 label fractions × 3 initialisations × seeds.
  for percent in 10 100; do
    for seed in $SEEDS; do
      labels=()
      if [ "$percent" != 100 ]; then
        node "$EXP_DIR/subset.mjs" labels "$DATA/videos" "$DATA/labels-$percent-seed$seed" "$percent" "$seed" > /dev/null
        labels=(--annotations "$DATA/labels-$percent-seed$seed")
      fi
      for init in scratch transfer inflation; do
        case $init in
          scratch) from=() ;;
          transfer) from=(--init "$STUDENT") ;;
          inflation) from=(--init "$INFLATED") ;;
        esac
        run="$OUT/runs/$scene/$init-$percent-seed$seed"
        say "fine-tune $scene, $percent% labels, from $init, seed $seed"
        train_run "$run" "$DATA/videos" --cache "$DATA/cache" --model "$MODEL" --seed "$seed" "${labels[@]}" "${from[@]}"
        eval_run "$run" "$DATA"
      done
    done
  done
done
node "$EXP_DIR/summarize.mjs" b "$OUT"
finish "$OUT/results.md"
