#!/usr/bin/python3
"""PyTorch peer for `npm run bench:small-data`: torchvision's own VisionTransformer (its own
initialisation) trained from scratch on the first N Fashion-MNIST training images, with the same
recipe as our trainer (AdamW, decay on weight matrices only, 5% warmup + cosine, global-norm clipping),
evaluated on the first M test images. One JSON line per seed: test accuracy, seconds, images/s.

  --init torchvision   torchvision's init (Xavier-uniform MLP, zero biases...), the reference
  --init timm          timm's truncated normal (std .02) everywhere: what our scratch models used before
  --crop-scale S       RandomResizedCrop(scale=(S, 1)) + horizontal flip; 0 = no augmentation; 1 = a flip
                       only (at area 1 no box of another aspect ratio fits, so the crop is the whole image)

Needs Debian's python3-torch and python3-torchvision; run with /usr/bin/python3.
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

if '--threads' in sys.argv:
    n = sys.argv[sys.argv.index('--threads') + 1]
    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'):
        os.environ[var] = n

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision import transforms
from torchvision.models.vision_transformer import VisionTransformer

DIR = '/usr/share/datasets/fashion-mnist'


def read_idx(split, limit):
    with gzip.open(f'{DIR}/{split}-images-idx3-ubyte.gz') as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:limit]
    with gzip.open(f'{DIR}/{split}-labels-idx1-ubyte.gz') as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:limit]
    # Normalised like our preprocessing (rescale 1/255, mean = std = 0.5), grey replicated to RGB.
    x = (torch.from_numpy(x.astype(np.float32)) / 255 - 0.5) / 0.5
    return x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous(), torch.from_numpy(y.astype(np.int64))


def timm_init(model):
    """What our scratch models used before: truncated normal (std .02) for every matrix and the positions."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.MultiheadAttention):
            nn.init.trunc_normal_(m.in_proj_weight, std=0.02)
            nn.init.zeros_(m.in_proj_bias)
    nn.init.trunc_normal_(model.encoder.pos_embedding, std=0.02)
    nn.init.normal_(model.class_token, std=1e-6)
    nn.init.zeros_(model.heads.head.weight)


def lr_at(step, base, warm, total):
    if step < warm:
        return base * (step + 1) / warm
    return 0.5 * base * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))


def run(a, seed, xtr, ytr, xte, yte):
    torch.manual_seed(seed)
    model = VisionTransformer(image_size=28, patch_size=a.patch, num_layers=a.layers, num_heads=a.heads,
                              hidden_dim=a.hidden, mlp_dim=a.mlp, num_classes=10)
    if a.init == 'timm':
        timm_init(model)
    named = list(model.named_parameters())
    decay = [p for n, p in named if p.dim() >= 2 and n.endswith('weight')]
    other = [p for n, p in named if not any(p is q for q in decay)]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=a.weight_decay), dict(params=other, weight_decay=0.0)], lr=a.lr)
    augment = transforms.Compose([transforms.RandomResizedCrop(28, scale=(a.crop_scale, 1.0)), transforms.RandomHorizontalFlip()]) if a.crop_scale > 0 else None
    steps_per_epoch = math.ceil(len(xtr) / a.batch_size)
    total = steps_per_epoch * a.epochs
    warm = math.ceil(0.05 * total)
    step, t0 = 0, time.perf_counter()
    for _ in range(a.epochs):
        model.train()
        order = torch.randperm(len(xtr))
        for b in range(steps_per_epoch):
            idx = order[b * a.batch_size:(b + 1) * a.batch_size]
            x = torch.stack([augment(xtr[i]) for i in idx]) if augment else xtr[idx]
            loss = F.cross_entropy(model(x), ytr[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
            for g in opt.param_groups:
                g['lr'] = lr_at(step, a.lr, warm, total)
            opt.step()
            step += 1
    train_seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        correct = sum((model(xte[i:i + 500]).argmax(1) == yte[i:i + 500]).sum().item() for i in range(0, len(xte), 500))
    return dict(seed=seed, test_acc=correct / len(xte), train_seconds=train_seconds, images_per_sec=len(xtr) * a.epochs / train_seconds, final_loss=loss.item())


def main():
    ap = argparse.ArgumentParser()
    for k, v in dict(hidden=192, layers=12, heads=3, mlp=768, patch=7, epochs=15, batch_size=64, limit=960, test_limit=2000, threads=1).items():
        ap.add_argument('--' + k.replace('_', '-'), type=int, default=v)
    for k, v in dict(lr=1e-3, weight_decay=0.05, clip=1.0, crop_scale=0.0).items():
        ap.add_argument('--' + k.replace('_', '-'), type=float, default=v)
    ap.add_argument('--seeds', default='0')
    ap.add_argument('--init', choices=['torchvision', 'timm'], default='torchvision')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    xtr, ytr = read_idx('train', a.limit)
    xte, yte = read_idx('t10k', a.test_limit)
    for seed in (int(s) for s in a.seeds.split(',')):
        print(json.dumps(dict(run(a, seed, xtr, ytr, xte, yte), init=a.init, crop_scale=a.crop_scale, torch=torch.__version__)), flush=True)


if __name__ == '__main__':
    main()
