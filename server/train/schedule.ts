/** Learning-rate schedule: linear warmup, then cosine decay to 0 (the ViT paper's fine-tuning recipe). */
export function learningRate(step: number, baseLr: number, warmupSteps: number, totalSteps: number): number {
  if (step < warmupSteps) return (baseLr * (step + 1)) / warmupSteps;
  const decaySteps = Math.max(1, totalSteps - warmupSteps);
  const progress = Math.min(1, (step - warmupSteps) / decaySteps);
  return 0.5 * baseLr * (1 + Math.cos(Math.PI * progress));
}

/**
 * Micro-batches per epoch and optimizer steps in the run, and the config with an automatic warmup
 * (-1: 5% of the steps) resolved, to be recorded, since it depends on the dataset size.
 */
export function stepPlan<C extends { batchSize: number; accumulate: number; epochs: number; warmupSteps: number }>(
  trainImages: number,
  config: C,
): { microPerEpoch: number; totalSteps: number; config: C } {
  const microPerEpoch = Math.ceil(trainImages / config.batchSize);
  const totalSteps = Math.ceil(microPerEpoch / config.accumulate) * config.epochs;
  if (config.warmupSteps < 0) config = { ...config, warmupSteps: Math.ceil(0.05 * totalSteps) };
  return { microPerEpoch, totalSteps, config };
}
