#!/usr/bin/python3
"""Reference tokens after each encoder block, for last-k training's frozen part
(test/unit/hiddenTokens.test.ts): torchvision's VisionTransformer with random weights (randomised as
in make_fixtures.py), a fixed random batch, and forward hooks on the encoder blocks that record
their outputs. hidden/0 is the input of block 0 (patch embedding + [CLS] + positions), hidden/i the
output of block i-1. Weights are stored in the Hugging Face layout the engine reads (w/<name>).

Writes test/fixtures/train/hidden.npz + hidden.json (byte-for-byte reproducible).
Needs Debian's python3-torch and python3-torchvision: /usr/bin/python3 scripts/make_hidden_fixtures.py
"""
import json
import os
import sys

import numpy as np
import torch
import torchvision
from torchvision.models import VisionTransformer

sys.path.insert(0, os.path.dirname(__file__))
from make_fixtures import hf_state, randomise, write_npz  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'train')
SEED = 20250117
ARCH = dict(image=32, patch=8, layers=3, heads=2, hidden=32, mlp=64, classes=5, eps=1e-6)
BATCH = 3


def main():
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(SEED)
    a = ARCH
    m = VisionTransformer(image_size=a['image'], patch_size=a['patch'], num_layers=a['layers'], num_heads=a['heads'],
                          hidden_dim=a['hidden'], mlp_dim=a['mlp'], num_classes=a['classes'])
    randomise(m, g)
    m.eval()
    x = torch.randn(BATCH, 3, a['image'], a['image'], generator=g)
    hidden = {}
    layers = list(m.encoder.layers)
    layers[0].register_forward_pre_hook(lambda mod, inp: hidden.__setitem__(0, inp[0].detach().clone()))
    for i, layer in enumerate(layers):
        layer.register_forward_hook(lambda mod, inp, out, i=i: hidden.__setitem__(i + 1, out.detach().clone()))
    with torch.no_grad():
        logits = m(x)
    arrays = {f'w/{k}': v for k, v in hf_state(m, qkv_bias=True).items()}
    arrays['x'] = x.numpy()
    for i in range(a['layers'] + 1):
        arrays[f'hidden/{i}'] = hidden[i].numpy()
    arrays['logits'] = logits.numpy()
    write_npz(os.path.join(OUT, 'hidden.npz'), arrays)
    meta = {
        'description': 'torchvision VisionTransformer (random weights): tokens after each encoder block, via forward hooks',
        'generator': 'scripts/make_hidden_fixtures.py',
        'seed': SEED,
        'versions': {'torch': torch.__version__, 'torchvision': torchvision.__version__, 'numpy': np.__version__},
        'arch': a,
        'batch': BATCH,
        'hidden': {str(i): list(hidden[i].shape) for i in hidden},
    }
    with open(os.path.join(OUT, 'hidden.json'), 'w') as f:
        json.dump(meta, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()
