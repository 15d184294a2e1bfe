/**
 * Checkpoints: weights, optimizer state and the loop position in one safetensors file, so the file
 * is either the complete old checkpoint or the complete new one (writeSafetensors is atomic).
 */
import { readSafetensors, writeSafetensors } from '../formats/safetensors';
import type { Tensor, WeightMap } from '../model/tensor';

export interface LoopState {
  /** Epoch in progress (0-based) and the next micro-batch within it. */
  epoch: number;
  batchInEpoch: number;
  /** Optimizer steps taken. */
  step: number;
  /** The best epoch's score: validation accuracy, or training accuracy when there is no validation set (the name predates that case; checkpoints keep it). */
  bestValAcc: number;
  bestEpoch: number;
  /** Running sums of the epoch in progress, so a resumed epoch reports the same train loss. */
  epochLossSum: number;
  epochCorrect: number;
  epochSeen: number;
}

const META_KEY = 'vit_lens.loop_state';

export async function saveCheckpoint(
  file: string,
  weights: WeightMap,
  optimizer: Map<string, Tensor> | undefined,
  loop: LoopState,
): Promise<void> {
  const all = new Map<string, Tensor>(weights);
  if (optimizer) for (const [k, t] of optimizer) all.set(k, t);
  await writeSafetensors(file, all, { [META_KEY]: JSON.stringify(loop), format: 'pt' });
}

export async function loadCheckpoint(
  file: string,
): Promise<{ weights: WeightMap; optimizer: Map<string, Tensor>; loop?: LoopState }> {
  const { tensors, metadata } = await readSafetensors(file);
  const weights: WeightMap = new Map();
  const optimizer = new Map<string, Tensor>();
  for (const [k, t] of tensors) (k.startsWith('optim.') ? optimizer : weights).set(k, t);
  const raw = metadata[META_KEY];
  let loop: LoopState | undefined;
  if (raw) {
    try {
      loop = JSON.parse(raw) as LoopState;
    } catch {
      throw new Error(`${file}: checkpoint loop state is not valid JSON`);
    }
  }
  return { weights, optimizer, loop };
}
