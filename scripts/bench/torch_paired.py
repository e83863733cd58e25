"""PyTorch's side of bench/infer/paired.ts: frozen TorchScript (trace, freeze, optimize_for_inference) of
the contract's reference model with the weights stcnet wrote, or (PEER autocast) that model in eager mode
under bf16 autocast, timed one forward per request, so that the two sides alternate forward by forward
and a drift of the machine's speed hits both alike.

Usage: python3 torch_paired.py WEIGHTS ARCH FRAMES SIZE CLASSES BATCH THREADS [PEER: frozen|autocast]
       then one line per forward on stdin ("run"); prints the forward's seconds, one line each.
"""
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import stc_reference as ref  # noqa: E402
from weights import read_safetensors  # noqa: E402

weights, arch = sys.argv[1], sys.argv[2]
frames, size, classes, batch, threads = (int(v) for v in sys.argv[3:8])
peer = sys.argv[8] if len(sys.argv) > 8 else "frozen"
torch.set_num_threads(threads)
model = ref.build(arch, frames=frames, num_classes=classes)
tensors, _ = read_safetensors(weights)
model.load_state_dict(tensors, strict=True)
model.eval()
torch.manual_seed(1)
x = torch.randn(batch, 3, frames, size, size)
with torch.no_grad():
    if peer == "autocast":
        def forward(clips):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(clips).float()
    else:
        # Traced at batch 1 and run at batch 1 first, as bench's torch_side does: traced at batch 8, or run at
        # batch 8 first, TorchScript's profiling executor settles on a graph 3–4× slower at batch 8
        # (stc_resnet3d_50, 8×112², 2 threads: 1000–1200 against 343 ms), and the peer is PyTorch's best.
        one = x[:1].clone()
        forward = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, one)))
        for _ in range(3):
            forward(one)
    for _ in range(3):
        forward(x)
    print("ready", flush=True)
    for line in sys.stdin:
        start = time.perf_counter()
        forward(x).numpy()
        print(time.perf_counter() - start, flush=True)
