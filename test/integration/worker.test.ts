/**
 * Drives the built worker (dist/worker.js) over JSON-RPC without VS Code, the way the extension's
 * language client does: initialize, load a model, classify, explain, bad input, cancellation.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CancellationTokenSource, ProgressType, ResponseError } from 'vscode-jsonrpc/node';
import {
  ClassifyRequest,
  ErrorCodes,
  ExplainRequest,
  LoadModelRequest,
  StatusRequest,
} from '../../common/workerRequests';
import {
  cat,
  coffee,
  fixtures,
  reference,
  startWorker,
  stopWorker,
  tinyHf,
  tinyOnnx,
  type WorkerProcess,
} from './workerProcess';
import { requestType } from './requestType';

async function rejects(p: Promise<unknown>): Promise<ResponseError<unknown>> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ResponseError, `expected a JSON-RPC error, got ${e}`);
    return e;
  }
  assert.fail('expected the request to fail');
}

for (const transport of ['stdio', 'ipc'] as const) {
  describe(`worker over ${transport}`, () => {
    let w: WorkerProcess;
    const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-worker-'));
    before(async () => {
      w = await startWorker({ transport, init: { cacheDir, provider: 'cpu' } });
    });
    after(async () => {
      await stopWorker(w);
      fs.rmSync(cacheDir, { recursive: true, force: true });
    });

    test('status before any model, and a request that needs one', async () => {
      const s = await w.rpc.sendRequest(requestType(StatusRequest), {});
      assert.equal(s.state, 'idle');
      assert.equal(s.model, undefined);
      assert.equal(s.pid, w.proc.pid);
      const e = await rejects(w.rpc.sendRequest(requestType(ClassifyRequest), { images: [cat] }));
      assert.equal(e.code, ErrorCodes.NoModel);
    });

    test('loads the Hugging Face folder with progress and classifies like PyTorch', async () => {
      const progress: unknown[] = [];
      const token = 'load-1';
      const sub = w.rpc.onProgress(new ProgressType<unknown>(), token, (v: unknown) => void progress.push(v));
      const info = await w.rpc.sendRequest(requestType(LoadModelRequest), { model: tinyHf, workDoneToken: token });
      sub.dispose();
      assert.equal(info.kind, 'hf-folder');
      assert.equal(info.provider, 'cpu');
      assert.equal(info.numClasses, reference.labels.length);
      assert.deepEqual(info.labels, reference.labels);
      assert.ok(
        progress.some(p => (p as { kind: string }).kind === 'begin'),
        'a progress begin was reported',
      );
      assert.ok(
        progress.some(p => (p as { kind: string }).kind === 'end'),
        'a progress end was reported',
      );

      const r = await w.rpc.sendRequest(requestType(ClassifyRequest), { images: [cat, coffee], topK: 3 });
      assert.equal(r.failures.length, 0);
      assert.equal(r.results.length, 2);
      for (const [i, res] of r.results.entries()) {
        assert.equal(res.predictions.length, 3);
        assert.ok(res.predictions[0].score >= res.predictions[1].score);
        assert.equal(
          res.predictions[0].index,
          reference.photos[i === 0 ? 'chelsea.png' : 'coffee.png'].top1,
          `top-1 of ${res.image}`,
        );
      }
      assert.equal((await w.rpc.sendRequest(requestType(StatusRequest), {})).state, 'ready');
    });

    test('explain returns a normalised rollout map and an overlay PNG', async () => {
      const r = await w.rpc.sendRequest(requestType(ExplainRequest), {
        image: cat,
        headFusion: 'max',
        discardRatio: 0.9,
        overlay: { colormap: 'turbo', opacity: 0.5 },
      });
      assert.deepEqual(r.map.grid, [14, 14]);
      assert.equal(r.map.values.length, 196);
      assert.equal(Math.max(...r.map.values), 1);
      const png = Buffer.from(r.overlayPng!, 'base64');
      assert.deepEqual([...png.subarray(1, 4)], [...Buffer.from('PNG')]);
      const raw = await w.rpc.sendRequest(requestType(ExplainRequest), { image: cat, layer: 1, head: 2 });
      assert.equal(raw.method, 'attention');
      assert.notDeepEqual(raw.map.values, r.map.values);
    });

    test('explain with method relevance: the top-1 class by default, another by index or label', async () => {
      const top1 = reference.photos['chelsea.png'].top1;
      const r = await w.rpc.sendRequest(requestType(ExplainRequest), {
        image: cat,
        method: 'relevance',
        overlay: { colormap: 'viridis', opacity: 0.4 },
      });
      assert.equal(r.method, 'relevance');
      assert.deepEqual(r.class, { index: top1, label: reference.labels[top1] });
      assert.deepEqual(r.map.grid, [14, 14]);
      assert.equal(Math.max(...r.map.values), 1);
      assert.deepEqual([...Buffer.from(r.overlayPng!, 'base64').subarray(1, 4)], [...Buffer.from('PNG')]);
      const other = (top1 + 1) % 10;
      const byIndex = await w.rpc.sendRequest(requestType(ExplainRequest), {
        image: cat,
        method: 'relevance',
        class: other,
      });
      const byLabel = await w.rpc.sendRequest(requestType(ExplainRequest), {
        image: cat,
        method: 'relevance',
        class: reference.labels[other],
      });
      assert.deepEqual(byIndex.class, { index: other, label: reference.labels[other] });
      assert.deepEqual(byLabel.map, byIndex.map);
      assert.notDeepEqual(byIndex.map.values, r.map.values);
      // The engine's checks (they need the model) answer BadInput; the request's schema, InvalidParams.
      for (const [params, code, want] of [
        [{ image: cat, method: 'relevance', class: 99 }, ErrorCodes.BadInput, /class 99 does not exist/],
        [{ image: cat, method: 'relevance', layer: 0 }, ErrorCodes.BadInput, /applies to method attention/],
        [
          { image: cat, method: 'relevance', class: { index: 1 } },
          ErrorCodes.InvalidParams,
          /class must be a class index or a label/,
        ],
        [
          { image: cat, method: 'saliency' },
          ErrorCodes.InvalidParams,
          /method must be one of rollout, relevance, attention, got "saliency"/,
        ],
      ] as [object, number, RegExp][]) {
        const e = await rejects(w.rpc.sendRequest(requestType(ExplainRequest), params as never));
        assert.equal(e.code, code, e.message);
        assert.match(e.message, want);
      }
    });

    test('bad images give errors naming the file, and the worker keeps serving', async () => {
      for (const bad of ['zero.png', 'truncated.png', 'not-an-image.jpg', 'bomb.png']) {
        const file = path.join(fixtures, 'bad', bad);
        const e = await rejects(w.rpc.sendRequest(requestType(ExplainRequest), { image: file }));
        assert.equal(e.code, ErrorCodes.BadInput);
        assert.match(e.message, new RegExp(bad.replace('.', '\\.')));
      }
      const r = await w.rpc.sendRequest(requestType(ClassifyRequest), {
        images: [path.join(fixtures, 'bad', 'zero.png'), cat],
      });
      assert.equal(r.results.length, 1, 'the good image is still classified');
      assert.equal(r.failures.length, 1);
      assert.match(r.failures[0].error, /zero\.png: file is empty/);
    });

    test('malformed request parameters are refused with a message, not guessed at', async () => {
      // What the schema can tell is InvalidParams naming the field (more in workerBoundary.test.ts);
      // what only the loaded model can tell (which layers and heads exist) is BadInput.
      const bad: [object, number, RegExp][] = [
        [{ image: cat, headFusion: 'avg' }, ErrorCodes.InvalidParams, /headFusion must be one of mean, max, min/],
        [{ image: cat, discardRatio: 1.5 }, ErrorCodes.InvalidParams, /discardRatio must be a number in \[0, 1\)/],
        [{ image: cat, layer: 7 }, ErrorCodes.BadInput, /layer 7 does not exist/],
        [{ image: cat, layer: 0, head: 9 }, ErrorCodes.BadInput, /head 9 does not exist/],
        [
          { image: cat, overlay: { colormap: 'rainbow', opacity: 0.5 } },
          ErrorCodes.InvalidParams,
          /overlay\.colormap must be one of/,
        ],
      ];
      for (const [params, code, want] of bad) {
        const e = await rejects(w.rpc.sendRequest(requestType(ExplainRequest), params as never));
        assert.equal(e.code, code, e.message);
        assert.match(e.message, want);
      }
      const e = await rejects(w.rpc.sendRequest(requestType(ClassifyRequest), { images: [cat], topK: 0 }));
      assert.match(e.message, /topK must be an integer/);
      assert.match(
        (await rejects(w.rpc.sendRequest(requestType(ClassifyRequest), { images: 'cat.png' } as never))).message,
        /images must be a list/,
      );
    });

    test('a failed model load keeps the previous model loaded', async () => {
      // A Hugging Face folder whose weights file is malformed (offsets beyond the end of the file).
      const broken = path.join(cacheDir, 'broken-model');
      fs.mkdirSync(broken, { recursive: true });
      fs.copyFileSync(path.join(tinyHf, 'config.json'), path.join(broken, 'config.json'));
      fs.copyFileSync(path.join(fixtures, 'bad', 'bad-offsets.safetensors'), path.join(broken, 'model.safetensors'));
      const e = await rejects(w.rpc.sendRequest(requestType(LoadModelRequest), { model: broken }));
      assert.match(e.message, /model\.safetensors/);
      assert.match(e.message, /offset|beyond|end of (the )?file/i);
      const s = await w.rpc.sendRequest(requestType(StatusRequest), {});
      assert.equal(s.state, 'ready');
      assert.equal(s.model?.spec, tinyHf);
      assert.ok(s.lastError);
      const r = await w.rpc.sendRequest(requestType(ClassifyRequest), { images: [cat] });
      assert.equal(r.results.length, 1);
    });

    test('a cancelled request answers RequestCancelled and the worker goes on', async () => {
      const source = new CancellationTokenSource();
      const images = Array.from({ length: 64 }, () => cat);
      const pending = w.rpc.sendRequest(requestType(ClassifyRequest), { images }, source.token);
      setTimeout(() => source.cancel(), 20);
      const outcome = await pending.then(
        () => 'finished',
        (e: ResponseError<unknown>) => e.code,
      );
      assert.ok(outcome === -32800 || outcome === 'finished', `cancel answered ${outcome}`);
      const r = await w.rpc.sendRequest(requestType(ClassifyRequest), { images: [coffee] });
      assert.equal(r.results.length, 1);
    });

    test('a torch.onnx export loads too (attention tapped from its graph)', async () => {
      const info = await w.rpc.sendRequest(requestType(LoadModelRequest), { model: tinyOnnx });
      assert.equal(info.kind, 'onnx');
      assert.ok(info.explainAvailable, info.explainUnavailableReason);
      const r = await w.rpc.sendRequest(requestType(ExplainRequest), { image: cat });
      assert.deepEqual(r.map.grid, [14, 14]);
    });
  });
}
