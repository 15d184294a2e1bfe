/**
 * .npz reading and the Google checkpoint mapping, checked against files and expectations that NumPy
 * itself writes (the peer implementation), so the tests do not just agree with our own reading of the format.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import { promises as fsp } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readNpz } from '../../server/formats/npz';
import { loadGoogleNpz } from '../../server/formats/googleNpz';
import { W } from '../../server/model/vitConfig';

const PYTHON = '/usr/bin/python3';
let dir = '';

/** Writes every fixture into argv[1]. Expected values are dumped as float32-rounded C-order lists. */
const MAKE_FIXTURES = String.raw`
import io, json, os, sys, zipfile
import numpy as np
out = sys.argv[1]
rng = np.random.default_rng(0)

arrays = {
    'f4': np.arange(6, dtype='<f4').reshape(2, 3) / 7,
    'f8': np.array([0.1, -1e10, 1e-30, 3.5], dtype='<f8'),
    'f2': np.array([[1, -2.5], [65504, 6e-8]], dtype='<f2'),
    'scalar': np.array(4.25, dtype='<f4'),
    'empty': np.zeros((0, 3), dtype='<f4'),
    'fortran3d': np.asfortranarray(rng.standard_normal((2, 3, 4)).astype('<f4')),
    'fortran_f8': np.asfortranarray(rng.standard_normal((3, 5))),
    'nested/name/x': np.ones((1, 2), dtype='<f4'),
}
assert not arrays['fortran3d'].flags.c_contiguous
expected = {k: {'shape': list(v.shape), 'values': v.astype(np.float32).ravel(order='C').tolist()} for k, v in arrays.items()}
np.savez(os.path.join(out, 'stored.npz'), **arrays)
np.savez_compressed(os.path.join(out, 'deflated.npz'), **arrays)
json.dump(expected, open(os.path.join(out, 'expected.json'), 'w'))

def npy(arr, version=None):
    f = io.BytesIO()
    np.lib.format.write_array(f, arr, version=version)
    return f.getvalue()

with zipfile.ZipFile(os.path.join(out, 'versions.npz'), 'w') as z:
    z.writestr('v1.npy', npy(arrays['f4'], (1, 0)))
    z.writestr('v2.npy', npy(arrays['f4'], (2, 0)))
    z.writestr('v3.npy', npy(arrays['f4'], (3, 0)))
np.savez(os.path.join(out, 'int.npz'), ok=np.ones(2, dtype='<f4'), counts=np.arange(3, dtype='<i4'))
np.savez(os.path.join(out, 'bigendian.npz'), be=np.ones(2, dtype='>f4'))
with zipfile.ZipFile(os.path.join(out, 'badheader.npz'), 'w') as z:
    z.writestr('broken.npy', b'\x93NUMPY\x01\x00\x10\x00' + b"{'descr': '<f4' ".ljust(16))
with zipfile.ZipFile(os.path.join(out, 'truncated.npz'), 'w') as z:
    z.writestr('short.npy', npy(arrays['f4'])[:-4])

# Tiny Google vision_transformer checkpoints: D=8, heads=2 (dh=4), mlp=16, patch=4, 8x8 images, 2 blocks,
# 5 classes, pre-logits 6. The canonical (PyTorch-layout) tensors are computed here, independently.
D, H, dh, M, P, C, L, K, R, side = 8, 2, 4, 16, 4, 3, 2, 5, 6, 2
def r(*shape): return rng.standard_normal(shape).astype('<f4')
def google(qkv_bias, pre_logits):
    g = {'embedding/kernel': r(P, P, C, D), 'embedding/bias': r(D), 'cls': r(1, 1, D),
         'Transformer/posembed_input/pos_embedding': r(1, 1 + side * side, D),
         'Transformer/encoder_norm/scale': r(D), 'Transformer/encoder_norm/bias': r(D),
         'head/kernel': r(R if pre_logits else D, K), 'head/bias': r(K)}
    if pre_logits:
        g['pre_logits/kernel'] = r(D, R); g['pre_logits/bias'] = r(R)
    for i in range(L):
        b = 'Transformer/encoderblock_%d/' % i
        a = b + 'MultiHeadDotProductAttention_1/'
        for n in ['LayerNorm_0', 'LayerNorm_2']:
            g[b + n + '/scale'] = r(D); g[b + n + '/bias'] = r(D)
        for n in ['query', 'key', 'value']:
            g[a + n + '/kernel'] = r(D, H, dh)
            if qkv_bias: g[a + n + '/bias'] = r(H, dh)
        g[a + 'out/kernel'] = r(H, dh, D); g[a + 'out/bias'] = r(D)
        g[b + 'MlpBlock_3/Dense_0/kernel'] = r(D, M); g[b + 'MlpBlock_3/Dense_0/bias'] = r(M)
        g[b + 'MlpBlock_3/Dense_1/kernel'] = r(M, D); g[b + 'MlpBlock_3/Dense_1/bias'] = r(D)
    return g

def canonical(g):
    c = {'vit.embeddings.patch_embeddings.projection.weight': np.transpose(g['embedding/kernel'], (3, 2, 0, 1)),
         'vit.embeddings.patch_embeddings.projection.bias': g['embedding/bias'],
         'vit.embeddings.cls_token': g['cls'],
         'vit.embeddings.position_embeddings': g['Transformer/posembed_input/pos_embedding'],
         'vit.layernorm.weight': g['Transformer/encoder_norm/scale'], 'vit.layernorm.bias': g['Transformer/encoder_norm/bias'],
         'classifier.weight': g['head/kernel'].T, 'classifier.bias': g['head/bias']}
    if 'pre_logits/kernel' in g:
        c['pre_logits.dense.weight'] = g['pre_logits/kernel'].T; c['pre_logits.dense.bias'] = g['pre_logits/bias']
    for i in range(L):
        b = 'Transformer/encoderblock_%d/' % i
        a = b + 'MultiHeadDotProductAttention_1/'
        p = 'vit.encoder.layer.%d.' % i
        c[p + 'layernorm_before.weight'] = g[b + 'LayerNorm_0/scale']; c[p + 'layernorm_before.bias'] = g[b + 'LayerNorm_0/bias']
        c[p + 'layernorm_after.weight'] = g[b + 'LayerNorm_2/scale']; c[p + 'layernorm_after.bias'] = g[b + 'LayerNorm_2/bias']
        for n in ['query', 'key', 'value']:
            c[p + 'attention.attention.%s.weight' % n] = g[a + n + '/kernel'].reshape(D, H * dh).T
            if a + n + '/bias' in g: c[p + 'attention.attention.%s.bias' % n] = g[a + n + '/bias'].reshape(-1)
        c[p + 'attention.output.dense.weight'] = g[a + 'out/kernel'].reshape(H * dh, D).T
        c[p + 'attention.output.dense.bias'] = g[a + 'out/bias']
        c[p + 'intermediate.dense.weight'] = g[b + 'MlpBlock_3/Dense_0/kernel'].T
        c[p + 'intermediate.dense.bias'] = g[b + 'MlpBlock_3/Dense_0/bias']
        c[p + 'output.dense.weight'] = g[b + 'MlpBlock_3/Dense_1/kernel'].T
        c[p + 'output.dense.bias'] = g[b + 'MlpBlock_3/Dense_1/bias']
    return {k: np.ascontiguousarray(v) for k, v in c.items()}

g = google(qkv_bias=False, pre_logits=True)
np.savez(os.path.join(out, 'google.npz'), **g)
np.savez(os.path.join(out, 'google_expected.npz'), **canonical(g))
np.savez_compressed(os.path.join(out, 'google_opt.npz'), **{'opt/target/' + k: v for k, v in g.items()},
                    **{'opt/state/step': np.array(3, dtype='<i8')})
gb = google(qkv_bias=True, pre_logits=False)
np.savez(os.path.join(out, 'google_bias.npz'), **{'params/' + k: v for k, v in gb.items()})
np.savez(os.path.join(out, 'google_bias_expected.npz'), **canonical(gb))
wrong = dict(g); wrong['Transformer/encoderblock_1/MlpBlock_3/Dense_1/kernel'] = r(M + 1, D)
np.savez(os.path.join(out, 'google_wrong_shape.npz'), **wrong)
partial = dict(g); partial['Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/bias'] = r(H, dh)
np.savez(os.path.join(out, 'google_partial_bias.npz'), **partial)
hybrid = dict(g); hybrid['conv_root/kernel'] = r(7, 7, 3, 4)
np.savez(os.path.join(out, 'google_hybrid.npz'), **hybrid)
`;

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vit-lens-npz-'));
  try {
    execFileSync(PYTHON, ['-c', 'import numpy'], { stdio: 'pipe' });
  } catch (err) {
    // Deliberately a failure, not a skip: these tests are only meaningful against NumPy's own files.
    throw new Error(`npz tests need ${PYTHON} with numpy (apt-get install python3-numpy): ${(err as Error).message}`);
  }
  execFileSync(PYTHON, ['-c', MAKE_FIXTURES, dir], { stdio: 'pipe' });
});

after(() => fsp.rm(dir, { recursive: true, force: true }));

const fixture = (name: string) => path.join(dir, name);

for (const file of ['stored.npz', 'deflated.npz']) {
  test(`readNpz matches NumPy for every dtype and layout (${file})`, async () => {
    const expected: Record<string, { shape: number[]; values: number[] }> = JSON.parse(
      await fsp.readFile(fixture('expected.json'), 'utf8'),
    );
    const arrays = await readNpz(fixture(file));
    assert.deepEqual([...arrays.keys()].sort(), Object.keys(expected).sort());
    for (const [name, want] of Object.entries(expected)) {
      const got = arrays.get(name)!;
      assert.deepEqual(got.shape, want.shape, name);
      assert.deepEqual([...got.data], want.values, name);
    }
  });
}

test('readNpz reads .npy format versions 1, 2 and 3', async () => {
  const arrays = await readNpz(fixture('versions.npz'));
  const v1 = arrays.get('v1')!;
  assert.deepEqual(v1.shape, [2, 3]);
  for (const v of ['v2', 'v3']) assert.deepEqual(arrays.get(v), v1, v);
});

test('readNpz include filter decodes only the chosen arrays', async () => {
  const arrays = await readNpz(fixture('int.npz'), { include: name => name === 'ok' });
  assert.deepEqual([...arrays.keys()], ['ok']);
});

const npzErrors: [string, string | (() => Promise<string>), RegExp][] = [
  ['unsupported dtype', 'int.npz', /: array "counts": dtype '<i4' is not supported \(only '<f4', '<f8', '<f2'\)/],
  ['big-endian floats', 'bigendian.npz', /: array "be": dtype '>f4' is not supported/],
  ['corrupt npy header', 'badheader.npz', /: array "broken": corrupt \.npy header/],
  ['truncated npy data', 'truncated.npz', /: array "short": 20 data bytes but <f4 shape \(2, 3\) needs 24/],
  [
    'not a zip',
    async () => {
      await fsp.writeFile(fixture('text.npz'), 'hello, not a zip');
      return 'text.npz';
    },
    /: not a zip archive, so not an \.npz file/,
  ],
  [
    'corrupt zip',
    async () => {
      const good = await fsp.readFile(fixture('stored.npz'));
      await fsp.writeFile(fixture('cut.npz'), good.subarray(0, 200)); // central directory gone
      return 'cut.npz';
    },
    /: corrupt zip archive/,
  ],
];

for (const [name, source, problem] of npzErrors) {
  test(`readNpz error: ${name}`, async () => {
    const file = fixture(typeof source === 'string' ? source : await source());
    await assert.rejects(readNpz(file), (e: Error) => {
      assert.ok(e.message.startsWith(`${file}: `), `names the file: ${e.message}`);
      assert.match(e.message, problem);
      return true;
    });
  });
}

async function assertMatchesExpected(
  weights: Map<string, { shape: number[]; data: Float32Array }>,
  expectedFile: string,
) {
  const expected = await readNpz(fixture(expectedFile));
  assert.deepEqual([...weights.keys()].sort(), [...expected.keys()].sort());
  for (const [name, want] of expected) {
    const got = weights.get(name)!;
    assert.deepEqual(got.shape, want.shape, name);
    assert.deepEqual([...got.data], [...want.data], name);
  }
}

test('loadGoogleNpz maps a Google checkpoint to canonical weights and infers the architecture', async () => {
  const { arch, weights } = await loadGoogleNpz(fixture('google.npz'));
  assert.deepEqual(arch, {
    hiddenSize: 8,
    numLayers: 2,
    numHeads: 2,
    mlpSize: 16,
    patchSize: 4,
    imageSize: [8, 8],
    numChannels: 3,
    layerNormEps: 1e-6,
    qkvBias: false,
    numClasses: 5,
    preLogitsSize: 6,
  });
  await assertMatchesExpected(weights, 'google_expected.npz');

  // Spot checks by index, independent of NumPy's reshapes.
  const raw = await readNpz(fixture('google.npz'));
  const kernel = raw.get('embedding/kernel')!.data; // [P=4, P=4, C=3, D=8]
  const patch = weights.get(W.patchWeight)!; // [D, C, P, P]
  assert.deepEqual(patch.shape, [8, 3, 4, 4]);
  assert.equal(patch.data[((5 * 3 + 2) * 4 + 1) * 4 + 3], kernel[((1 * 4 + 3) * 3 + 2) * 8 + 5]);
  const q = raw.get('Transformer/encoderblock_1/MultiHeadDotProductAttention_1/query/kernel')!.data; // [D, H, dh]
  const qWeight = weights.get(W.layer(1).qWeight)!; // [H*dh, D]: row = head*4 + j, column = input feature
  assert.equal(qWeight.data[(1 * 4 + 2) * 8 + 6], q[(6 * 2 + 1) * 4 + 2]);
  const out = raw.get('Transformer/encoderblock_0/MultiHeadDotProductAttention_1/out/kernel')!.data; // [H, dh, D]
  assert.equal(weights.get(W.layer(0).projWeight)!.data[7 * 8 + (1 * 4 + 3)], out[(1 * 4 + 3) * 8 + 7]);
  assert.deepEqual(weights.get(W.headWeight)!.shape, [5, 6]);
  assert.equal(weights.has(W.layer(0).qBias), false);
});

test('loadGoogleNpz strips opt/target/ and params/ prefixes, ignores optimizer state, reads qkv biases', async () => {
  const opt = await loadGoogleNpz(fixture('google_opt.npz'));
  await assertMatchesExpected(opt.weights, 'google_expected.npz');

  const { arch, weights } = await loadGoogleNpz(fixture('google_bias.npz'));
  assert.equal(arch.qkvBias, true);
  assert.equal(arch.preLogitsSize, undefined);
  assert.deepEqual(weights.get(W.layer(1).vBias)!.shape, [8]);
  assert.deepEqual(weights.get(W.headWeight)!.shape, [5, 8]);
  await assertMatchesExpected(weights, 'google_bias_expected.npz');
});

const googleErrors: [string, string, RegExp][] = [
  [
    'wrong-shape key',
    'google_wrong_shape.npz',
    /tensor "vit\.encoder\.layer\.1\.output\.dense\.weight" has shape \[8, 17\], expected \[8, 16\]; it comes from npz key "Transformer\/encoderblock_1\/MlpBlock_3\/Dense_1\/kernel" with shape \[17, 8\]/,
  ],
  [
    'query/key/value biases not all-or-none',
    'google_partial_bias.npz',
    /key "Transformer\/encoderblock_0\/MultiHeadDotProductAttention_1\/key\/bias" is missing but query\/key\/value biases must be all present or all absent/,
  ],
  ['keys of another model family', 'google_hybrid.npz', /unexpected keys for a plain ViT: "conv_root\/kernel"/],
  [
    'not a Google checkpoint',
    'stored.npz',
    /no "embedding\/kernel" key, so not a Google vision_transformer checkpoint/,
  ],
];

for (const [name, file, problem] of googleErrors) {
  test(`loadGoogleNpz error: ${name}`, async () => {
    await assert.rejects(loadGoogleNpz(fixture(file)), (e: Error) => {
      assert.ok(e.message.startsWith(`${fixture(file)}: `), `names the file: ${e.message}`);
      assert.match(e.message, problem);
      return true;
    });
  });
}
