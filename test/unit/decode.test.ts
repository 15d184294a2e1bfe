/**
 * Image decoding against Pillow, the decoder Hugging Face uses: `transformers.image_utils.load_image`
 * is `ImageOps.exif_transpose(Image.open(f)).convert("RGB")`. scripts/make_image_fixtures.py wrote
 * one photo crop in every input variant in test/fixtures/images/ together with Pillow's decoding of
 * each (manifest.json lists them); here `decodeImageFile` must give the same size and pixels, and the
 * whole preprocessing must run on each. Bad inputs must fail with an ImageError naming the file.
 *
 * Measured with sharp 0.35.5 / libvips 8.18.7 against Pillow 9.4.0 (libjpeg-turbo 2.1.5):
 * every fixture decodes with max abs diff 0, JPEG (baseline, progressive, gray, EXIF 2–8, CMYK)
 * and 16-bit PNG included, apart from the transparent pixels of transparent.gif (see there).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { decodeImageFile, defaultPreprocess, ImageError, resizeForModel, toPixelValues } from '../../server/preprocess';

const dir = path.join(__dirname, '..', 'fixtures', 'images');
const badDir = path.join(__dirname, '..', 'fixtures', 'bad');

interface Entry {
  width: number;
  height: number;
  format: string;
  pil_mode: string;
  stored_size: [number, number];
  exif_orientation?: number;
  frames?: number;
  reference: string;
  e2e_reference: string;
  compare: 'exact' | 'approx' | 'approx-scaled' | 'exact-opaque' | 'unsupported';
  why: string;
  transparent_rgb?: [number, number, number];
  transparent_pixels?: number;
  pil_literal_saturated_fraction?: number;
}
const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as {
  files: Record<string, Entry>;
};

/**
 * Bounds for the formats where two decoders may legitimately round differently: JPEG (libjpeg-turbo
 * in Pillow vs mozjpeg in sharp: IDCT and chroma upsampling), 16-bit → 8-bit, and CMYK. Measured:
 * max 0, mean 0 for all of them, so the bound only leaves room for a ±1 rounding on a few pixels.
 */
const APPROX = { maxAbs: 1, meanAbs: 0.05 };
/** End-to-end (our decode + resize vs Pillow decode + Pillow bilinear resize to 24×24), as in parity.test.ts. */
const E2E_MEAN_ABS = 0.5; // measured 0.24–0.29 on the photo fixtures
/** photo1.bmp is a dithered 0/255 pattern, the worst case for bilinear rounding: measured 0.96 mean. */
const E2E_MEAN_ABS_BILEVEL = 1.0;

function diff(
  a: Uint8Array,
  b: Uint8Array,
  mask?: (pixel: number) => boolean,
): { max: number; mean: number; n: number } {
  assert.equal(a.length, b.length, 'pixel buffers differ in length');
  let max = 0;
  let sum = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    if (mask && !mask(Math.floor(i / 3))) continue;
    const d = Math.abs(a[i] - b[i]);
    if (d > max) max = d;
    sum += d;
    n++;
  }
  return { max, mean: n ? sum / n : 0, n };
}

const read = (name: string) => fs.readFileSync(path.join(dir, name));

describe('decoding matches Pillow (HF load_image) on every input variant', () => {
  test('every image in test/fixtures/images is in the manifest, and the manifest covers the variants', () => {
    const files = fs
      .readdirSync(dir)
      .filter(f => fs.statSync(path.join(dir, f)).isFile() && !f.endsWith('.bin') && f !== 'manifest.json');
    assert.deepEqual(files.sort(), Object.keys(manifest.files).sort());
    const modes = new Set(Object.values(manifest.files).map(e => e.pil_mode));
    for (const m of ['RGB', 'RGBA', 'L', 'LA', 'P', 'I', 'CMYK'])
      assert.ok(modes.has(m), `no fixture in Pillow mode ${m}`);
    const formats = new Set(Object.values(manifest.files).map(e => e.format));
    for (const f of ['PNG', 'JPEG', 'WEBP', 'GIF', 'BMP', 'TIFF']) assert.ok(formats.has(f), `no ${f} fixture`);
  });

  for (const [name, e] of Object.entries(manifest.files)) {
    if (e.compare === 'unsupported') continue;
    test(`${name} (${e.format} ${e.pil_mode}${e.exif_orientation ? `, EXIF orientation ${e.exif_orientation}` : ''}): ${e.compare}`, async () => {
      const img = await decodeImageFile(path.join(dir, name));
      assert.deepEqual([img.width, img.height], [e.width, e.height], 'size after EXIF orientation');
      assert.equal(img.rgb.length, e.width * e.height * 3);
      const ref = read(e.reference);
      let d: { max: number; mean: number; n: number };
      if (e.compare === 'exact-opaque') {
        // GIF transparency: Pillow's convert("RGB") shows the palette colour of the transparent index
        // (Pillow 9.4, first frame kept in P mode); libvips gives transparent black, and we drop alpha.
        // Known divergence, only on pixels whose colour is undefined; every other pixel must match.
        const [tr, tg, tb] = e.transparent_rgb!;
        const transparent = (p: number) => ref[3 * p] === tr && ref[3 * p + 1] === tg && ref[3 * p + 2] === tb;
        const clear = diff(img.rgb, ref, transparent);
        assert.equal(clear.n / 3, e.transparent_pixels, 'transparent pixel count');
        console.log(
          `${name}: ${clear.n / 3} transparent pixels differ from Pillow by max ${clear.max}, mean ${clear.mean.toFixed(1)} (ours are black)`,
        );
        d = diff(img.rgb, ref, p => !transparent(p));
        assert.equal(d.max, 0, `opaque pixels: max abs diff ${d.max}`);
      } else {
        d = diff(img.rgb, ref);
        if (e.compare === 'exact') {
          assert.equal(d.max, 0, `max abs diff ${d.max} (mean ${d.mean.toFixed(4)}), expected identical pixels`);
        } else {
          assert.ok(
            d.max <= APPROX.maxAbs && d.mean <= APPROX.meanAbs,
            `max abs diff ${d.max}, mean ${d.mean.toFixed(4)}; bound ${APPROX.maxAbs} / ${APPROX.meanAbs}`,
          );
        }
      }
      console.log(`${name}: max abs ${d.max}, mean abs ${d.mean.toFixed(4)}`);
    });
  }

  test('EXIF orientations 5–8 swap width and height; 6 is a 90° clockwise turn', async () => {
    for (const [name, e] of Object.entries(manifest.files)) {
      if (!e.exif_orientation) continue;
      const swapped = e.exif_orientation >= 5;
      assert.deepEqual([e.width, e.height], swapped ? [e.stored_size[1], e.stored_size[0]] : e.stored_size, name);
    }
    // Orientation 6: the stored image's bottom-left pixel is shown top-left.
    const stored = await decodeImageFile(path.join(dir, 'photo.jpg'));
    const turned = await decodeImageFile(path.join(dir, 'exif-rotate-6.jpg'));
    assert.deepEqual([turned.width, turned.height], [stored.height, stored.width]);
    const bottomLeft = (stored.height - 1) * stored.width * 3;
    assert.deepEqual([...turned.rgb.subarray(0, 3)], [...stored.rgb.subarray(bottomLeft, bottomLeft + 3)]);
  });

  test('anim.gif: the first of its 2 frames is decoded', async () => {
    assert.equal(manifest.files['anim.gif'].frames, 2);
    const img = await decodeImageFile(path.join(dir, 'anim.gif'));
    assert.equal(img.height, 31, 'not the frames stacked');
    // The second frame is the photo rotated 180° and inverted: far from frame 1 on every measure.
    assert.equal(diff(img.rgb, read(manifest.files['anim.gif'].reference)).max, 0);
  });

  test('gray16.png: the high byte, unlike Pillow, whose I→RGB conversion saturates', async () => {
    // Pillow opens 16-bit gray PNG as mode "I" and convert("RGB") clips to 0..255 without scaling,
    // so load_image() gives a white picture (the generator measured the saturated fraction).
    // We deliberately scale like 16-bit RGB (where Pillow keeps the high byte) instead.
    const e = manifest.files['gray16.png'];
    assert.equal(e.pil_mode, 'I');
    assert.equal(e.pil_literal_saturated_fraction, 1);
    const img = await decodeImageFile(path.join(dir, 'gray16.png'));
    assert.ok(
      img.rgb.some(v => v < 255),
      'our decoding is not the saturated one',
    );
  });

  test('photo-rle8.bmp: RLE-compressed BMP is refused with a clear message (Pillow reads it; bmp-ts mis-decodes it)', async () => {
    const file = path.join(dir, 'photo-rle8.bmp');
    await assert.rejects(decodeImageFile(file), (err: unknown) => {
      assert.ok(err instanceof ImageError);
      assert.ok(err.message.startsWith(`${file}: `), err.message);
      assert.match(err.message, /RLE8-compressed BMP is not supported/);
      return true;
    });
  });
});

describe('every variant goes through the whole preprocessing', () => {
  for (const [name, e] of Object.entries(manifest.files)) {
    if (e.compare === 'unsupported') continue;
    test(`${name}: decode → resize → pixel values; 24×24 agrees with Pillow's bilinear resize`, async () => {
      const img = await decodeImageFile(path.join(dir, name));
      const cfg24 = defaultPreprocess([24, 24]);
      const small = await resizeForModel(img, cfg24);
      const pil = read(e.e2e_reference);
      // transparent.gif is left out: its transparent pixels differ by design (see above) and bleed into the resize.
      if (!e.transparent_rgb) {
        const d = diff(small, pil);
        const bound = name === 'photo1.bmp' ? E2E_MEAN_ABS_BILEVEL : E2E_MEAN_ABS;
        assert.ok(d.mean <= bound, `mean abs diff to Pillow ${d.mean.toFixed(3)} levels (bound ${bound})`);
        console.log(`${name}: 24×24 vs Pillow max abs ${d.max}, mean abs ${d.mean.toFixed(3)}`);
      }

      // And the default 224×224 ViT input (upscaling), for each format.
      const cfg = defaultPreprocess([224, 224]);
      const px = toPixelValues(await resizeForModel(img, cfg), cfg);
      assert.equal(px.length, 3 * 224 * 224);
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of px) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      assert.ok(lo >= -1 && hi <= 1 && hi > lo, `pixel values in [${lo}, ${hi}]`);
    });
  }
});

describe('bad inputs fail with an ImageError that names the file and the problem', () => {
  async function rejects(file: string, problem: RegExp): Promise<void> {
    await assert.rejects(decodeImageFile(file), (err: unknown) => {
      assert.ok(err instanceof ImageError, `not an ImageError: ${String(err)}`);
      assert.equal(err.file, file);
      assert.ok(err.message.startsWith(`${file}: `), err.message);
      assert.match(err.message, problem);
      return true;
    });
  }

  test('empty file', () => rejects(path.join(badDir, 'zero.png'), /empty \(0 bytes\)/));
  test('truncated PNG', () => rejects(path.join(badDir, 'truncated.png'), /corrupt or truncated/));
  test('text file named .jpg', () =>
    rejects(path.join(badDir, 'not-an-image.jpg'), /not a readable image.*supported: png, jpeg/));
  test('truncated BMP (header fine, half the rows missing)', () =>
    rejects(path.join(dir, 'bad', 'truncated.bmp'), /BMP.*truncated: \d+ bytes of pixel data missing/));
  test('a folder', () => rejects(dir, /is a folder, not an image/));
  test('a missing file', () => rejects(path.join(dir, 'no-such-image.png'), /file not found/));

  for (const [name, file] of [
    ['PNG', path.join(badDir, 'bomb.png')],
    ['BMP', path.join(dir, 'bad', 'bomb.bmp')],
  ]) {
    test(`decompression bomb via ${name} (header claims 40000×40000) is refused before decoding`, async () => {
      const rss0 = process.memoryUsage().rss;
      const t0 = performance.now();
      await rejects(file, /40000×40000 \(1600 megapixels\), over the 179-megapixel limit; .*decompression bomb/);
      const ms = performance.now() - t0;
      const grewMb = (process.memoryUsage().rss - rss0) / 2 ** 20;
      // Decoding 1.6 gigapixels would take seconds and gigabytes; refusing from the header takes ~1 ms.
      assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
      assert.ok(grewMb < 64, `memory grew by ${grewMb.toFixed(0)} MiB`);
      assert.ok(fs.statSync(file).size < 4096, 'the fixture itself is tiny');
    });
  }
});
