#!/usr/bin/python3
"""Reference for test/unit/scratchInit.test.ts: for each tensor our initialiser wrote (raw float32
files listed on stdin as JSON), draw a tensor of the same shape with PyTorch's own initialiser for the
expected distribution and print, per tensor, the two-sample Kolmogorov-Smirnov statistic between
ours and PyTorch's values and the standard deviation and largest magnitude of PyTorch's draw.

Expected distributions: xavier_uniform (torch.nn.init.xavier_uniform_), normal (normal_, std),
trunc_normal (trunc_normal_, std, cut at +-2 std). Run with /usr/bin/python3 (Debian's python3-torch).
"""
import json
import sys

import numpy as np
import torch

torch.manual_seed(0)
out = {}
for t in json.load(sys.stdin):
    ours = np.fromfile(t['file'], dtype=np.float32)
    ref = torch.empty(t['shape'])
    if t['init'] == 'xavier_uniform':
        torch.nn.init.xavier_uniform_(ref)
    elif t['init'] == 'normal':
        torch.nn.init.normal_(ref, std=t['std'])
    elif t['init'] == 'trunc_normal':
        torch.nn.init.trunc_normal_(ref, std=t['std'], a=-2 * t['std'], b=2 * t['std'])
    else:
        raise SystemExit(f"unknown init {t['init']}")
    ref = ref.numpy().ravel()
    a, b = np.sort(ours), np.sort(ref)
    grid = np.concatenate([a, b])
    ks = np.max(np.abs(np.searchsorted(a, grid, side='right') / len(a) - np.searchsorted(b, grid, side='right') / len(b)))
    out[t['name']] = dict(ks=float(ks), n=len(a), m=len(b), torch_std=float(ref.std()), torch_absmax=float(np.abs(ref).max()))
print(json.dumps(out))
