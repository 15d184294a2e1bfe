/**
 * A Hugging Face ViT folder whose model.safetensors is all zeros and sparse: the header is written and
 * the file is then truncated up to its full size, so a multi-GB checkpoint takes no disk and no time
 * to make. Every weight being zero makes every logit exactly 0, whatever the input.
 */
import { promises as fsp } from 'fs';
import * as path from 'path';
import { W } from '../../server/model/vitConfig';

export interface SparseVitShape {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  mlpSize: number;
  patchSize: number;
  imageSize: number;
  numClasses: number;
}

/** ViT-H/14 (Dosovitskiy et al. 2020, table 1): 632M parameters, 2.53 GB of float32. */
export const VIT_H14: SparseVitShape = {
  hiddenSize: 1280,
  numLayers: 32,
  numHeads: 16,
  mlpSize: 5120,
  patchSize: 14,
  imageSize: 224,
  numClasses: 1000,
};

/** Writes config.json and a sparse zero model.safetensors into `dir`; returns the safetensors' size in bytes. */
export async function writeSparseVitFolder(dir: string, s: SparseVitShape): Promise<number> {
  const D = s.hiddenSize;
  const tokens = 1 + (s.imageSize / s.patchSize) ** 2;
  const shapes: [string, number[]][] = [
    [W.clsToken, [1, 1, D]],
    [W.posEmbed, [1, tokens, D]],
    [W.patchWeight, [D, 3, s.patchSize, s.patchSize]],
    [W.patchBias, [D]],
  ];
  for (let i = 0; i < s.numLayers; i++) {
    const l = W.layer(i);
    shapes.push(
      [l.norm1Weight, [D]],
      [l.norm1Bias, [D]],
      [l.qWeight, [D, D]],
      [l.qBias, [D]],
      [l.kWeight, [D, D]],
      [l.kBias, [D]],
      [l.vWeight, [D, D]],
      [l.vBias, [D]],
      [l.projWeight, [D, D]],
      [l.projBias, [D]],
      [l.norm2Weight, [D]],
      [l.norm2Bias, [D]],
      [l.fc1Weight, [s.mlpSize, D]],
      [l.fc1Bias, [s.mlpSize]],
      [l.fc2Weight, [D, s.mlpSize]],
      [l.fc2Bias, [D]],
    );
  }
  shapes.push(
    [W.finalNormWeight, [D]],
    [W.finalNormBias, [D]],
    [W.headWeight, [s.numClasses, D]],
    [W.headBias, [s.numClasses]],
  );

  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, shape] of shapes) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const file = path.join(dir, 'model.safetensors');
  await fsp.writeFile(file, Buffer.concat([length, Buffer.from(json)]));
  const size = 8 + Buffer.byteLength(json) + offset;
  await fsp.truncate(file, size);

  const config = {
    model_type: 'vit',
    hidden_size: D,
    num_hidden_layers: s.numLayers,
    num_attention_heads: s.numHeads,
    intermediate_size: s.mlpSize,
    hidden_act: 'gelu',
    patch_size: s.patchSize,
    image_size: s.imageSize,
    num_channels: 3,
    layer_norm_eps: 1e-12,
    qkv_bias: true,
    num_labels: s.numClasses,
  };
  await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  return size;
}
