#!/usr/bin/python3
"""PyTorch side of `npm run bench:infer`: builds a random ViT-B/16 (torchvision), saves it in the
Hugging Face layout for ViT Lens to load, and times torch's own CPU inference on it.

    /usr/bin/python3 bench/torch_infer.py OUT_DIR --threads N

Prints one JSON object on stdout. The weights and an input batch go to OUT_DIR/hf and
OUT_DIR/input.bin, torch's logits for that batch to OUT_DIR/logits.bin.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
from torchvision.models import VisionTransformer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from make_fixtures import hf_config, hf_state, preprocessor_config, randomise, safetensors_bytes, write_json  # noqa: E402


def timed(fn, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs1", type=int, default=20)
    ap.add_argument("--runs8", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    m = VisionTransformer(image_size=224, patch_size=16, num_layers=12, num_heads=12,
                          hidden_dim=768, mlp_dim=3072, num_classes=1000)
    randomise(m, g)
    # randomise() scales q/k/v for a 64-wide fixture model; at width 768 the same scale makes attention
    # one-hot and logits huge. Rescale like a standard (timm) init so the parity check is meaningful.
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("in_proj_weight") or name.endswith("out_proj.weight") or ".mlp." in name and name.endswith("weight"):
                p.mul_(0.02 / p.std())
    m.eval()

    hf_dir = os.path.join(args.out_dir, "hf")
    os.makedirs(hf_dir, exist_ok=True)
    labels = [f"class_{i}" for i in range(1000)]
    write_json(os.path.join(hf_dir, "config.json"), hf_config(m, labels, True))
    write_json(os.path.join(hf_dir, "preprocessor_config.json"), preprocessor_config(224))
    with open(os.path.join(hf_dir, "model.safetensors"), "wb") as f:
        f.write(safetensors_bytes(hf_state(m, True)))

    x8 = torch.randn(8, 3, 224, 224, generator=g)
    x8.numpy().astype("<f4").tofile(os.path.join(args.out_dir, "input.bin"))
    with torch.inference_mode():
        m(x8).numpy().astype("<f4").tofile(os.path.join(args.out_dir, "logits.bin"))
        x1 = x8[:1]
        for _ in range(3):
            m(x1)
        t1 = timed(lambda: m(x1), args.runs1)
        m(x8)
        t8 = timed(lambda: m(x8), args.runs8)
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch1_ms_median": statistics.median(t1) * 1000,
        "batch1_ms_min": min(t1) * 1000,
        "batch8_img_per_s": 8 / statistics.median(t8),
    }))


if __name__ == "__main__":
    main()
