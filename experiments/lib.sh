# Shared settings and helpers of the experiment scripts (sourced, not run).
#
# Every script runs the stcnet CLI from this checkout (dist/, built by `npm run build`), writes under
# $EXP_OUT (default runs/experiments, git-ignored), reuses data and runs that are already complete
# (so a stopped script continues where it stopped), and prints its elapsed time.
#
# SMOKE=1 shrinks everything (tiny videos, 1 seed, 2 epochs): it proves the pipeline end to end in a
# few minutes and its numbers mean nothing.

set -euo pipefail

EXP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$EXP_DIR/.." && pwd)"
CLI="$REPO/dist/src/cli/main.js"
[ -f "$CLI" ] || { echo "experiments: $CLI is missing; build first (npm run build)" >&2; exit 2; }
SMOKE="${SMOKE:-0}"
EXP_OUT="${EXP_OUT:-$REPO/runs/experiments$(if [ "$SMOKE" = 1 ]; then echo -smoke; fi)}"
WORKERS="${WORKERS:-1}"
mkdir -p "$EXP_OUT"
EXP_STARTED=$(date +%s)

stcnet() { node "$CLI" "$@"; }

say() { printf '[%s +%ss] %s\n' "$(date +%H:%M:%S)" "$(( $(date +%s) - EXP_STARTED ))" "$*"; }

finish() { say "done in $(( $(date +%s) - EXP_STARTED )) s (results: $1)"; }

# The scales: SMOKE=1 proves the pipeline; the default is what EXPERIMENTS.md reports.
if [ "$SMOKE" = 1 ]; then
  SEEDS="${SEEDS:-0}"
  VIDEOS=6; W=48; H=36; SIZE=32; FRAMES=4; WIDTH=0.125; EPOCHS=2; BATCH=4; TEST_CLIPS=2
  SHAPE_VIDEOS=4; TEACHER_EPOCHS=2; TEACHER_BATCH=4; TRANSFER_BATCH=4; TRANSFER_EPOCHS=1; TRANSFER_POSITIONS=2
else
  SEEDS="${SEEDS:-0 1 2}"
  # EPOCHS may be given (a script may set its own default before sourcing this file).
  VIDEOS=40; W=96; H=72; SIZE=48; FRAMES=8; WIDTH=0.25; EPOCHS="${EPOCHS:-12}"; BATCH=8; TEST_CLIPS=4
  SHAPE_VIDEOS=100; TEACHER_EPOCHS=150; TEACHER_BATCH=32; TRANSFER_BATCH=16; TRANSFER_EPOCHS=20; TRANSFER_POSITIONS=8
fi

# make_data DIR CLASSES SCENE [extra synth flags...]: a synth dataset and its frame cache (DIR/videos, DIR/cache), once.
# Made again when the settings differ from the ones recorded in DIR/cache/.complete; then DATA_REMADE=1,
# and the caller drops the runs trained on the old data.
make_data() {
  local dir=$1 classes=$2 scene=$3; shift 3
  DATA_REMADE=0
  # The settings the data was made with: other settings make it again (and drop what was made from it).
  local settings="classes=$classes videos=$VIDEOS ${W}x$H size=$SIZE scene=$scene $*"
  if [ "$(cat "$dir/cache/.complete" 2>/dev/null)" != "$settings" ]; then
    DATA_REMADE=1
    rm -rf "$dir"
    say "synth $dir ($classes classes × $VIDEOS videos, $scene scenes)"
    # One group per video, as the demo: videos that share a look would let a small net memorise it.
    stcnet synth "$dir/videos" --classes "$classes" --videos "$VIDEOS" --width "$W" --height "$H" --fps 16 \
      --min-duration 1.5 --max-duration 2.5 --noise 3 --shake 1 --scene "$scene" --clips-per-group 1 --seed 100 --quiet "$@"
    stcnet prepare "$dir/videos" --out "$dir/cache" --short-side "$SIZE" --jobs 2 --quiet
    echo "$settings" > "$dir/cache/.complete"
  fi
}

# train_run OUT [stcnet train flags...]: trains unless OUT already completed (summary.json with status completed).
# A completed run made with another number of epochs is refused, never silently mixed into a table.
train_run() {
  local out=$1; shift
  if [ -f "$out/summary.json" ] && grep -q '"status": *"completed"' "$out/summary.json"; then
    local had; had=$(node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).epochs))' "$out/config.json")
    if [ "$had" != "$EPOCHS" ]; then
      echo "experiments: $out was trained for $had epochs, this run asks for $EPOCHS (EPOCHS=$had to keep it, or move it away)" >&2
      exit 2
    fi
    return
  fi
  # A folder that a still-running `stcnet train` holds (say, one left by a script killed with kill -9) is never
  # deleted under it.
  local holder
  holder=$(node -e 'try { const { pid } = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); process.kill(pid, 0); process.stdout.write(String(pid)); } catch {}' "$out/.lock")
  if [ -n "$holder" ]; then
    echo "experiments: $out is being trained by process $holder; wait for it or stop it, then run again" >&2
    exit 2
  fi
  rm -rf "$out"
  stcnet train "$@" --out "$out" --frames "$FRAMES" --size "$SIZE" --width-multiplier "$WIDTH" --batch-size "$BATCH" \
    --epochs "$EPOCHS" --no-flip --crop-scales 1 --optimizer adamw --lr 0.002 --schedule cosine --val-split none \
    --workers "$WORKERS" --quiet
}

# eval_run RUN_DIR DATA_DIR: video accuracy on test1 (K clips per video) into RUN_DIR/eval-test1, with its wall time.
eval_run() {
  local run=$1 data=$2
  if [ -f "$run/eval-test1/report.json" ]; then return; fi
  local t0; t0=$(date +%s.%N)
  stcnet eval "$run/last.safetensors" --data "$data/videos" --cache "$data/cache" --split test1 --clips "$TEST_CLIPS" \
    --out "$run/eval-test1" --workers "$WORKERS" --quiet > /dev/null
  echo "{\"seconds\": $(echo "$(date +%s.%N) - $t0" | bc)}" > "$run/eval-test1/timing.json"
}
