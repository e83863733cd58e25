"""PyTorch's side of bench/train/profile: the reference model (scripts/reference/stc_reference.py) trained
with SGD for --warmup steps, then --steps steps under torch.autograd.profiler, written as a Chrome trace to
--trace (the format stcnet's `profile` writes). Prints one JSON line: {"stepSeconds": [...]}."""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "reference"))
from stc_reference import build  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--arch", required=True)
p.add_argument("--frames", type=int, required=True)
p.add_argument("--batch", type=int, required=True)
p.add_argument("--amp", choices=["none", "bf16"], required=True)
p.add_argument("--threads", type=int, required=True)
p.add_argument("--warmup", type=int, required=True)
p.add_argument("--steps", type=int, required=True)
p.add_argument("--trace", required=True)
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
model = build(args.arch, frames=args.frames, num_classes=101).train()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
clips = torch.randn(args.batch, 3, args.frames, 112, 112)
labels = torch.arange(args.batch) % 101


def step():
    optimizer.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.amp == "bf16"):
        logits = model(clips)
    F.cross_entropy(logits.float(), labels).backward()
    optimizer.step()


seconds = []
for _ in range(args.warmup):
    start = time.perf_counter()
    step()
    seconds.append(time.perf_counter() - start)
with torch.autograd.profiler.profile() as prof:
    for _ in range(args.steps):
        step()
prof.export_chrome_trace(args.trace)
print(json.dumps({"stepSeconds": seconds}))
