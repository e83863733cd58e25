"""PyTorch side of bench/distributed: the same model (scripts/reference/stc_reference.py, the contract's
PyTorch reference) in DistributedDataParallel over Gloo, SGD (momentum 0.9, weight decay 1e-3) on fixed
random batches, one thread per process. Run with torchrun's variables; rank 0 prints one JSON line:
{"step_s": mean seconds per step after warm-up, "world": W}."""
import argparse
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "reference"))
from stc_reference import build  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    for name, default in [("steps", 10), ("warmup", 3), ("batch", 8), ("frames", 8), ("size", 48)]:
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--width", type=float, default=0.25)
    a = p.parse_args()
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = DistributedDataParallel(build("stc_resnet3d_18", frames=a.frames, num_classes=12, widen_factor=a.width))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
    model.train()
    torch.manual_seed(1 + rank)
    x = torch.randn(a.batch, 3, a.frames, a.size, a.size)
    y = torch.randint(0, 12, (a.batch,))
    start = None
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            dist.barrier()
            start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    dist.barrier()
    seconds = time.perf_counter() - start
    if rank == 0:
        print(json.dumps({"step_s": seconds / a.steps, "world": dist.get_world_size()}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
