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


paths = {'torch_f32': eager_f32, 'torch_bf16': eager_bf16}
if 'torch_frozen_f32' in config['paths']:
    paths['torch_frozen_f32'] = make_frozen()


def median_rate(fn, batch):
    x = torch.randn(batch, 3, frames, size, size)
    fn(x)  # warm-up (the frozen graph's first runs also specialise)
    fn(x)
    times = []
    for _ in range(config['repeats']):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


results, logits = {}, {}
for name in config['paths']:
    if name not in paths:
        continue
    fn = paths[name]
    logits[name] = fn(check).float().reshape(-1).tolist()
    results[name] = {str(b): median_rate(fn, b) for b in config['batches']}
    print(name, results[name], file=sys.stderr, flush=True)

print(json.dumps({'torch': torch.__version__, 'results': results, 'logits': logits}))
