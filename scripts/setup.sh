#!/usr/bin/env bash
# Sets up everything stcnet needs on a fresh Debian machine (run as root): system packages,
# npm dependencies, the native addons and the TypeScript build. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(
  libtorch-dev            # the tensor engine (ATen, autograd)
  libopenblas0-pthread    # a threaded BLAS; without it matmul falls back to the reference BLAS
  ffmpeg                  # video probe, decode and encode
  libturbojpeg0-dev       # JPEG frame cache encode/decode
  fonts-dejavu-core       # text in the PNG charts (plots, confusion matrices)
  libgloo-dev             # headers of the Gloo collectives that libtorch's c10d uses (distributed training)
  libdnnl-dev libideep-dev  # oneDNN's and ideep's headers: fused convolution merges in the inference mode
  chromium                # headless browser: tests of the in-browser (onnxruntime-web) page
  python3-torch           # PyTorch: fixtures and benchmark comparisons
  python3-torchvision
  python3-pil
  g++ make python3 pkg-config
)

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "setup: Node.js 20 or newer is required" >&2
  exit 1
fi

echo "setup: npm dependencies"
# --ignore-scripts: onnxruntime-node's install script fetches optional CUDA parts, which fails offline;
# its CPU binary ships in the package. Our own addons are built below.
npm install --no-audit --no-fund --ignore-scripts >/dev/null

echo "setup: building the native addon and TypeScript"
npm run --silent build
# The `stcnet` command on PATH (a link to this folder).
npm link --no-audit --no-fund --ignore-scripts >/dev/null 2>&1 || echo "setup: npm link failed; use node dist/src/cli/main.js"
echo "setup: done"
