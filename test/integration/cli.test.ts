/**
 * The built CLI (dist/cli.js) as a user runs it: the --json contract, exit codes, error messages
 * that name the file, every MODEL kind including a hub id served by a local HTTP server, and offline
 * use of the cache.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { onnx } from 'onnx-proto';
import { CliRun, runCli } from './runCli';

const root = path.join(__dirname, '..', '..');
const fixtures = path.join(root, 'test', 'fixtures');
const tiny = path.join(fixtures, 'vit-tiny');
const cat = path.join(fixtures, 'photos', 'chelsea.png');
const coffee = path.join(fixtures, 'photos', 'coffee.png');
const reference = JSON.parse(fs.readFileSync(path.join(tiny, 'reference.json'), 'utf8'));
const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-cli-'));
after(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

type Run = CliRun;

const cli = (args: string[], env: Record<string, string | undefined> = {}): Promise<Run> =>
  runCli(args, { env: { VIT_LENS_CACHE: cacheDir, VIT_LENS_MODEL: undefined, HF_HUB_OFFLINE: undefined, ...env } });

/** `classify --json`. */
interface ClassifyJson {
  results: { image: string; predictions: { index: number; label: string; score: number }[]; logits: number[] }[];
  failures?: { image: string }[];
}
interface MapJson {
  grid: number[];
  values: number[];
}
/** `explain --json`: of the maps, the one the options ask for (the others undefined). */
interface ExplainJson {
  image: string;
  predictions: { index: number; label: string; score: number }[];
  rollout: MapJson;
  attention: MapJson & { layer: number; head: number };
  relevance: MapJson;
  class: { index: number; label: string };
  overlay: string;
}
/** `info --json` (the fields the tests read). */
interface InfoJson {
  kind: string;
  explainAvailable: boolean;
}

function json<T>(r: Run): T {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout); // throws unless stdout is exactly one JSON document
}

describe('classify', () => {
  test('--json prints the documented document with softmax scores sorted high to low', async () => {
    const doc = json<ClassifyJson>(
      await cli(['classify', cat, coffee, '--model', path.join(tiny, 'hf'), '--top-k', '3', '--json']),
    );
    assert.deepEqual(Object.keys(doc), ['results']);
    assert.equal(doc.results.length, 2);
    for (const [i, r] of doc.results.entries()) {
      assert.equal(r.image, [cat, coffee][i]);
      assert.equal(r.predictions.length, 3);
      assert.deepEqual(Object.keys(r.predictions[0]).sort(), ['index', 'label', 'score']);
      for (let k = 1; k < 3; k++) assert.ok(r.predictions[k - 1].score >= r.predictions[k].score);
      assert.equal(r.logits.length, 10);
      // Scores are the softmax of the printed logits.
      const max = Math.max(...r.logits);
      const z = r.logits.reduce((s: number, l: number) => s + Math.exp(l - max), 0);
      const top = r.predictions[0];
      assert.ok(Math.abs(top.score - Math.exp(r.logits[top.index] - max) / z) < 1e-9);
      assert.equal(top.label, reference.labels[top.index]);
      assert.equal(top.index, reference.photos[path.basename(r.image)].top1);
    }
  });

  test('every MODEL kind gives the same top-1 (torch.onnx export, HF folder, Google npz)', async () => {
    const models: string[][] = [
      ['--model', path.join(tiny, 'model.onnx'), '--labels', path.join(tiny, 'google-labels.txt')],
      ['--model', path.join(tiny, 'hf')],
      ['--model', path.join(tiny, 'google.npz'), '--labels', path.join(tiny, 'google-labels.txt')],
    ];
    for (const m of models) {
      const doc = json<ClassifyJson>(await cli(['classify', cat, '--json', ...m]));
      assert.equal(doc.results[0].predictions[0].label, reference.photos['chelsea.png'].top1_label, m.join(' '));
    }
  });

  test('a transformers.js-layout folder (config.json + onnx/model.onnx, no safetensors) takes labels and preprocessing from the folder', async () => {
    const folder = path.join(cacheDir, 'transformers-js-layout');
    fs.mkdirSync(path.join(folder, 'onnx'), { recursive: true });
    for (const f of ['config.json', 'preprocessor_config.json'])
      fs.copyFileSync(path.join(tiny, 'hf', f), path.join(folder, f));
    fs.copyFileSync(path.join(tiny, 'model.onnx'), path.join(folder, 'onnx', 'model.onnx'));
    const doc = json<ClassifyJson>(await cli(['classify', cat, '--json', '--model', folder]));
    const viaSafetensors = json<ClassifyJson>(await cli(['classify', cat, '--json', '--model', path.join(tiny, 'hf')]));
    assert.deepEqual(
      doc.results[0].predictions.map((p: { label: string }) => p.label),
      viaSafetensors.results[0].predictions.map((p: { label: string }) => p.label),
    );
    const d = Math.max(
      ...doc.results[0].logits.map((l: number, i: number) => Math.abs(l - viaSafetensors.results[0].logits[i])),
    );
    assert.ok(d <= 1e-4, `logits differ by ${d}`);
    const info = json<InfoJson>(await cli(['info', '--json', '--model', folder]));
    assert.equal(info.kind, 'hf-folder');
    assert.ok(info.explainAvailable);
  });

  test('an .onnx file without labels falls back to class_N', async () => {
    const doc = json<ClassifyJson>(await cli(['classify', cat, '--json', '--model', path.join(tiny, 'model.onnx')]));
    assert.match(doc.results[0].predictions[0].label, /^class_\d$/);
  });

  test('a bad image among good ones: the good ones are classified, exit code 1, stderr names the file', async () => {
    const zero = path.join(fixtures, 'bad', 'zero.png');
    const r = await cli(['classify', cat, zero, '--model', path.join(tiny, 'hf'), '--json']);
    assert.equal(r.code, 1);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.results.length, 1);
    assert.equal(doc.failures[0].image, zero);
    assert.match(r.stderr, /zero\.png: file is empty/);
  });

  test('human output lists percentages per image', async () => {
    const r = await cli(['classify', cat, '--model', path.join(tiny, 'hf'), '--top-k', '2']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`${path.basename(cat)}\\n\\s+\\d+\\.\\d%\\s+\\S`));
  });
});

describe('explain', () => {
  test('--json rollout map matches the PyTorch reference and --out writes an overlay at the image size', async () => {
    // The reference ran on PIL's 224×224 resize of the photo; given that exact image, nothing is resized.
    const pil224 = path.join(cacheDir, 'chelsea-pil224.png');
    await sharp(fs.readFileSync(path.join(fixtures, 'photos', 'chelsea.pil224.bin')), {
      raw: { width: 224, height: 224, channels: 3 },
    })
      .png()
      .toFile(pil224);
    const out = path.join(cacheDir, 'overlay.png');
    const doc = json<ExplainJson>(
      await cli([
        'explain',
        pil224,
        '--model',
        path.join(tiny, 'hf'),
        '--head-fusion',
        'max',
        '--discard-ratio',
        '0.9',
        '--out',
        out,
        '--json',
      ]),
    );
    assert.deepEqual(doc.rollout.grid, [14, 14]);
    const b = fs.readFileSync(path.join(tiny, 'rollout_max_0.9.bin'));
    const ref = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + 196 * 4)); // image 0 = chelsea
    let d = 0;
    for (let i = 0; i < 196; i++) d = Math.max(d, Math.abs(doc.rollout.values[i] - ref[i]));
    assert.ok(d <= 1e-4, `rollout differs from PyTorch by ${d}`);
    assert.equal(doc.overlay, out);
    const meta = await sharp(out).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 224, 224]);
    // For a photo of another size the overlay keeps the photo's size.
    const out2 = path.join(cacheDir, 'overlay-full.png');
    json<ExplainJson>(await cli(['explain', cat, '--model', path.join(tiny, 'hf'), '--out', out2, '--json']));
    const meta2 = await sharp(out2).metadata();
    assert.deepEqual([meta2.width, meta2.height], [451, 300]);
  });

  test('--layer/--head gives raw attention under "attention"', async () => {
    const doc = json<ExplainJson>(
      await cli(['explain', cat, '--model', path.join(tiny, 'hf'), '--layer', '0', '--head', '1', '--json']),
    );
    assert.equal(doc.rollout, undefined);
    assert.equal(doc.attention.layer, 0);
    assert.equal(doc.attention.head, 1);
    assert.equal(Math.max(...doc.attention.values), 1);
  });

  test('--method relevance gives the class map under "relevance" with "class" (top-1 by default, --class by label or index)', async () => {
    const top1 = reference.photos['chelsea.png'].top1;
    const doc = json<ExplainJson>(
      await cli(['explain', cat, '--model', path.join(tiny, 'hf'), '--method', 'relevance', '--json']),
    );
    assert.deepEqual(Object.keys(doc), ['image', 'predictions', 'relevance', 'class']);
    assert.deepEqual(doc.class, { index: top1, label: reference.labels[top1] });
    assert.deepEqual(doc.relevance.grid, [14, 14]);
    assert.equal(doc.relevance.values.length, 196);
    assert.equal(Math.max(...doc.relevance.values), 1);
    const other = (top1 + 1) % 10;
    const byLabel = json<ExplainJson>(
      await cli([
        'explain',
        cat,
        '--model',
        path.join(tiny, 'hf'),
        '--method',
        'relevance',
        '--class',
        reference.labels[other].toUpperCase(),
        '--json',
      ]),
    );
    const byIndex = json<ExplainJson>(
      await cli([
        'explain',
        cat,
        '--model',
        path.join(tiny, 'hf'),
        '--method',
        'relevance',
        '--class',
        String(other),
        '--json',
      ]),
    );
    assert.deepEqual(byLabel.class, { index: other, label: reference.labels[other] });
    assert.deepEqual(byLabel.relevance, byIndex.relevance);
    assert.notDeepEqual(byLabel.relevance.values, doc.relevance.values);
    const text = await cli([
      'explain',
      cat,
      '--model',
      path.join(tiny, 'hf'),
      '--method',
      'relevance',
      '--class',
      String(other),
    ]);
    assert.match(text.stdout, new RegExp(`relevance for class ${other} "${reference.labels[other]}"`));
  });

  test('--method relevance with an unknown class: exit 1 naming it; --class without relevance: usage error', async () => {
    const r = await cli([
      'explain',
      cat,
      '--model',
      path.join(tiny, 'hf'),
      '--method',
      'relevance',
      '--class',
      'zebra',
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /class "zebra" is not one of this model's labels \(tabby cat, coffee mug/);
    const big = await cli(['explain', cat, '--model', path.join(tiny, 'hf'), '--method', 'relevance', '--class', '10']);
    assert.equal(big.code, 1);
    assert.match(big.stderr, /class 10 does not exist: this model has classes 0–9/);
    for (const args of [
      ['--class', '1'],
      ['--method', 'rollout', '--layer', '0'],
      ['--method', 'gradcam'],
    ]) {
      const u = await cli(['explain', cat, '--model', path.join(tiny, 'hf'), ...args]);
      assert.equal(u.code, 2, `${args.join(' ')}: ${u.stderr}`);
    }
  });

  test('a graph without attention still classifies, and explain says why it cannot', async () => {
    const cnn = path.join(cacheDir, 'cnn.onnx');
    fs.writeFileSync(cnn, tinyCnn());
    const info = json<InfoJson>(await cli(['info', '--model', cnn, '--json']));
    assert.equal(info.explainAvailable, false);
    assert.equal(
      json<ClassifyJson>(await cli(['classify', cat, '--model', cnn, '--json'])).results[0].predictions.length,
      5,
    );
    const r = await cli(['explain', cat, '--model', cnn]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cnn\.onnx/);
    assert.match(r.stderr, /attention/i);
  });

  test('a graph that is not an image model is refused at load, naming its input', async () => {
    const r = await cli(['info', '--model', path.join(fixtures, 'bad', 'not-vit.onnx')]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /not-vit\.onnx: input "x" has shape \[batch, 8\], but an image model takes a batch of RGB images/,
    );
  });
});

describe('bad input', () => {
  const cases: [string, string[], RegExp][] = [
    [
      'truncated image',
      ['explain', path.join(fixtures, 'bad', 'truncated.png')],
      /truncated\.png: .*(corrupt|truncated)/,
    ],
    [
      'non-image with an image extension',
      ['explain', path.join(fixtures, 'bad', 'not-an-image.jpg')],
      /not-an-image\.jpg: not a readable image/,
    ],
    [
      'decompression bomb',
      ['explain', path.join(fixtures, 'bad', 'bomb.png')],
      /bomb\.png: image is 40000×40000.*decompression bomb/,
    ],
    ['missing image', ['explain', path.join(fixtures, 'nope.png')], /nope\.png: file not found/],
  ];
  for (const [name, args, want] of cases) {
    test(`${name}: exit 1 and a message naming the file`, async () => {
      const r = await cli([...args, '--model', path.join(tiny, 'hf')]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, want);
      assert.equal(r.stdout, '');
    });
  }

  const badModels: [string, string, RegExp][] = [
    ['wrong-shape npz', path.join(fixtures, 'bad', 'wrong-shape.npz'), /wrong-shape\.npz.*query.*shape/i],
    [
      'safetensors header length beyond the file',
      path.join(fixtures, 'bad', 'bad-header.safetensors'),
      /bad-header\.safetensors/,
    ],
    ['missing model', path.join(fixtures, 'no-such-model.onnx'), /no-such-model\.onnx: no such file/],
    ['unknown extension', path.join(fixtures, 'photos', 'chelsea.png'), /chelsea\.png: unknown model format/],
  ];
  for (const [name, model, want] of badModels) {
    test(`${name}: exit 1 and a clear message`, async () => {
      const r = await cli(['classify', cat, '--model', model]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, want);
    });
  }

  test('usage errors exit 2', async () => {
    for (const args of [
      ['classify'],
      ['explain', cat, coffee],
      ['frobnicate'],
      ['classify', cat, '--top-k', 'x'],
      ['explain', cat, '--head', '1'],
    ]) {
      const r = await cli([...args, '--model', path.join(tiny, 'hf')]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /Usage:/);
    }
  });
});

describe('hub id', () => {
  let server: http.Server;
  let endpoint: string;
  const requests: string[] = [];
  const repoFiles: Record<string, string> = {
    'config.json': path.join(tiny, 'hf', 'config.json'),
    'preprocessor_config.json': path.join(tiny, 'hf', 'preprocessor_config.json'),
    'model.safetensors': path.join(tiny, 'hf', 'model.safetensors'),
  };
  before(async () => {
    // Serves the hub's URL layout: /{org}/{name}/resolve/{revision}/{file}
    server = http.createServer((req, res) => {
      requests.push(req.url ?? '');
      const m = /^\/test-org\/vit-tiny\/resolve\/main\/(.+)$/.exec(req.url ?? '');
      const file = m && repoFiles[m[1]];
      if (!file) {
        res.writeHead(404).end('not found');
        return;
      }
      const body = fs.readFileSync(file);
      res.writeHead(200, { 'content-length': body.length }).end(body);
    });
    await new Promise<void>(r => server.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>(r => server.close(() => r())));

  test('downloads into the cache, then works offline from it', async () => {
    const hubCache = fs.mkdtempSync(path.join(cacheDir, 'hub-'));
    const doc = json<ClassifyJson>(
      await cli(['classify', cat, '--model', 'test-org/vit-tiny', '--cache-dir', hubCache, '--json'], {
        HF_ENDPOINT: endpoint,
      }),
    );
    assert.equal(doc.results[0].predictions[0].index, reference.photos['chelsea.png'].top1);
    assert.ok(requests.some(u => u.endsWith('/model.safetensors')));
    const before = requests.length;
    const offline = json<ClassifyJson>(
      await cli(['classify', cat, '--model', 'test-org/vit-tiny', '--cache-dir', hubCache, '--offline', '--json'], {
        HF_ENDPOINT: endpoint,
      }),
    );
    assert.deepEqual(offline.results[0].logits, doc.results[0].logits);
    assert.equal(requests.length, before, 'offline made no requests');
  });

  test('offline with an empty cache names the cache path', async () => {
    const empty = fs.mkdtempSync(path.join(cacheDir, 'empty-'));
    const r = await cli(['classify', cat, '--model', 'test-org/vit-tiny', '--cache-dir', empty], {
      HF_ENDPOINT: endpoint,
      HF_HUB_OFFLINE: '1',
    });
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(empty), r.stderr);
    assert.match(r.stderr, /offline/i);
  });

  test('an unreachable hub gives a clear error naming the URL', async () => {
    const r = await cli(
      ['classify', cat, '--model', 'test-org/vit-tiny', '--cache-dir', fs.mkdtempSync(path.join(cacheDir, 'down-'))],
      { HF_ENDPOINT: 'http://127.0.0.1:9' },
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /127\.0\.0\.1:9/);
  });
});

test('info describes architecture, labels, preprocessing and provider', async () => {
  const r = await cli([
    'info',
    '--model',
    path.join(tiny, 'google.npz'),
    '--labels',
    path.join(tiny, 'google-labels.txt'),
  ]);
  assert.equal(r.code, 0, r.stderr);
  for (const want of [
    /hidden 64, 2 layers, 4 heads, MLP 128, patch 16/,
    /tabby cat/,
    /resize 224×224/,
    /provider\s+CPU/,
  ])
    assert.match(r.stdout, want);
});

/** An image classifier without attention: 16×16 patches → Conv → global average → 10 logits. */
function tinyCnn(): Uint8Array {
  const shape = (dims: (number | string)[]) => ({
    dim: dims.map(d => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
  });
  const weights = Float32Array.from({ length: 10 * 3 * 16 * 16 }, (_, i) => Math.sin(i) / 100);
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ version: 17 }],
    graph: {
      name: 'cnn',
      node: [
        {
          opType: 'Conv',
          input: ['pixel_values', 'W'],
          output: ['c'],
          attribute: [{ name: 'strides', type: onnx.AttributeProto.AttributeType.INTS, ints: [16, 16] }],
        },
        { opType: 'GlobalAveragePool', input: ['c'], output: ['p'] },
        { opType: 'Flatten', input: ['p'], output: ['logits'] },
      ],
      initializer: [{ name: 'W', dims: [10, 3, 16, 16], dataType: 1, rawData: new Uint8Array(weights.buffer) }],
      input: [{ name: 'pixel_values', type: { tensorType: { elemType: 1, shape: shape(['batch', 3, 224, 224]) } } }],
      output: [{ name: 'logits', type: { tensorType: { elemType: 1, shape: shape(['batch', 10]) } } }],
    },
  }).finish();
}
