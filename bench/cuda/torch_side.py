"""PyTorch side of bench/cuda: conv3d forward+backward at [8,64,16,56,56] k3 on the GPU."""
import json
import time

import torch

x = torch.randn(8, 64, 16, 56, 56, device="cuda", requires_grad=True)
w = (torch.randn(64, 64, 3, 3, 3, device="cuda") * 0.01).requires_grad_(True)


def step():
    torch.nn.functional.conv3d(x, w, None, 1, 1).sum().backward()
    x.grad = None
    w.grad = None
    x.sum().item()


for _ in range(20):
    step()
start = time.perf_counter()
for _ in range(50):
    step()
print(json.dumps({"seconds": (time.perf_counter() - start) / 50, "torch": torch.__version__}))
