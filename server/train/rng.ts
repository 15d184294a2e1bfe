/**
 * Seeded randomness. Every random choice is derived from (seed, purpose, epoch, index) rather than
 * drawn from one running stream, so a run resumed mid-epoch makes exactly the choices the
 * uninterrupted run would have made.
 */

/** mulberry32: small, fast, good enough for shuffles and crop boxes. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mix integers into one 32-bit seed (FNV-1a over their bytes, then a murmur finaliser). */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    let v = p >>> 0;
    for (let i = 0; i < 4; i++) {
      h ^= v & 0xff;
      h = Math.imul(h, 0x01000193);
      v >>>= 8;
    }
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const a = items.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Normal(0, std) truncated to ±2 std, as timm's trunc_normal_ initialiser. */
export function truncNormal(random: () => number, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n;) {
    const u = 1 - random();
    const v = random();
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    if (Math.abs(z) <= 2) out[i++] = z * std;
  }
  return out;
}

/** Standard deviation of a standard normal truncated to ±2 (JAX's truncated_normal initialisers divide by it). */
export const TRUNC_2SIGMA_STD = 0.87962566103423978;

/** Normal(0, std), Box–Muller (paper code's nn.initializers.normal: position embeddings, MLP biases). */
export function normal(random: () => number, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random()) * std;
  return out;
}

/** Uniform on [-bound, bound) (Xavier/Glorot uniform with bound sqrt(6 / (fanIn + fanOut))). */
export function uniform(random: () => number, n: number, bound: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * random() - 1) * bound;
  return out;
}

export const PURPOSE = { init: 1, split: 2, shuffle: 3, augment: 4 } as const;
