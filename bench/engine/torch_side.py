"""PyTorch side of bench/engine: the same work as engine.ts, timed the same way (fastest of N runs).

Usage: /usr/bin/python3 bench/engine/torch_side.py THREADS CONV_REPEATS
Prints one JSON line: {"conv3d_fwd_bwd": s, "conv3d_fwd": s, "matmul": s, "chain_us": us}.
"""
import json
import sys
import time

import torch

threads = int(sys.argv[1])
conv_repeats = int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)


x = torch.randn(8, 64, 16, 56, 56, requires_grad=True)
w = torch.randn(64, 64, 3, 3, 3, requires_grad=True) * 0.01
w = w.detach().requires_grad_(True)


def conv_fwd_bwd():
    y = torch.nn.functional.conv3d(x, w, None, 1, 1)
    y.sum().backward()
    x.grad = None
    w.grad = None


def conv_fwd():
    with torch.no_grad():
        torch.nn.functional.conv3d(x, w, None, 1, 1)


small_input = torch.randn(1, 64, 8, 28, 28)
small_weight = torch.randn(64, 64, 3, 3, 3) * 0.01


def conv_small_fwd():
    with torch.no_grad():
        torch.nn.functional.conv3d(small_input, small_weight, None, 1, 1)


def min_time(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


a = torch.randn(2048, 2048)
b = torch.randn(2048, 2048)
small = torch.randn(16)


def chain():
    y = small
    for _ in range(1000):
        y = y + 1.0


result = {
    "conv3d_fwd_bwd": min_time(conv_fwd_bwd, conv_repeats),
    "conv3d_fwd": min_time(conv_fwd, conv_repeats),
    "conv3d_small_fwd": min_time(conv_small_fwd, 20, warmup=3),
    "matmul": min_time(lambda: torch.mm(a, b), 10),
    "chain_us": min_time(chain, 100, warmup=5) / 1000 * 1e6,
    "torch": torch.__version__,
}
print(json.dumps(result))
