/** common/modelSpec.ts: one answer to "what does this model spec name?" for the engine, the trainer and Fine-tune. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { builtInModel, classifyModelSpec, looksLikeHubId } from '../../common/modelSpec';
import { defaultCacheDir } from '../../server/model/hub';
import { modelFacts } from '../../extension/runs/baseModel';

const folder = { folder: true, hasRunJson: false } as const;
const file = { folder: false } as const;

test('each kind of spec is told apart', () => {
  assert.equal(classifyModelSpec('scratch:tiny', undefined), 'scratch');
  assert.equal(classifyModelSpec('google/vit-base-patch16-224', undefined), 'hub');
  assert.equal(classifyModelSpec('google/vit-base-patch16-224@refs/pr/3', undefined), 'hub');
  assert.equal(classifyModelSpec('models/vit.npz', undefined), 'missing', 'a missing .npz is a typo, not a repo');
  assert.equal(classifyModelSpec('/no/such/dir', undefined), 'missing');
  assert.equal(classifyModelSpec('/runs/r1', { folder: true, hasRunJson: true }), 'run-folder');
  assert.equal(classifyModelSpec('/models/vit', folder), 'hf-folder');
  assert.equal(classifyModelSpec('/m/ViT.NPZ', file), 'npz');
  assert.equal(classifyModelSpec('/m/model.onnx', file), 'onnx');
  assert.equal(classifyModelSpec('/m/model.safetensors', file), 'safetensors');
  assert.equal(classifyModelSpec('/m/model.bin', file), 'other-file');
  assert.equal(classifyModelSpec('/m.onnx/weights', file), 'other-file', "the extension is the last part's");
  for (const s of ['vit.onnx', 'a/b/c', '../x', 'org/', '/abs/path', 'org/na me', 'org/model.onnx'])
    assert.equal(looksLikeHubId(s), false, s);
});

test('Fine-tune takes what the trainer takes: .onnx and .npz files, not a hub id', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-spec-'));
  try {
    for (const name of ['vit.onnx', 'vit.npz']) fs.writeFileSync(path.join(dir, name), '');
    assert.equal(modelFacts(path.join(dir, 'vit.onnx')).unusable, undefined);
    assert.equal(modelFacts(path.join(dir, 'vit.npz')).unusable, undefined);
    assert.match(modelFacts('google/vit-base-patch16-224').unusable!, /Hub id/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the built-in model is <package>/models/default when its config.json is there', () => {
  assert.equal(builtInModel(process.cwd(), fs.existsSync), `${process.cwd()}/models/default`);
  assert.equal(builtInModel(`${process.cwd()}/`, fs.existsSync), `${process.cwd()}/models/default`);
  assert.equal(builtInModel(os.tmpdir(), fs.existsSync), undefined);
});

test('an empty XDG_CACHE_HOME or VIT_LENS_CACHE counts as unset (the engine and the trainer share this default)', () => {
  const saved = { VIT_LENS_CACHE: process.env.VIT_LENS_CACHE, XDG_CACHE_HOME: process.env.XDG_CACHE_HOME };
  try {
    process.env.VIT_LENS_CACHE = '';
    process.env.XDG_CACHE_HOME = '';
    assert.equal(defaultCacheDir(), path.join(os.homedir(), '.cache', 'vit-lens'));
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});
