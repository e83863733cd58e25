"""PyTorch side of bench/infer: the contract's reference model (scripts/fixtures/stc_reference.py) with
stcnet's weights, timed through every inference path a PyTorch user could pick.

Usage: /usr/bin/python3 bench/infer/torch_side.py CONFIG_JSON
CONFIG_JSON names: arch, options (frames, num_classes, ...), weights (safetensors from stcnet), check_input
(raw float32 clip for the logits check), check_shape, threads, repeats, batches, frames, size, paths.
Prints one JSON line: {"torch": version, "results": {path: {batch: clips/s}}, "logits": {path: [...]}}.
"""
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
sys.path.insert(0, os.path.join(ROOT, 'scripts', 'fixtures'))
import stc_reference as ref  # noqa: E402
from weights import read_safetensors  # noqa: E402

config = json.load(open(sys.argv[1]))
torch.set_num_threads(config['threads'])
model = ref.build(config['arch'], **config['options']).eval()
tensors, _ = read_safetensors(config['weights'])
model.load_state_dict(tensors, strict=True)

frames, size = config['frames'], config['size']
check = torch.from_numpy(np.fromfile(config['check_input'], dtype=np.float32).reshape(config['check_shape']))


def eager_f32(x):
    with torch.inference_mode():
        return model(x)


def eager_bf16(x):
    with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16):
        return model(x).float()


def make_frozen():
    """torch.jit.freeze + optimize_for_inference (folds BatchNorm, MKLDNN-prepacked convolutions)."""
    with torch.no_grad():
        example = torch.randn(1, 3, frames, size, size)
        scripted = torch.jit.trace(model, example)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(scripted.eval()))

    def run(x):
        with torch.no_grad():
            return frozen(x)
    return run


available = {'torch_f32': lambda: eager_f32, 'torch_bf16': lambda: eager_bf16, 'torch_frozen_f32': make_frozen}
paths = {name: available[name]() for name in config['paths']}


def median_rates(batch):
    """Clips/s of each path at one batch size, the paths taking turns (one timed forward each per round)."""
    x = torch.randn(batch, 3, frames, size, size)
    times = {name: [] for name in paths}
    for round_ in range(-2, config['repeats']):  # two warm-up rounds (the frozen graph specialises in its first runs)
        for name, fn in paths.items():
            start = time.perf_counter()
            fn(x)
            if round_ >= 0:
                times[name].append(time.perf_counter() - start)
    return {name: batch / statistics.median(t) for name, t in times.items()}


logits = {name: fn(check).float().reshape(-1).tolist() for name, fn in paths.items()}
results = {name: {} for name in paths}
for b in config['batches']:
    rates = median_rates(b)
    for name, rate in rates.items():
        results[name][str(b)] = rate
    print('torch batch', b, rates, file=sys.stderr, flush=True)

print(json.dumps({'torch': torch.__version__, 'results': results, 'logits': logits}))
