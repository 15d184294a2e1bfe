#!/usr/bin/python3
"""ONNX exports with their source weights beside them, for reading training INIT weights back out of
ONNX (server/formats/onnxWeights.ts): the Hugging Face-style and timm-style stand-in ViTs of
make_export_fixtures.py, exported by torch.onnx, each with its PyTorch state dict as .npz (torch
names) so a test can compare every recovered tensor with where it came from.

  hf-style-opset14.onnx   separate q/k/v, LayerNorm decomposed (opset 14), random LayerNorm
                          parameters, initializers rewritten to float_data (not raw_data)
  timm-style-opset17.onnx fused qkv, LayerNormalization ops, default (deduplicated) LayerNorm
                          parameters, weights in an external data file (timm-style-opset17.onnx.data)

    /usr/bin/python3 scripts/make_onnx_init_fixtures.py     # writes test/fixtures/onnx-init/
"""
import importlib.util
import json
import os

import numpy as np
import onnx
import torch
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "test", "fixtures", "onnx-init")
spec = importlib.util.spec_from_file_location("export_fixtures", os.path.join(HERE, "make_export_fixtures.py"))
ef = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ef)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(1)
    x = torch.randn(1, 3, ef.IMG, ef.IMG)
    manifest = {"torch": torch.__version__, "onnx": onnx.__version__,
                "arch": {"hiddenSize": ef.D, "numLayers": ef.L, "numHeads": ef.H, "mlpSize": 2 * ef.D, "patchSize": ef.P,
                         "imageSize": [ef.IMG, ef.IMG], "numChannels": 3, "layerNormEps": 1e-5, "qkvBias": True,
                         "numClasses": ef.K}, "models": {}}
    for name, attention, opset, random_norms, layout in [
        ("hf-style-opset14", ef.HfStyleSelfAttention, 14, True, "float_data"),
        ("timm-style-opset17", ef.TimmStyleAttention, 17, False, "external"),
    ]:
        m = ef.TinyViT(attention).eval()
        if random_norms:
            with torch.no_grad():
                for mod in m.modules():
                    if isinstance(mod, torch.nn.LayerNorm):
                        mod.weight.normal_(1, 0.1)
                        mod.bias.normal_(0, 0.1)
        path = os.path.join(OUT, f"{name}.onnx")
        torch.onnx.export(m, x, path, input_names=["pixel_values"], output_names=["logits"], opset_version=opset,
                          dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}})
        proto = onnx.load(path)
        if layout == "float_data":
            for t in proto.graph.initializer:
                if t.data_type == onnx.TensorProto.FLOAT:
                    a = numpy_helper.to_array(t)
                    t.ClearField("raw_data")
                    t.float_data.extend(a.flatten().tolist())
            onnx.save_model(proto, path)
        else:
            onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True,
                            location=f"{name}.onnx.data", size_threshold=0)
        onnx.checker.check_model(path)
        np.savez(os.path.join(OUT, f"{name}.state.npz"),
                 **{k: v.detach().numpy().astype(np.float32) for k, v in m.state_dict().items()})
        manifest["models"][name] = {"onnx": f"{name}.onnx", "state": f"{name}.state.npz", "opset": opset, "layout": layout}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
