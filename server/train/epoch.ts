/**
 * One epoch of a run: optimizer steps over the shuffled training set (each step the size-weighted
 * mean of `accumulate` micro-batches' gradients, clipped, then one optimizer update), then
 * validation, the best and latest checkpoints and the epoch's metrics.
 */
import * as tf from '@tensorflow/tfjs-core';
import { saveCheckpoint } from './checkpoint';
import { evaluate, Evaluation } from './evaluate';
import { clipGradients } from './optimizer';
import { mixSeed, mulberry32, PURPOSE, shuffled } from './rng';
import { appendMetrics, checkpointFile, writeReport, writeRunInfo } from './runFiles';
import { bestAccuracy, SliceGradients, snapshot, TrainingError, TrainingRun } from './runState';
import { learningRate } from './schedule';
import type { LoadedBatch } from './trainInputs';

/** The epoch's micro-batches in shuffled order, from loop.batchInEpoch on; the next one loads while the current one trains. */
function batchQueue(run: TrainingRun, epoch: number) {
  const { config, loop, microPerEpoch } = run;
  const order = shuffled(run.inputs.train, mulberry32(mixSeed(config.seed, PURPOSE.shuffle, epoch)));
  const batchAt = (b: number) =>
    run.inputs.trainBatch(order.slice(b * config.batchSize, (b + 1) * config.batchSize), epoch, b);
  let next: Promise<LoadedBatch> | undefined =
    loop.batchInEpoch < microPerEpoch ? batchAt(loop.batchInEpoch) : undefined;
  return {
    /** The next micro-batch; advances loop.batchInEpoch. */
    async take(): Promise<LoadedBatch> {
      const batch = await next!;
      loop.batchInEpoch++;
      next = loop.batchInEpoch < microPerEpoch ? batchAt(loop.batchInEpoch) : undefined;
      return batch;
    },
    /** Frees the batch loading ahead (the run stops before using it). */
    async discard(): Promise<void> {
      await next?.then(b => b.input.x.dispose()).catch(() => {});
    },
  };
}
type BatchQueue = ReturnType<typeof batchQueue>;

/** Trains until the epoch's last micro-batch, or until a stop is requested (then checkpoints, and returns 'stopped'). */
export async function trainOneEpoch(run: TrainingRun, epoch: number): Promise<'done' | 'stopped'> {
  const queue = batchQueue(run, epoch);
  const { loop, microPerEpoch } = run;
  while (loop.batchInEpoch < microPerEpoch) {
    await takeStep(run, epoch, queue);
    if (run.shouldStop?.() && loop.batchInEpoch < microPerEpoch) {
      await queue.discard();
      await saveCheckpoint(
        checkpointFile(run.runDir, 'latest'),
        await snapshot(run.params),
        await run.optimizer.state(),
        loop,
      );
      run.info.epoch = epoch;
      run.info.step = loop.step;
      run.log(`stopped at epoch ${epoch + 1}, step ${loop.step}; resume with --resume`);
      return 'stopped';
    }
  }
  return 'done';
}

/** Accumulated gradients of one optimizer step: micro-batch (and thread-slice) means weighted by size, so they are those of one large batch. */
async function stepGradients(run: TrainingRun, epoch: number, queue: BatchQueue, lr: number) {
  const { loop, config } = run;
  const micro = Math.min(config.accumulate, run.microPerEpoch - loop.batchInEpoch);
  const parts: SliceGradients[] = [];
  let stepImages = 0;
  for (let m = 0; m < micro; m++) {
    const batch = await queue.take();
    if (!batch.kept.length) continue;
    const labels = Int32Array.from(batch.kept.map(s => s.label));
    const slices = await run.gradients(batch.input, labels);
    batch.input.x.dispose();
    const bad = slices.find(r => !Number.isFinite(r.loss));
    if (bad) {
      for (const r of slices) for (const g of r.grads.values()) g.dispose();
      throw new TrainingError(
        `loss became ${bad.loss} at epoch ${epoch + 1}, step ${loop.step + 1} (lr ${lr.toExponential(3)}); stopped instead of training on garbage — try a lower --lr`,
      );
    }
    for (const r of slices) {
      parts.push(r);
      loop.epochCorrect += r.correct;
    }
    stepImages += labels.length;
  }
  return { ...sumParts(parts, stepImages), stepImages };
}

/**
 * The size-weighted sum of `parts` (of `images` images in all) in their order, and their weighted
 * mean loss. The parts' gradients are disposed, except a single part's, which is returned as it is.
 */
export function sumParts(
  parts: SliceGradients[],
  images: number,
): { accumulated?: Map<string, tf.Tensor>; stepLoss: number } {
  let accumulated: Map<string, tf.Tensor> | undefined;
  let stepLoss = 0;
  for (const part of parts) {
    const w = part.n / images;
    stepLoss += part.loss * w;
    if (!accumulated)
      accumulated = new Map([...part.grads].map(([k, g]) => [k, parts.length === 1 ? g : tf.tidy(() => g.mul(w))]));
    else
      for (const [k, g] of part.grads) {
        const s = tf.tidy(() => accumulated!.get(k)!.add(g.mul(w)));
        accumulated.get(k)!.dispose();
        accumulated.set(k, s);
      }
    if (parts.length > 1) for (const g of part.grads.values()) g.dispose();
  }
  return { accumulated, stepLoss };
}

/** One optimizer step (unless every image of its micro-batches was unreadable), its metrics line, and a within-epoch checkpoint when due. */
async function takeStep(run: TrainingRun, epoch: number, queue: BatchQueue): Promise<void> {
  const { loop, config, runDir } = run;
  const stepStart = Date.now();
  const lr = learningRate(loop.step, config.lr, config.warmupSteps, run.totalSteps);
  const { accumulated, stepLoss, stepImages } = await stepGradients(run, epoch, queue, lr);
  if (!accumulated) return;
  const { norm: gradNorm, scale } = await clipGradients(accumulated, config.clipNorm);
  run.optimizer.apply(run.params, accumulated, lr, scale);
  for (const g of accumulated.values()) g.dispose();
  loop.step++;
  loop.epochLossSum += stepLoss * stepImages;
  loop.epochSeen += stepImages;
  const ips = (stepImages * 1000) / Math.max(1, Date.now() - stepStart);
  if (loop.step % run.logEvery === 0 || loop.batchInEpoch === run.microPerEpoch) {
    await appendMetrics(runDir, {
      type: 'step',
      epoch,
      step: loop.step,
      loss: stepLoss,
      lr,
      gradNorm,
      imagesPerSec: ips,
      time: new Date().toISOString(),
    });
    run.log(
      `epoch ${epoch + 1}/${config.epochs} step ${loop.step}/${run.totalSteps} loss ${stepLoss.toFixed(4)} lr ${lr.toExponential(2)} ${ips.toFixed(1)} img/s`,
    );
  }
  // Within the epoch (its end checkpoints anyway): the loop position makes the resume exact.
  if (loop.batchInEpoch < run.microPerEpoch && run.checkpointDue()) {
    await saveCheckpoint(
      checkpointFile(runDir, 'latest'),
      await snapshot(run.params),
      await run.optimizer.state(),
      loop,
    );
    run.checkpointWritten();
    run.info.step = loop.step;
    await writeRunInfo(runDir, run.info);
    run.log(`checkpoint at epoch ${epoch + 1}, step ${loop.step}`);
  }
}

/** End of epoch: validate, keep the best checkpoint (and its held-out predictions), record the epoch, checkpoint the next epoch's start. */
export async function evaluateAndCheckpoint(run: TrainingRun, epoch: number, epochStart: number): Promise<void> {
  const { config, runDir, inputs, report } = run;
  const valSamples = inputs.val;
  const ev: Evaluation | undefined = valSamples.length
    ? await evaluate(
        run.params,
        run.arch,
        valSamples,
        config.batchSize,
        b => inputs.evalBatch(b),
        run.pool ? (input, n) => run.pool!.logits(input, n) : undefined,
      )
    : undefined;
  run.warnUnreadable();
  let loop = run.loop;
  const trainLoss = loop.epochSeen ? loop.epochLossSum / loop.epochSeen : NaN;
  const trainAcc = loop.epochSeen ? loop.epochCorrect / loop.epochSeen : 0;
  const score = ev ? ev.acc : trainAcc;
  const weights = await snapshot(run.params);
  if (score > loop.bestValAcc) {
    loop.bestValAcc = score;
    loop.bestEpoch = epoch;
    await saveCheckpoint(checkpointFile(runDir, 'best'), weights, undefined, loop);
    report.bestEpoch = epoch;
    report.heldOut = ev?.predictions ?? [];
    await writeReport(runDir, report);
  }
  await appendMetrics(runDir, {
    type: 'epoch',
    epoch,
    step: loop.step,
    trainLoss,
    trainAcc,
    ...(ev ? { valLoss: ev.loss, valAcc: ev.acc, perClassAcc: ev.perClassAcc, confusion: ev.confusion } : {}),
    seconds: (Date.now() - epochStart) / 1000,
    time: new Date().toISOString(),
  });
  run.log(
    `epoch ${epoch + 1}/${config.epochs}: train loss ${trainLoss.toFixed(4)} acc ${(trainAcc * 100).toFixed(2)}%${ev ? `, val loss ${ev.loss.toFixed(4)} acc ${(ev.acc * 100).toFixed(2)}%` : ''}`,
  );
  loop = run.loop = { ...loop, epoch: epoch + 1, batchInEpoch: 0, epochLossSum: 0, epochCorrect: 0, epochSeen: 0 };
  await saveCheckpoint(checkpointFile(runDir, 'latest'), weights, await run.optimizer.state(), loop);
  run.checkpointWritten();
  Object.assign(run.info, { epoch: epoch + 1, step: loop.step, ...bestAccuracy(loop, valSamples.length > 0) });
  await writeRunInfo(runDir, run.info);
}
