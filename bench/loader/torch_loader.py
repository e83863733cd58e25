"""PyTorch side of bench/loader: the same training clips from the same .stcf JPEG cache, with a
torch.utils.data.DataLoader, PIL decode and torchvision-style transforms (as Hara et al.'s loaders do).
Prints one JSON line: {"clips": N, "seconds": S, "clips_per_s": R}."""
import argparse
import io
import json
import os
import random
import struct
import sys
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

SCALES = [1.0, 2 ** -0.25, 2 ** -0.5, 2 ** -0.75, 0.5]
POSITIONS = ["c", "tl", "tr", "bl", "br"]
MEAN = np.array([110.63666788, 103.16065604, 96.29023126], dtype=np.float32) / 255
STD = np.array([38.7568578, 37.88248729, 40.02898126], dtype=np.float32) / 255


def read_stcf(path):
    with open(path, "rb") as f:
        magic, version, json_len = struct.unpack("<III", f.read(12))
        header = json.loads(f.read(json_len))
        n = header["frames"]
        offsets = struct.unpack("<%dI" % (n + 1), f.read(4 * (n + 1)))
        data = f.read()
    return header, offsets, data


class ClipDataset(Dataset):
    def __init__(self, files, frames, size):
        self.files = files
        self.frames = frames
        self.size = size

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        header, offsets, data = read_stcf(self.files[i])
        n = header["frames"]
        span = self.frames
        start = random.randint(0, max(0, n - span))
        idx = [start + t for t in range(span) if start + t < n]
        while len(idx) < span:
            idx.append(idx[len(idx) % max(1, len(idx))])
        w, h = header["width"], header["height"]
        side = round(min(w, h) * random.choice(SCALES))
        pos = random.choice(POSITIONS)
        x = {"c": (w - side) // 2, "tl": 0, "bl": 0, "tr": w - side, "br": w - side}[pos]
        y = {"c": (h - side) // 2, "tl": 0, "tr": 0, "bl": h - side, "br": h - side}[pos]
        flip = random.random() < 0.5
        out = np.empty((span, self.size, self.size, 3), dtype=np.uint8)
        for t, f in enumerate(idx):
            img = Image.open(io.BytesIO(data[offsets[f]:offsets[f + 1]])).convert("RGB")
            img = img.crop((x, y, x + side, y + side)).resize((self.size, self.size), Image.BILINEAR)
            if flip:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
            out[t] = np.asarray(img)
        clip = torch.from_numpy(out).float().div_(255)
        clip = (clip - torch.from_numpy(MEAN)) / torch.from_numpy(STD)
        return clip.permute(3, 0, 1, 2).contiguous(), 0


def worker_init(_):
    torch.set_num_threads(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cache", required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--clips", type=int, default=960)
    p.add_argument("--warmup", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(1)
    files = []
    with open(os.path.join(a.cache, "index.jsonl")) as f:
        for line in f:
            if line.strip():
                files.append(os.path.join(a.cache, "frames", json.loads(line)["file"]))
    ds = ClipDataset(files, a.frames, a.size)
    loader = DataLoader(ds, batch_size=a.batch, shuffle=True, num_workers=a.workers, drop_last=True,
                        worker_init_fn=worker_init, persistent_workers=a.workers > 0, prefetch_factor=2 if a.workers > 0 else None)
    clips = 0
    seen_batches = 0
    start = None
    while clips < a.clips:
        for x, _ in loader:
            seen_batches += 1
            if seen_batches == a.warmup:
                start = time.perf_counter()
                continue
            if start is not None:
                clips += x.shape[0]
                if clips >= a.clips:
                    break
    seconds = time.perf_counter() - start
    assert tuple(x.shape[1:]) == (3, a.frames, a.size, a.size), x.shape
    print(json.dumps({"clips": clips, "seconds": seconds, "clips_per_s": clips / seconds}))


if __name__ == "__main__":
    sys.exit(main())
