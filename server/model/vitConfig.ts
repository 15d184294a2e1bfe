/**
 * The ViT architecture description shared by every model format, the ONNX builder and (later) training.
 *
 * Canonical weight names follow Hugging Face's ViTForImageClassification (`vit.` prefix), because a
 * safetensors folder in that layout is the format we both read and export. Linear weights are stored
 * as (out, in) like PyTorch's nn.Linear.
 */
import * as v from 'valibot';
import { bool, check, int, obj, positive, show } from '../util/validate';
export interface ViTArch {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  mlpSize: number;
  patchSize: number;
  /** [height, width] of the input the position embeddings were trained for. */
  imageSize: [number, number];
  numChannels: number;
  layerNormEps: number;
  qkvBias: boolean;
  numClasses: number;
  /** Width of the optional tanh "pre-logits" layer between the [CLS] features and the head (Google npz, torchvision). */
  preLogitsSize?: number;
}

export const W = {
  clsToken: 'vit.embeddings.cls_token', // [1, 1, D]
  posEmbed: 'vit.embeddings.position_embeddings', // [1, 1 + N, D]
  patchWeight: 'vit.embeddings.patch_embeddings.projection.weight', // [D, C, P, P]
  patchBias: 'vit.embeddings.patch_embeddings.projection.bias', // [D]
  finalNormWeight: 'vit.layernorm.weight',
  finalNormBias: 'vit.layernorm.bias',
  preLogitsWeight: 'pre_logits.dense.weight', // [R, D]  (not in HF; optional)
  preLogitsBias: 'pre_logits.dense.bias',
  headWeight: 'classifier.weight', // [K, D or R]
  headBias: 'classifier.bias',
  layer(i: number) {
    const p = `vit.encoder.layer.${i}.`;
    return {
      norm1Weight: p + 'layernorm_before.weight',
      norm1Bias: p + 'layernorm_before.bias',
      qWeight: p + 'attention.attention.query.weight', // [D, D]
      qBias: p + 'attention.attention.query.bias',
      kWeight: p + 'attention.attention.key.weight',
      kBias: p + 'attention.attention.key.bias',
      vWeight: p + 'attention.attention.value.weight',
      vBias: p + 'attention.attention.value.bias',
      projWeight: p + 'attention.output.dense.weight', // [D, D]
      projBias: p + 'attention.output.dense.bias',
      norm2Weight: p + 'layernorm_after.weight',
      norm2Bias: p + 'layernorm_after.bias',
      fc1Weight: p + 'intermediate.dense.weight', // [M, D]
      fc1Bias: p + 'intermediate.dense.bias',
      fc2Weight: p + 'output.dense.weight', // [D, M]
      fc2Bias: p + 'output.dense.bias',
    };
  },
} as const;

/** Hugging Face `config.json` fields we read (ViTConfig). */
export interface HfViTConfig {
  model_type?: string;
  hidden_size?: number;
  num_hidden_layers?: number;
  num_attention_heads?: number;
  intermediate_size?: number;
  hidden_act?: string;
  layer_norm_eps?: number;
  image_size?: number | [number, number];
  patch_size?: number;
  num_channels?: number;
  qkv_bias?: boolean;
  id2label?: Record<string, string>;
  label2id?: Record<string, number>;
  num_labels?: number;
  /** Non-HF extension (ViT Lens): width of the tanh pre-logits layer when present. */
  pre_logits_size?: number;
}

/** ViTConfig defaults from transformers (google/vit-base-patch16-224). */
export const HF_VIT_DEFAULTS = {
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  layer_norm_eps: 1e-12,
  image_size: 224,
  patch_size: 16,
  num_channels: 3,
  qkv_bias: true,
} as const;

/**
 * Bounds far beyond any published ViT (ViT-22B: width 6144, 48 layers, 48 heads) that still stop a
 * hostile config from making us loop or allocate without end before the weights are even read.
 */
const LIMITS = {
  width: 65_536,
  layers: 1024,
  heads: 1024,
  mlp: 262_144,
  imageSize: 16_384,
  classes: 1_000_000,
} as const;

/** The schema of every `config.json` field we read (all optional: transformers' defaults fill the gaps). */
const HfViTConfigSchema: v.GenericSchema<unknown, HfViTConfig> = obj({
  model_type: v.optional(v.string(i => `must be a string, got ${show(i.input)}`)),
  hidden_size: v.optional(int(1, LIMITS.width)),
  num_hidden_layers: v.optional(int(1, LIMITS.layers)),
  num_attention_heads: v.optional(int(1, LIMITS.heads)),
  intermediate_size: v.optional(int(1, LIMITS.mlp)),
  hidden_act: v.optional(v.string(i => `must be a string, got ${show(i.input)}`)),
  layer_norm_eps: v.optional(positive()),
  image_size: v.optional(
    v.union(
      [int(1, LIMITS.imageSize), v.tuple([int(1, LIMITS.imageSize), int(1, LIMITS.imageSize)])],
      i => `must be an integer or [height, width], got ${show(i.input)}`,
    ),
  ),
  patch_size: v.optional(int(1, LIMITS.imageSize)),
  // The engine and the trainer feed RGB images.
  num_channels: v.optional(
    v.pipe(
      v.number(i => `must be 3 (RGB), got ${show(i.input)}`),
      v.check(
        n => n === 3,
        i => `must be 3 (RGB), got ${show(i.input)}`,
      ),
    ),
  ),
  qkv_bias: v.optional(bool()),
  id2label: v.optional(
    v.pipe(
      v.custom<object>(
        x => typeof x === 'object' && x !== null && !Array.isArray(x),
        i => `must be an object mapping class indices ("0", "1", …) to labels, got ${show(i.input)}`,
      ),
      v.record(
        v.pipe(v.string(), v.regex(/^(0|[1-9]\d{0,6})$/, 'is a key that is not a class index ("0", "1", …)')),
        v.string(i => `must map each class index to a string label, got ${show(i.input)}`),
      ),
    ),
  ),
  num_labels: v.optional(int(1, LIMITS.classes)),
  pre_logits_size: v.optional(int(1, LIMITS.width)),
});

/**
 * The fields of a parsed `config.json` we read, checked (types, integers, ranges), or an error that
 * names the file and the field. Architecture-wide rules are checked by `checkArch` once defaults are in.
 */
export function parseHfConfig(json: unknown, configPath: string): HfViTConfig {
  const r = check(HfViTConfigSchema, json, 'config');
  if (r.ok) return r.value;
  if (r.field === 'config')
    throw new Error(`${configPath}: must be a JSON object, ${r.problem.replace(/^must be an object, /, '')}`);
  throw new Error(`${configPath}: "${r.field}" ${r.problem}`);
}

/** Rules across fields that any ViT must follow, whatever it was read from; `source` names where it came from. */
export function checkArch(arch: ViTArch, source: string, fields = ARCH_FIELDS): void {
  const fail = (message: string) => {
    throw new Error(`${source}: ${message}`);
  };
  if (arch.hiddenSize % arch.numHeads !== 0)
    fail(`${fields.hiddenSize} ${arch.hiddenSize} is not divisible by ${fields.numHeads} ${arch.numHeads}`);
  for (const [i, side] of (['height', 'width'] as const).entries()) {
    const size = arch.imageSize[i];
    if (size % arch.patchSize !== 0)
      fail(`${fields.imageSize} ${side} ${size} is not a multiple of ${fields.patchSize} ${arch.patchSize}`);
  }
  if (!(arch.layerNormEps > 0)) fail(`${fields.layerNormEps} must be > 0, got ${arch.layerNormEps}`);
}

/** How `checkArch` names the fields: config.json's names by default. */
const ARCH_FIELDS = {
  hiddenSize: 'hidden_size',
  numHeads: 'num_attention_heads',
  imageSize: 'image_size',
  patchSize: 'patch_size',
  layerNormEps: 'layer_norm_eps',
};

/** The architecture a checked config describes (see parseHfConfig), with transformers' defaults for missing fields. */
export function archFromHfConfig(cfg: HfViTConfig, numClasses: number, configPath = 'config.json'): ViTArch {
  if (cfg.hidden_act && !/^gelu$/.test(cfg.hidden_act)) {
    throw new Error(`${configPath}: "hidden_act" ${show(cfg.hidden_act)} is not supported (only exact "gelu")`);
  }
  const size = cfg.image_size ?? HF_VIT_DEFAULTS.image_size;
  const arch: ViTArch = {
    hiddenSize: cfg.hidden_size ?? HF_VIT_DEFAULTS.hidden_size,
    numLayers: cfg.num_hidden_layers ?? HF_VIT_DEFAULTS.num_hidden_layers,
    numHeads: cfg.num_attention_heads ?? HF_VIT_DEFAULTS.num_attention_heads,
    mlpSize: cfg.intermediate_size ?? HF_VIT_DEFAULTS.intermediate_size,
    patchSize: cfg.patch_size ?? HF_VIT_DEFAULTS.patch_size,
    imageSize: Array.isArray(size) ? [size[0], size[1]] : [size, size],
    numChannels: cfg.num_channels ?? HF_VIT_DEFAULTS.num_channels,
    layerNormEps: cfg.layer_norm_eps ?? HF_VIT_DEFAULTS.layer_norm_eps,
    qkvBias: cfg.qkv_bias ?? HF_VIT_DEFAULTS.qkv_bias,
    numClasses,
  };
  if (cfg.pre_logits_size) arch.preLogitsSize = cfg.pre_logits_size;
  checkArch(arch, configPath);
  return arch;
}

export function hfConfigFromArch(arch: ViTArch, labels: string[]): HfViTConfig & Record<string, unknown> {
  const id2label: Record<string, string> = {};
  const label2id: Record<string, number> = {};
  labels.forEach((l, i) => {
    id2label[String(i)] = l;
    label2id[l] = i;
  });
  return {
    architectures: ['ViTForImageClassification'],
    model_type: 'vit',
    hidden_size: arch.hiddenSize,
    num_hidden_layers: arch.numLayers,
    num_attention_heads: arch.numHeads,
    intermediate_size: arch.mlpSize,
    hidden_act: 'gelu',
    hidden_dropout_prob: 0,
    attention_probs_dropout_prob: 0,
    layer_norm_eps: arch.layerNormEps,
    image_size: arch.imageSize[0] === arch.imageSize[1] ? arch.imageSize[0] : arch.imageSize,
    patch_size: arch.patchSize,
    num_channels: arch.numChannels,
    qkv_bias: arch.qkvBias,
    id2label,
    label2id,
    ...(arch.preLogitsSize ? { pre_logits_size: arch.preLogitsSize } : {}),
  };
}

/** Check that `weights` holds every tensor `arch` needs, with the right shapes; throws naming the first mismatch. */
export function checkWeights(arch: ViTArch, shapes: (name: string) => number[] | undefined, source: string): void {
  const D = arch.hiddenSize;
  const M = arch.mlpSize;
  const P = arch.patchSize;
  const tokens = 1 + (arch.imageSize[0] / P) * (arch.imageSize[1] / P);
  const want: [string, number[]][] = [
    [W.clsToken, [1, 1, D]],
    [W.posEmbed, [1, tokens, D]],
    [W.patchWeight, [D, arch.numChannels, P, P]],
    [W.patchBias, [D]],
    [W.finalNormWeight, [D]],
    [W.finalNormBias, [D]],
    [W.headWeight, [arch.numClasses, arch.preLogitsSize ?? D]],
    [W.headBias, [arch.numClasses]],
  ];
  if (arch.preLogitsSize) {
    want.push([W.preLogitsWeight, [arch.preLogitsSize, D]], [W.preLogitsBias, [arch.preLogitsSize]]);
  }
  for (let i = 0; i < arch.numLayers; i++) {
    const l = W.layer(i);
    want.push(
      [l.norm1Weight, [D]],
      [l.norm1Bias, [D]],
      [l.qWeight, [D, D]],
      [l.kWeight, [D, D]],
      [l.vWeight, [D, D]],
      [l.projWeight, [D, D]],
      [l.projBias, [D]],
      [l.norm2Weight, [D]],
      [l.norm2Bias, [D]],
      [l.fc1Weight, [M, D]],
      [l.fc1Bias, [M]],
      [l.fc2Weight, [D, M]],
      [l.fc2Bias, [D]],
    );
    if (arch.qkvBias) want.push([l.qBias, [D]], [l.kBias, [D]], [l.vBias, [D]]);
  }
  for (const [name, shape] of want) {
    const got = shapes(name);
    if (!got) throw new Error(`${source}: missing tensor "${name}"`);
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
      throw new Error(`${source}: tensor "${name}" has shape [${got.join(', ')}], expected [${shape.join(', ')}]`);
    }
  }
}
