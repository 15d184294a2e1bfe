#!/usr/bin/python3
"""Reference class-specific relevance maps (Chefer, Gur & Wolf 2021, "Generic Attention-model
Explainability") from PyTorch autograd, for test/unit/relevance.test.ts.

The models are the torchvision VisionTransformer peers of test/fixtures/vit-tiny and vit-prelogits,
rebuilt exactly as scripts/make_fixtures.py builds them (same seed, same generator sequence) and
checked against the logits stored there. torchvision's nn.MultiheadAttention never exposes its
attention probabilities as a tensor in the autograd graph, so each block's attention is computed
explicitly from the module's own weights (in_proj, out_proj); that forward is checked against
torchvision's own forward before any gradient is taken. Then, per image and class c:

    y_c.backward();  R = I;  for each block in order:  R = R + mean_h((A.grad * A).clamp(min=0)) @ R
    map = R[0, 1:] / max(R[0, 1:])   (the patch grid, row-major)

Classes: the top-1 prediction and the lowest-scoring class of each image.
Run with Debian's python3 (python3-torch, python3-torchvision): /usr/bin/python3 scripts/make_relevance_fixtures.py
"""
from __future__ import annotations

import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402


def explicit_forward(m, x: torch.Tensor):
    """torchvision's VisionTransformer.forward in eval mode, with each block's softmaxed attention
    [N, H, T, T] kept (retain_grad) for the backward pass."""
    n = x.shape[0]
    t = m._process_input(x)
    t = torch.cat([m.class_token.expand(n, -1, -1), t], dim=1) + m.encoder.pos_embedding
    _, T, D = t.shape
    probs = []
    for blk in m.encoder.layers:
        mha = blk.self_attention
        H = mha.num_heads
        dh = D // H
        q, k, v = torch.nn.functional.linear(blk.ln_1(t), mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
        heads = lambda y: y.reshape(n, T, H, dh).transpose(1, 2)  # noqa: E731
        a = torch.softmax(heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(dh), dim=-1)
        a.retain_grad()
        probs.append(a)
        t = t + mha.out_proj((a @ heads(v)).transpose(1, 2).reshape(n, T, D))
        t = t + blk.mlp(blk.ln_2(t))
    return m.heads(m.encoder.ln(t)[:, 0]), probs


def relevance(m, x: torch.Tensor, cls: int) -> np.ndarray:
    """Chefer et al.'s map for one image [1, C, H, W] and class `cls`, as float64 [grid_h * grid_w]."""
    logits, probs = explicit_forward(m, x)
    logits[0, cls].backward()
    T = probs[0].shape[-1]
    R = torch.eye(T, dtype=torch.float64)
    for a in probs:
        cam = (a.grad[0] * a[0]).clamp(min=0).mean(dim=0).double()  # clamp per head, then the head mean
        R = R + cam @ R
    row = R[0, 1:]
    return (row / row.max()).detach().numpy()


def maps_for(m, x: torch.Tensor, ref_logits: torch.Tensor, labels: list[str], names: list[str]) -> list[dict]:
    for p in m.parameters():
        p.requires_grad_(True)
    with torch.no_grad():
        plain = m(x)
    mine, _ = explicit_forward(m, x)
    d_peer = (mine.detach() - plain).abs().max().item()
    d_ref = (plain - ref_logits).abs().max().item()
    assert d_peer < 1e-5, f"explicit forward differs from torchvision's by {d_peer}"
    assert d_ref < 1e-5, f"rebuilt model differs from the stored fixture logits by {d_ref}"
    out = []
    for j, name in enumerate(names):
        top1 = int(plain[j].argmax())
        lowest = int(plain[j].argmin())
        classes = []
        for c in (top1, lowest):
            m.zero_grad()
            r = relevance(m, x[j:j + 1], c)
            classes.append({"index": c, "label": labels[c], "role": "top1" if c == top1 else "lowest",
                            "values": [float(np.float32(v)) for v in r]})
        out.append({"image": name, "classes": classes})
    print(f"  explicit vs torchvision forward: {d_peer:.2e}; vs stored logits: {d_ref:.2e}")
    return out


def read_f32(path: str, shape: list[int]) -> torch.Tensor:
    return torch.from_numpy(np.fromfile(path, dtype="<f4").reshape(shape).copy())


def main() -> None:
    torch.manual_seed(mf.SEED)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(mf.SEED)
    # Same generator sequence as make_fixtures.main(): the tiny model first, then the pre-logits one.
    tiny = mf.build_tiny(g)
    pre = mf.build_prelogits(g)

    tiny_dir = os.path.join(mf.FIX, "vit-tiny")
    resized = [np.fromfile(os.path.join(mf.FIX, "photos", mf.stem(n) + ".pil224.bin"), dtype=np.uint8).reshape(224, 224, 3)
               for n in mf.REF_IMAGES]
    x = mf.input_from_pil224(resized)
    pre_dir = os.path.join(mf.FIX, "vit-prelogits")
    S = pre.image_size
    px = read_f32(os.path.join(pre_dir, "input.bin"), [2, 3, S, S])

    for out_dir, m, inp, labels, names, input_note in [
        (tiny_dir, tiny, x, mf.TINY_LABELS, [mf.stem(n) for n in mf.REF_IMAGES],
         "photos/{chelsea,coffee}.pil224.bin normalised as in reference.json's preprocess formula"),
        (pre_dir, pre, px, mf.PRELOGITS_LABELS, ["input.bin image 0", "input.bin image 1"], "input.bin"),
    ]:
        print(out_dir)
        ref_logits = read_f32(os.path.join(out_dir, "logits.bin"), [2, m.num_classes])
        grid = m.image_size // m.patch_size
        doc = {
            "description": "Class relevance (Chefer, Gur & Wolf 2021) of the torchvision peer, from PyTorch autograd",
            "generator": "scripts/make_relevance_fixtures.py",
            "definition": relevance.__doc__.strip() + " R = I; per block in order R = R + mean_h((dA*A).clamp(min=0)) @ R; "
                          "map = R[0, 1:] / max, row-major over the grid",
            "versions": {"torch": torch.__version__},
            "input": input_note,
            "grid": [grid, grid],
            "images": maps_for(m, inp, ref_logits, labels, names),
        }
        mf.write_json(os.path.join(out_dir, "relevance.json"), doc)


if __name__ == "__main__":
    main()
