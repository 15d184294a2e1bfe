#!/usr/bin/python3
"""Small ONNX exports whose attention is written the way Hugging Face's ViTSelfAttention (separate
q/k/v Linear, view + permute, matmul / sqrt(d), softmax, dropout, matmul) and timm's Attention (fused
qkv Linear, reshape + permute + unbind, q * scale, softmax) write it, exported by torch.onnx — the
graph shapes our attention tap must recognise in files we did not build.

These are stand-ins: transformers/timm themselves are not installable here (Debian has neither), so
the modules below reproduce those libraries' op sequences; the reference attention probabilities are
what torch computed in the exported module's own forward pass.

    /usr/bin/python3 scripts/make_export_fixtures.py     # writes test/fixtures/exports/
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "exports")
D, H, L, P, IMG, K = 16, 2, 2, 8, 16, 3  # tiny: 5 tokens, files of a few KB


class HfStyleSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.dh = D // H
        self.query, self.key, self.value, self.out = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, D)
        self.dropout = nn.Dropout(0.0)

    def split(self, x):
        return x.view(x.size()[:-1] + (H, self.dh)).permute(0, 2, 1, 3)

    def forward(self, x):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.dh)
        probs = nn.functional.softmax(scores, dim=-1)
        self.probs = probs
        ctx = torch.matmul(self.dropout(probs), v).permute(0, 2, 1, 3).contiguous()
        return self.out(ctx.view(ctx.size()[:-2] + (D,)))


class TimmStyleAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.dh = D // H
        self.scale = self.dh ** -0.5
        self.qkv, self.proj = nn.Linear(D, 3 * D), nn.Linear(D, D)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, H, self.dh).permute(2, 0, 3, 1, 4).unbind(0)
        probs = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        self.probs = probs
        return self.proj((probs @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, attention):
        super().__init__()
        self.norm1, self.attn, self.norm2 = nn.LayerNorm(D), attention(), nn.LayerNorm(D)
        self.mlp = nn.Sequential(nn.Linear(D, 2 * D), nn.GELU(), nn.Linear(2 * D, D))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    def __init__(self, attention, softmax_head=False):
        super().__init__()
        self.patch = nn.Conv2d(3, D, P, P)
        self.cls = nn.Parameter(torch.randn(1, 1, D))
        self.pos = nn.Parameter(torch.randn(1, 1 + (IMG // P) ** 2, D))
        self.blocks = nn.ModuleList([Block(attention) for _ in range(L)])
        self.norm, self.head = nn.LayerNorm(D), nn.Linear(D, K)
        self.softmax_head = softmax_head  # a non-attention Softmax the tap must leave alone

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for b in self.blocks:
            x = b(x)
        y = self.head(self.norm(x)[:, 0])
        return y.softmax(-1) if self.softmax_head else y


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    x = torch.randn(2, 3, IMG, IMG)
    x.numpy().astype("<f4").tofile(os.path.join(OUT, "input.bin"))
    manifest = {"input": {"file": "input.bin", "shape": list(x.shape)}, "heads": H, "layers": L, "tokens": 1 + (IMG // P) ** 2,
                "patch": P, "image_size": IMG, "classes": K, "torch": torch.__version__, "models": {}}
    for name, attention, softmax_head, opset in [
        ("hf-style", HfStyleSelfAttention, False, 14),
        ("timm-style", TimmStyleAttention, False, 14),
        ("timm-style-softmax-head", TimmStyleAttention, True, 11),
    ]:
        m = TinyViT(attention, softmax_head).eval()
        path = os.path.join(OUT, f"{name}.onnx")
        torch.onnx.export(m, x, path, input_names=["pixel_values"], output_names=["logits"], opset_version=opset,
                          dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}})
        with torch.no_grad():
            logits = m(x)
        logits.numpy().astype("<f4").tofile(os.path.join(OUT, f"{name}.logits.bin"))
        attn = torch.stack([b.attn.probs for b in m.blocks])  # [L, N, H, T, T]
        attn.numpy().astype("<f4").tofile(os.path.join(OUT, f"{name}.attention.bin"))
        manifest["models"][name] = {"onnx": f"{name}.onnx", "opset": opset, "softmax_head": softmax_head,
                                    "logits": f"{name}.logits.bin", "attention": f"{name}.attention.bin",
                                    "attention_shape": list(attn.shape)}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
