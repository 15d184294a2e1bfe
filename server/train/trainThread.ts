/**
 * One data-parallel training thread (see threads.ts): its own wasm backend and fused kernels, a
 * copy of the model, and per request the loss and gradients of one slice of a micro-batch, written
 * into this thread's region of the shared gradient buffer.
 */
import { parentPort, workerData } from 'worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from './backend';
import { lossAndGrads } from './step';
import type { SliceRequest, ThreadInit, ThreadReply } from './threads';
import { ForwardInput, logits, Params } from './vitModel';

const init = workerData as ThreadInit;
const port = parentPort!;
const reply = (m: ThreadReply) => port.postMessage(m);

/** Test hook: "THREAD:REQUEST" makes thread THREAD (2…N) throw on its REQUEST-th slice (1-based), as a crash in a kernel would. */
const failAt = (process.env.VIT_LENS_TEST_THREAD_FAILURE ?? '').split(':').map(Number);

async function main(): Promise<void> {
  const backend = await initBackend('wasm');
  if (backend.name !== 'wasm') throw new Error(`the wasm backend did not start (${backend.notes.join('; ')})`);
  const params: Params = new Map();
  for (const f of init.frozen)
    params.set(f.name, tf.variable(tf.tensor(f.data, f.shape), false, `thread${init.index}/${f.name}`));
  const weights = new Float32Array(init.weights);
  const grads = new Float32Array(init.grads);
  const load = () => {
    for (const s of init.slots) {
      const t = tf.tensor(weights.subarray(s.offset, s.offset + s.size), s.shape);
      const v = params.get(s.name);
      if (v) v.assign(t);
      else params.set(s.name, tf.variable(t, true, `thread${init.index}/${s.name}`));
      t.dispose();
    }
  };
  const names = init.slots.map(s => s.name);
  let version = -1;
  let requests = 0;
  // One slice at a time: the main thread sends the next request only after this one's reply.
  const onSlice = async (m: SliceRequest): Promise<void> => {
    try {
      requests++;
      if (failAt[0] === init.index + 1 && failAt[1] === requests)
        throw new Error(`simulated failure on slice ${requests} (VIT_LENS_TEST_THREAD_FAILURE)`);
      if (m.weightsVersion !== version) {
        load();
        version = m.weightsVersion;
      }
      const x = tf.tensor(m.x, m.shape);
      const input = (
        m.kind === 'tokens' ? { kind: m.kind, x, fromBlock: m.fromBlock } : { kind: m.kind, x }
      ) as ForwardInput;
      if (m.purpose === 'logits') {
        const z = tf.tidy(() => logits(params, init.arch, input));
        x.dispose();
        const out = (await z.data()) as Float32Array;
        z.dispose();
        port.postMessage({ logits: out } satisfies ThreadReply, [out.buffer as ArrayBuffer]);
        return;
      }
      const r = await lossAndGrads(params, init.arch, names, input, m.labels, init.smoothing);
      x.dispose();
      for (const s of init.slots) {
        const g = r.grads.get(s.name)!;
        grads.set(g.dataSync() as Float32Array, s.offset);
        g.dispose();
      }
      reply({ loss: r.loss, correct: r.correct });
    } catch (e) {
      reply({ error: (e as Error).message });
    }
  };
  port.on('message', (m: SliceRequest) => void onSlice(m));
  reply({ ready: true });
}

main().catch(e => reply({ error: (e as Error).message }));
