"""PyTorch's side of `stcnet bench`: one path of the plan in this process, with the weights stcnet
wrote, on the contract's reference model (scripts/reference/stc_reference.py), loaded once and timed
one iteration per request (the protocol of src/bench/serve_side.ts).

Usage: python3 torch_side.py PLAN_JSON PATH     serves the path: {"ready": ...}, then seconds per "run B [W]"
       python3 torch_side.py PLAN_JSON export   writes plan["onnx"] (torch.onnx.export, dynamic batch)
"""
import json
import os
import resource
import sys
import time

# NumPy advises transparent huge pages for its arrays of 4 MiB or more (the clip read below). On the
# machine of BENCHMARKS.md, a process that had one in its heap ran every later PyTorch training step
# 1.3-2x slower (stc_resnet3d_18 bf16 at batch 8: 0.81-1.8 s against 0.73-0.86 s a step), so PyTorch is
# measured without them, in its fastest state. Read by numpy at its import (also torch's).
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import stc_reference as ref  # noqa: E402
from weights import read_safetensors  # noqa: E402

plan = json.load(open(sys.argv[1]))
path = sys.argv[2]
torch.set_num_threads(plan["threads"])
device = plan["device"]
clip = [3, plan["frames"], plan["size"], plan["size"]]


def load_model():
    model = ref.build(plan["arch"], frames=plan["frames"], num_classes=plan["classes"])
    tensors, _ = read_safetensors(plan["weights"])
    model.load_state_dict(tensors, strict=True)
    return model.to(device)


def sync():
    if device == "cuda":
        torch.cuda.synchronize()


def serve(check, batches, warmup, iterate):
    """The bench protocol: warm-up, a ready line, then one timed iteration per "run B [W]" until "end"."""
    for batch in batches:
        for _ in range(warmup):
            iterate(batch)
    sync()
    print(json.dumps({"ready": True, **check}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if words == ["end"]:
            break
        if len(words) not in (2, 3) or words[0] != "run" or int(words[1]) not in batches:
            raise SystemExit(f"torch_side: unexpected request {line!r}")
        for _ in range(int(words[2]) if len(words) == 3 else 0):
            iterate(int(words[1]))
        sync()
        start = time.perf_counter()
        iterate(int(words[1]))
        sync()
        print(time.perf_counter() - start, flush=True)
    print(json.dumps({"peakRssMiB": peak_rss_mib()}), flush=True)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def check_clip():
    return torch.from_numpy(np.fromfile(plan["checkInput"], dtype=np.float32).reshape([1] + clip)).to(device)


def inference(model):
    model.eval()
    if path == "torch_eager_f32":
        def forward(x):
            with torch.inference_mode():
                return model(x)
    elif path == "torch_eager_bf16":
        def forward(x):
            with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16):
                return model(x).float()
    elif path == "torch_frozen_f32":
        # What a PyTorch user ships for CPU inference: trace, freeze, optimize_for_inference
        # (BatchNorm folded, oneDNN-prepacked convolutions).
        with torch.no_grad():
            traced = torch.jit.trace(model, torch.randn([1] + clip, device=device))
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))

        def forward(x):
            with torch.no_grad():
                return frozen(x)
    else:
        raise SystemExit(f"torch_side: unknown path {path}")
    logits = forward(check_clip()).float().reshape(-1).tolist()
    torch.manual_seed(1)
    inputs = {batch: torch.randn([batch] + clip, device=device) for batch in plan["inferBatches"]}
    serve({"logits": logits}, plan["inferBatches"], plan["warmup"], lambda batch: forward(inputs[batch]))


def training(model):
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
    batch = plan["trainBatch"]
    clips = torch.from_numpy(np.fromfile(plan["trainInput"], dtype=np.float32).reshape([batch] + clip)).to(device)
    labels = torch.tensor(json.load(open(plan["trainLabels"])), dtype=torch.int64, device=device)
    bf16 = path == "torch_train_bf16"

    def step(_batch=batch):
        optimizer.zero_grad()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            logits = model(clips)
        loss = F.cross_entropy(logits.float(), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    first_loss = step()  # the first of the warm-up steps
    serve({"firstLoss": first_loss}, [batch], max(0, plan["warmup"] - 1), step)


def export_onnx(model):
    model.eval()
    with torch.no_grad():
        torch.onnx.export(model, torch.randn([1] + clip), plan["onnx"], input_names=["clips"], output_names=["logits"],
                          dynamic_axes={"clips": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17)


model = load_model()
if path == "export":
    export_onnx(model)
    print(json.dumps({"onnx": plan["onnx"]}))
elif path.startswith("torch_train_"):
    training(model)
else:
    inference(model)
