#!/usr/bin/python3
"""PyTorch peer for `npm run bench:train`: the same small ViT (pre-LN, exact GELU, [CLS], learned
positions; patch embedding as a strided conv), batch size, AdamW (decay on weight matrices only),
warmup + cosine schedule, global-norm clipping and label smoothing as our trainer, on Fashion-MNIST.
Prints one JSON line: images/s over the training steps only, and test accuracy after each epoch.

Needs Debian's python3-torch; run with /usr/bin/python3.
"""
import argparse
import gzip
import json
import math
import os
import sys
import time


def _threads_from_argv():
    for i, a in enumerate(sys.argv):
        if a == '--threads' and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
        if a.startswith('--threads='):
            return int(a.split('=', 1)[1])
    return 0


# torch.set_num_threads alone leaves OpenMP/BLAS pools sized to the machine (the old bench used 1
# "thread" at ~190% CPU); pin every pool before torch loads so --threads N means N cores.
if _threads_from_argv():
    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'):
        os.environ[var] = str(_threads_from_argv())

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DIR = '/usr/share/datasets/fashion-mnist'


def read_idx(split):
    with gzip.open(f'{DIR}/{split}-images-idx3-ubyte.gz') as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(f'{DIR}/{split}-labels-idx1-ubyte.gz') as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    x = (torch.from_numpy(x.astype(np.float32)) / 255 - 0.5) / 0.5
    return x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous(), torch.from_numpy(y.astype(np.int64))


class Block(nn.Module):
    def __init__(self, d, h, m, eps):
        super().__init__()
        self.h = h
        self.norm1, self.norm2 = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
        self.q, self.k, self.v, self.proj = (nn.Linear(d, d) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, m), nn.Linear(m, d)

    def forward(self, x):
        n, t, d = x.shape
        y = self.norm1(x)
        q, k, v = (l(y).view(n, t, self.h, d // self.h).transpose(1, 2) for l in (self.q, self.k, self.v))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.h), -1)
        x = x + self.proj((a @ v).transpose(1, 2).reshape(n, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, d, layers, h, m, p, image=28, classes=10, eps=1e-6):
        super().__init__()
        self.patch = nn.Conv2d(3, d, p, p)
        t = 1 + (image // p) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.zeros(1, t, d))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(Block(d, h, m, eps) for _ in range(layers))
        self.norm = nn.LayerNorm(d, eps=eps)
        self.head = nn.Linear(d, classes)
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                nn.init.trunc_normal_(mod.weight, std=0.02)
                nn.init.zeros_(mod.bias)
        nn.init.zeros_(self.head.weight)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x[:, 0]))


def lr_at(step, base, warm, total):
    if step < warm:
        return base * (step + 1) / warm
    return 0.5 * base * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))


def vit_b16(a):
    """ViT-B/16 at 224 on random data: a few steps of full fine-tuning, or of the last k blocks +
    norm + head on given tokens (our trainer's last-k trains on cached tokens). One JSON line."""
    model = ViT(768, 12, 12, 3072, 16, image=224, classes=10)
    if a.mode == 'last-k':
        for p in model.parameters():
            p.requires_grad_(False)
        for m in [*model.blocks[12 - a.last_k:], model.norm, model.head]:
            for p in m.parameters():
                p.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)
    y = torch.arange(a.batch_size) % 10
    times = []
    for s in range(a.steps + 1):
        x = torch.rand(a.batch_size, 3, 224, 224) * 2 - 1
        if a.mode == 'last-k':
            with torch.no_grad():
                x = model.patch(x).flatten(2).transpose(1, 2)
                x = torch.cat([model.cls.expand(x.shape[0], -1, -1), x], 1) + model.pos
                for b in model.blocks[:12 - a.last_k]:
                    x = b(x)
        t0 = time.perf_counter()
        if a.mode == 'last-k':
            h = x
            for b in model.blocks[12 - a.last_k:]:
                h = b(h)
            out = model.head(model.norm(h[:, 0]))
        else:
            out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        print(json.dumps(dict(step=s, seconds=dt, loss=loss.item())), flush=True)
        if s:
            times.append(dt)
    print(json.dumps(dict(done=True, images_per_sec=a.batch_size * len(times) / sum(times), threads=torch.get_num_threads())), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--arch', default='small')
    ap.add_argument('--mode', default='full')
    ap.add_argument('--last-k', type=int, default=2)
    ap.add_argument('--steps', type=int, default=2)
    for k, v in dict(hidden=64, layers=6, heads=4, mlp=128, patch=7, epochs=10, batch_size=128, limit=60000, seed=0, threads=0).items():
        ap.add_argument('--' + k.replace('_', '-'), type=int, default=v)
    for k, v in dict(lr=1e-3, weight_decay=0.05, smoothing=0.1, clip=1.0, warmup_fraction=0.05).items():
        ap.add_argument('--' + k.replace('_', '-'), type=float, default=v)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    if a.threads:
        torch.set_num_threads(a.threads)
        torch.set_num_interop_threads(a.threads)
    if a.arch == 'vit-b16':
        return vit_b16(a)
    xtr, ytr = read_idx('train')
    xte, yte = read_idx('t10k')
    xtr, ytr = xtr[:a.limit], ytr[:a.limit]
    model = ViT(a.hidden, a.layers, a.heads, a.mlp, a.patch)
    named = list(model.named_parameters())
    decay = [p for n, p in named if p.dim() >= 2 and n.endswith('weight') and not n.startswith('patch')] + [model.patch.weight]
    other = [p for n, p in named if not any(p is q for q in decay)]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=a.weight_decay), dict(params=other, weight_decay=0.0)], lr=a.lr)
    steps_per_epoch = math.ceil(len(xtr) / a.batch_size)
    total = steps_per_epoch * a.epochs
    warm = math.ceil(a.warmup_fraction * total)
    step, train_seconds, train_cpu, images, accs = 0, 0.0, 0.0, 0, []
    for epoch in range(a.epochs):
        model.train()
        order = torch.randperm(len(xtr))
        t0, c0 = time.perf_counter(), time.process_time()
        for b in range(steps_per_epoch):
            idx = order[b * a.batch_size:(b + 1) * a.batch_size]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx], label_smoothing=a.smoothing)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
            for g in opt.param_groups:
                g['lr'] = lr_at(step, a.lr, warm, total)
            opt.step()
            step += 1
            images += len(idx)
        train_seconds += time.perf_counter() - t0
        train_cpu += time.process_time() - c0
        model.eval()
        with torch.no_grad():
            correct = sum((model(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item() for i in range(0, len(xte), 1000))
        accs.append(correct / len(xte))
        print(json.dumps(dict(epoch=epoch + 1, loss=loss.item(), test_acc=accs[-1], images_per_sec=images / train_seconds)), flush=True)
    print(json.dumps(dict(done=True, images_per_sec=images / train_seconds, test_acc=accs, threads=torch.get_num_threads(),
                     interop_threads=torch.get_num_interop_threads(), cpu_utilization=train_cpu / train_seconds, torch=torch.__version__)), flush=True)


if __name__ == '__main__':
    main()
