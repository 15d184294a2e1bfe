#!/usr/bin/python3
"""The peer of `npm run bench:train-torch`: a plain, idiomatic PyTorch training loop (torch only) on the
same images, model size, batch, optimizer and schedule as the `--backend torch` run it is given.

    python3 bench/train_torch_plain.py RUN_DIR [--device cpu|cuda] [--workers N]

It reads that run's RUN_DIR/torch/job.json (architecture, options, labels) and train.u8 (the decoded
uint8 pixels), trains a ViT built from torch.nn (Conv2d patches, nn.TransformerEncoder pre-LN with
GELU, [CLS], learned positions) with AdamW (decay on weight matrices), warmup + cosine, clipping and
label smoothing, bfloat16 autocast on CUDA, and prints one JSON line: images/s over every epoch but the
first, from the end of its first step to the end of its last (a step ends with its loss on the host).
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class ViT(nn.Module):
    def __init__(self, arch):
        super().__init__()
        d, p = arch["hiddenSize"], arch["patchSize"]
        h, w = arch["imageSize"]
        self.patches = nn.Conv2d(3, d, p, stride=p)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, 1 + (h // p) * (w // p), d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, arch["numHeads"], arch["mlpSize"], dropout=0.0, activation="gelu",
                                           layer_norm_eps=arch["layerNormEps"], batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, arch["numLayers"])
        self.norm = nn.LayerNorm(d, eps=arch["layerNormEps"])
        self.head = nn.Linear(d, arch["numClasses"])

    def forward(self, x):
        t = self.patches(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(len(x), -1, -1), t], 1) + self.pos
        return self.head(self.norm(self.encoder(t)[:, 0]))


def steady(ends):
    """Images and seconds of every epoch but the first, from its first step's end to its last's (the
    same rule bench/train_torch.ts applies to our run's step times)."""
    images, seconds = 0, 0.0
    for e in sorted({e for e, _, _ in ends} - {0}):
        steps = [(n, t) for k, n, t in ends if k == e]
        images += sum(n for n, _ in steps[1:])
        seconds += steps[-1][1] - steps[0][1]
    return images, seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=-1)
    args = ap.parse_args()
    job = json.load(open(os.path.join(args.run, "torch", "job.json")))
    cfg, arch, pre = job["config"], job["arch"], job["preprocess"]
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    h, w = arch["imageSize"]
    n = len(job["trainLabels"])
    pixels = torch.from_file(os.path.join(args.run, "torch", "train.u8"), size=n * h * w * 3, dtype=torch.uint8).reshape(n, h, w, 3)
    data = torch.utils.data.TensorDataset(pixels, torch.tensor(job["trainLabels"]))
    workers = args.workers if args.workers >= 0 else (min(4, os.cpu_count() or 1) if cuda else 0)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg["batchSize"], shuffle=True, num_workers=workers,
                                         pin_memory=cuda, generator=torch.Generator().manual_seed(cfg["seed"]))
    mean = torch.tensor(pre["mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(pre["std"], device=device).view(1, 3, 1, 1)

    torch.manual_seed(cfg["seed"])
    model = ViT(arch).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weightDecay"]}, {"params": rest, "weight_decay": 0.0}], lr=cfg["lr"])
    warmup, total = cfg["warmupSteps"], job["totalSteps"]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warmup) / max(1, total - warmup)))))
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)

    ends = []  # (epoch, images, time) after each step
    for epoch in range(cfg["epochs"]):
        for x, y in loader:
            x = (x.to(device, non_blocking=True).permute(0, 3, 1, 2).float() * pre["rescaleFactor"] - mean) / std
            y = y.to(device, non_blocking=True)
            with amp:
                loss = F.cross_entropy(model(x).float(), y, label_smoothing=cfg["labelSmoothing"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg["clipNorm"] > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clipNorm"])
            opt.step()
            sched.step()
            loss.item()
            ends.append((epoch, len(y), time.perf_counter()))
    timed_images, timed_seconds = steady(ends)
    print(json.dumps(dict(imagesPerSec=timed_images / timed_seconds, images=timed_images, seconds=timed_seconds,
                          torch=torch.__version__, device=str(device), workers=workers, threads=torch.get_num_threads())))


if __name__ == "__main__":
    sys.exit(main())
