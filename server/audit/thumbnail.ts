/**
 * A 16×16 grey thumbnail of the model's input, for what the [CLS] features are bad at: features of a
 * model trained on a few classes collapse towards the class prototypes, so two different trousers
 * can be as close as an image and its resized copy, and a photo of a cat can land among the bags.
 * Pixels keep that distinction. Area averages of the preprocessed (resized, normalised) tensor, so
 * resized and re-encoded copies of an image give nearly the same thumbnail.
 */
export const THUMB = 16;

/** CHW pixels (3 × h × w) → THUMB² grey values, area-averaged. */
export function thumbnail(pixels: Float32Array, offset: number, h: number, w: number): Float32Array {
  const out = new Float32Array(THUMB * THUMB);
  const count = new Float32Array(THUMB * THUMB);
  const plane = h * w;
  for (let y = 0; y < h; y++) {
    const ty = Math.floor((y * THUMB) / h);
    for (let x = 0; x < w; x++) {
      const t = ty * THUMB + Math.floor((x * THUMB) / w);
      const p = offset + y * w + x;
      out[t] += (pixels[p] + pixels[p + plane] + pixels[p + 2 * plane]) / 3;
      count[t]++;
    }
  }
  for (let t = 0; t < out.length; t++) out[t] /= Math.max(1, count[t]);
  return out;
}
