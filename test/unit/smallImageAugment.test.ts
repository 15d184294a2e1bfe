/** `--augment` on small inputs is a flip only (README, "Training from scratch"); larger inputs keep random-resized-crop. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultPreprocess, toPixelValues } from '../../server/preprocess';
import { augmentedPixels, defaultAugment, flipChw } from '../../server/train/imageLoader';
import { mulberry32 } from '../../server/train/rng';

const same = (a: Float32Array, b: Float32Array) => a.every((v, i) => v === b[i]);

test('28-px inputs get the whole image or its mirror; 96-px inputs get crops', async () => {
  for (const side of [28, 96]) {
    const pre = defaultPreprocess([side, side]);
    const random = mulberry32(1);
    const rgb = Buffer.from(Array.from({ length: side * side * 3 }, () => Math.floor(random() * 256)));
    const plain = toPixelValues(rgb, pre);
    const mirror = plain.slice();
    flipChw(mirror, 3, side, side);
    let whole = 0;
    for (let i = 0; i < 20; i++) {
      const x = await augmentedPixels(rgb, side, side, pre, defaultAugment([side, side]), random);
      if (same(x, plain) || same(x, mirror)) whole++;
    }
    assert.equal(whole, side <= 64 ? 20 : 0, `${side} px: ${whole} of 20 augmented samples were the whole image`);
  }
});
