"""PyTorch side of bench/train: the same model (scripts/reference/stc_reference.py, the contract's PyTorch
reference), SGD (momentum 0.9, weight decay 1e-3), cross-entropy, fed by a torch DataLoader over the same
JPEG frame cache (bench/loader/torch_loader.py's dataset); --amp bf16 runs the forward and the loss under
torch.autocast("cpu", bfloat16), as a PyTorch user speeding up CPU training would. Prints one JSON line:
{"clips": N, "seconds": S, "clips_per_s": R, "data_wait": share of the time spent waiting for batches}."""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "loader"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "reference"))
from torch_loader import ClipDataset, worker_init  # noqa: E402
from stc_reference import build  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cache", required=True)
    p.add_argument("--model", default="stc_resnet3d_18")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--classes", type=int, default=12)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--amp", choices=["none", "bf16"], default="none")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    files = []
    with open(os.path.join(a.cache, "index.jsonl")) as f:
        for line in f:
            if line.strip():
                files.append(os.path.join(a.cache, "frames", json.loads(line)["file"]))
    labels = [i % a.classes for i in range(len(files))]
    dataset = ClipDataset(files, a.frames, a.size)
    loader = DataLoader(dataset, batch_size=a.batch, shuffle=True, num_workers=a.workers, drop_last=True,
                        worker_init_fn=worker_init, persistent_workers=a.workers > 0)
    model = build(a.model, frames=a.frames, num_classes=a.classes, widen_factor=a.width)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
    steps = 0
    clips = 0
    waited = 0.0
    start = None
    done = False
    while not done:
        fetch_start = time.perf_counter()
        for x, _ in loader:
            fetched = time.perf_counter()
            y = torch.tensor([labels[(steps * a.batch + i) % len(labels)] for i in range(x.shape[0])])
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.amp == "bf16"):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            loss.item()
            steps += 1
            if steps == a.warmup:
                start = time.perf_counter()
            elif start is not None:
                clips += x.shape[0]
                waited += fetched - fetch_start
                if steps >= a.warmup + a.steps:
                    done = True
                    break
            fetch_start = time.perf_counter()
    seconds = time.perf_counter() - start
    print(json.dumps({"clips": clips, "seconds": seconds, "clips_per_s": clips / seconds, "data_wait": waited / seconds}))


if __name__ == "__main__":
    sys.exit(main())
