/** Learning-rate schedule: linear warmup, then cosine decay to 0 (the ViT paper's fine-tuning recipe). */
export function learningRate(step: number, baseLr: number, warmupSteps: number, totalSteps: number): number {
  if (step < warmupSteps) return (baseLr * (step + 1)) / warmupSteps;
  const decaySteps = Math.max(1, totalSteps - warmupSteps);
  const progress = Math.min(1, (step - warmupSteps) / decaySteps);
  return 0.5 * baseLr * (1 + Math.cos(Math.PI * progress));
}
