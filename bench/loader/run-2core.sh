#!/usr/bin/env bash
# Runs the data-side benchmarks pinned to two CPU cores (taskset), for figures comparable with a
# 2-core machine on a bigger one: synth of 1,008 videos (3 s, 160x120), then bench/loader.
set -uo pipefail
cd "$(dirname "$0")/../.."
CORES=${CORES:-0,1}
echo "cpu: $(nproc) cores, pinned to $CORES; $(grep -m1 'model name' /proc/cpuinfo)"
command -v ffmpeg >/dev/null || { echo "ffmpeg missing"; exit 3; }
PY=${PYTHON:-/usr/bin/python3}
$PY -c 'import torch, PIL; print("torch", torch.__version__, "PIL", PIL.__version__)' || echo "python torch/PIL missing"
ldconfig -p | grep -q libturbojpeg || echo "libturbojpeg missing"
TMP=$(mktemp -d)
echo "== synth: 1,008 videos of 3 s at 160x120"
/usr/bin/time -f "synth wall %e s, cpu %U+%S s" taskset -c "$CORES" node dist/src/cli/main.js synth "$TMP/synth" --videos 84 --min-duration 3 --max-duration 3 --jobs 2 --quiet
echo "== prepare (short side 128)"
/usr/bin/time -f "prepare wall %e s" taskset -c "$CORES" node dist/src/cli/main.js prepare "$TMP/synth" --out "$TMP/cache" --jobs 2 --quiet
echo "== bench/loader"
taskset -c "$CORES" node dist/bench/loader/bench.js --cache "$TMP/cache" --workers 2 --batch 8 --clips 1600
rm -rf "$TMP"
