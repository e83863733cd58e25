#!/usr/bin/env bash
# Builds the addon against a CUDA libtorch and runs bench/cuda/cuda_check.js on a GPU machine
# that has PyTorch but no Node.js: a Node binary travels as .cache/gpu/node.xz.
#   LIBTORCH=/path/to/torch  (a folder with include/ and lib/, e.g. a pip torch package)
#   STCNET_TORCH_PYTHON=/path/to/python  (the PyTorch to compare against)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${LIBTORCH:?set LIBTORCH to a CUDA libtorch folder}"
mkdir -p /tmp/stcnet-node
if ! command -v node >/dev/null; then
  xz -dc .cache/gpu/node.xz > /tmp/stcnet-node/node
  chmod +x /tmp/stcnet-node/node
  export PATH=/tmp/stcnet-node:$PATH
fi
node_headers=${NODE_HEADERS:-.cache/gpu/node-include}
mkdir -p native/build/Release
# The pip wheels are built with the new libstdc++ ABI; Debian's libtorch as well.
# c10d's backends (Gloo; NCCL where this libtorch has it) for native/src/distributed.cc.
read -r -a c10d_defines <<< "$(node scripts/libtorch-config.cjs defines | sed 's/[^ ]*/-D&/g')"
read -r -a extra_includes <<< "$(node scripts/libtorch-config.cjs include | sed 's/[^ ]*/-I&/g')"
flags=("${c10d_defines[@]}" "${extra_includes[@]}" -std=c++17 -O2 -fPIC -shared -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DNODE_ADDON_API_CPP_EXCEPTIONS_ALL -Wno-deprecated-declarations
  -I"$node_headers" -Inode_modules/node-addon-api -I"$LIBTORCH/include" -I"$LIBTORCH/include/torch/csrc/api/include")
libs=(-L"$LIBTORCH/lib" -Wl,-rpath,"$LIBTORCH/lib" -Wl,--no-as-needed -ltorch -ltorch_cpu -lc10 -ltorch_cuda -lc10_cuda -Wl,--as-needed)
pids=()
for source in native/src/*.cc; do
  g++ "${flags[@]}" -c "$source" -o "/tmp/stcnet-node/$(basename "$source" .cc).o" & pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
g++ -shared /tmp/stcnet-node/*.o "${libs[@]}" -o native/build/Release/stcnet_torch.node
echo "gpu_check: addon built against $LIBTORCH"
node dist/bench/cuda/cuda_check.js
