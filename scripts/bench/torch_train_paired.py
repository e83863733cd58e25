"""PyTorch's side of bench/train/paired.ts: training steps (forward, float32 loss, backward, SGD) of the
contract's reference model with the weights stcnet wrote, on the clips stcnet wrote, one step per request,
so that the two sides alternate step by step and a drift of the machine's speed hits both alike.

Usage: python3 torch_train_paired.py WEIGHTS ARCH FRAMES SIZE CLASSES BATCH THREADS CLIPS_F32 AMP(none|bf16)
       then one line per step on stdin ("run"); prints the step's seconds, one line each.
"""
import os
import sys
import time

# As in torch_side.py: no transparent huge pages for NumPy's arrays, which slowed PyTorch's later steps.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import stc_reference as ref  # noqa: E402
from weights import read_safetensors  # noqa: E402

weights, arch = sys.argv[1], sys.argv[2]
frames, size, classes, batch, threads = (int(v) for v in sys.argv[3:8])
clips_file, amp = sys.argv[8], sys.argv[9]
torch.set_num_threads(threads)
model = ref.build(arch, frames=frames, num_classes=classes)
model.load_state_dict(read_safetensors(weights)[0], strict=True)
model.train()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
clips = torch.from_numpy(np.fromfile(clips_file, dtype=np.float32).reshape(batch, 3, frames, size, size)).clone()
labels = torch.tensor([(i * 7) % classes for i in range(batch)], dtype=torch.int64)


def step():
    optimizer.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
        logits = model(clips)
    loss = F.cross_entropy(logits.float(), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


for _ in range(3):
    step()
print("ready", flush=True)
for line in sys.stdin:
    start = time.perf_counter()
    step()
    print(time.perf_counter() - start, flush=True)
