#!/usr/bin/python3
"""Reference losses for the training engine's optimizer-parity test (test/unit/trainParity.test.ts).

A small ViT written out in PyTorch with Hugging Face ViTForImageClassification weight names, random
initial weights, four fixed batches (no augmentation, no dropout), then 20 steps each of AdamW and
SGD-momentum with the same schedule (linear warmup + cosine), global-norm clipping, label smoothing
and weight-decay grouping as server/train. Writes test/fixtures/train/parity.npz + parity.json.

Needs Debian's python3-torch: /usr/bin/python3 scripts/make_train_fixtures.py
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'train')
ARCH = dict(hidden=32, layers=2, heads=4, mlp=64, patch=4, image=16, channels=3, classes=5, eps=1e-6)
BATCH, NUM_BATCHES, STEPS = 8, 4, 20
COMMON = dict(warmup=3, total=STEPS, clip=1.0, smoothing=0.1)
RUNS = {
    'adamw': dict(lr=2e-3, weight_decay=0.05, betas=(0.9, 0.999), eps=1e-8),
    'sgd': dict(lr=0.05, weight_decay=1e-3, momentum=0.9),
}


def init_weights(g):
    a = ARCH
    D, M, P, C = a['hidden'], a['mlp'], a['patch'], a['channels']
    T = 1 + (a['image'] // P) ** 2
    w = {}
    def r(*shape, std=0.05):
        return (torch.randn(*shape, generator=g) * std).float()
    w['vit.embeddings.cls_token'] = r(1, 1, D)
    w['vit.embeddings.position_embeddings'] = r(1, T, D)
    w['vit.embeddings.patch_embeddings.projection.weight'] = r(D, C, P, P, std=0.1)
    w['vit.embeddings.patch_embeddings.projection.bias'] = r(D)
    for i in range(a['layers']):
        p = f'vit.encoder.layer.{i}.'
        for n in ['layernorm_before', 'layernorm_after']:
            w[p + n + '.weight'] = 1 + r(D)
            w[p + n + '.bias'] = r(D)
        for n in ['attention.attention.query', 'attention.attention.key', 'attention.attention.value', 'attention.output.dense']:
            w[p + n + '.weight'] = r(D, D, std=0.15)
            w[p + n + '.bias'] = r(D)
        w[p + 'intermediate.dense.weight'] = r(M, D, std=0.15)
        w[p + 'intermediate.dense.bias'] = r(M)
        w[p + 'output.dense.weight'] = r(D, M, std=0.1)
        w[p + 'output.dense.bias'] = r(D)
    w['vit.layernorm.weight'] = 1 + r(D)
    w['vit.layernorm.bias'] = r(D)
    w['classifier.weight'] = r(a['classes'], D, std=0.2)
    w['classifier.bias'] = r(a['classes'])
    return w


def forward(w, x):
    a = ARCH
    D, H, P = a['hidden'], a['heads'], a['patch']
    n = x.shape[0]
    t = F.conv2d(x, w['vit.embeddings.patch_embeddings.projection.weight'], w['vit.embeddings.patch_embeddings.projection.bias'], stride=P)
    t = t.flatten(2).transpose(1, 2)
    t = torch.cat([w['vit.embeddings.cls_token'].expand(n, -1, -1), t], 1) + w['vit.embeddings.position_embeddings']
    T, dh = t.shape[1], D // H
    for i in range(a['layers']):
        p = f'vit.encoder.layer.{i}.'
        lin = lambda v, name: F.linear(v, w[p + name + '.weight'], w[p + name + '.bias'])
        h = F.layer_norm(t, (D,), w[p + 'layernorm_before.weight'], w[p + 'layernorm_before.bias'], a['eps'])
        q, k, v = (lin(h, f'attention.attention.{s}').view(n, T, H, dh).transpose(1, 2) for s in ['query', 'key', 'value'])
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), -1)
        t = t + lin((att @ v).transpose(1, 2).reshape(n, T, D), 'attention.output.dense')
        h = F.layer_norm(t, (D,), w[p + 'layernorm_after.weight'], w[p + 'layernorm_after.bias'], a['eps'])
        t = t + lin(F.gelu(lin(h, 'intermediate.dense')), 'output.dense')
    f = F.layer_norm(t[:, 0], (D,), w['vit.layernorm.weight'], w['vit.layernorm.bias'], a['eps'])
    return F.linear(f, w['classifier.weight'], w['classifier.bias'])


def lr_at(step, base):
    warm, total = COMMON['warmup'], COMMON['total']
    if step < warm:
        return base * (step + 1) / warm
    return 0.5 * base * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))


def train(init, xs, ys, name):
    w = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    decay = [v for k, v in w.items() if v.dim() >= 2 and k.endswith('.weight')]
    other = [v for k, v in w.items() if not (v.dim() >= 2 and k.endswith('.weight'))]
    cfg = RUNS[name]
    groups = [dict(params=decay, weight_decay=cfg['weight_decay']), dict(params=other, weight_decay=0.0)]
    if name == 'adamw':
        opt = torch.optim.AdamW(groups, lr=cfg['lr'], betas=cfg['betas'], eps=cfg['eps'])
    else:
        opt = torch.optim.SGD(groups, lr=cfg['lr'], momentum=cfg['momentum'])
    losses = []
    for step in range(STEPS):
        b = step % NUM_BATCHES
        loss = F.cross_entropy(forward(w, xs[b]), ys[b], label_smoothing=COMMON['smoothing'])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(w.values()), COMMON['clip'])
        for gr in opt.param_groups:
            gr['lr'] = lr_at(step, cfg['lr'])
        opt.step()
        losses.append(loss.item())
    return losses, {k: v.detach() for k, v in w.items()}


def main():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1234)
    init = init_weights(g)
    a = ARCH
    xs = torch.randn(NUM_BATCHES, BATCH, a['channels'], a['image'], a['image'], generator=g).float()
    ys = torch.randint(0, a['classes'], (NUM_BATCHES, BATCH), generator=g)
    arrays = {f'init/{k}': v.numpy() for k, v in init.items()}
    arrays['batches/x'] = xs.numpy()
    arrays['batches/y'] = ys.numpy().astype(np.float32)  # our npz reader is float-only
    meta = dict(arch=ARCH, batch=BATCH, num_batches=NUM_BATCHES, steps=STEPS, common=COMMON, runs={}, torch=torch.__version__)
    for name in RUNS:
        losses, final = train(init, xs, ys, name)
        arrays[f'losses/{name}'] = np.array(losses, dtype=np.float64)
        meta['runs'][name] = dict(RUNS[name], losses=losses)
        # A final weight of each kind, to check the update itself and not only the loss it produces.
        for k in ['classifier.weight', 'vit.encoder.layer.0.attention.attention.query.weight', 'vit.layernorm.bias']:
            arrays[f'final/{name}/{k}'] = final[k].numpy()
    os.makedirs(OUT, exist_ok=True)
    np.savez(os.path.join(OUT, 'parity.npz'), **arrays)
    with open(os.path.join(OUT, 'parity.json'), 'w') as f:
        json.dump(meta, f, indent=1)
    print('wrote', OUT, {n: (m['losses'][0], m['losses'][-1]) for n, m in meta['runs'].items()})


if __name__ == '__main__':
    main()
