/**
 * `npm run bench:audit-duplicates`: which representation finds near-duplicates — the model's [CLS]
 * features or the audit's 16×16 pixel thumbnail? Originals are real pictures: scikit-image's sample
 * photos, faces from its LFW subset and Fashion-MNIST test images. Copies of some of them are resized,
 * re-encoded as JPEG (quality 60) or centre-cropped to 90%. For each model (the built-in Fashion-MNIST
 * model and the test fixtures' ViTs) and representation, over all pairs of images:
 *   AP: average precision of the copy pairs when all pairs are ranked by similarity (1 = every copy
 *       pair above every other pair);
 *   found@0FP: copy pairs scoring above the most similar pair that is not a copy;
 *   NN: copies whose nearest other image is their original.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { normalisedRows } from '../server/audit/neighbours';
import { THUMB, thumbnail } from '../server/audit/thumbnail';
import { Engine } from '../server/engine';
import { FASHION_MNIST_DIR, readIdx } from '../server/train/fashionMnist';
import { folderLoader } from '../server/train/imageLoader';
import { SKIMAGE_DATA } from '../test/unit/auditData';

const root = path.join(__dirname, '..');
const MODELS = [
  path.join(root, 'models', 'default'),
  path.join(root, 'test', 'fixtures', 'vit-tiny', 'hf'),
  path.join(root, 'test', 'fixtures', 'vit-prelogits', 'hf'),
];
const PHOTOS = [
  'astronaut.png',
  'brick.png',
  'camera.png',
  'cell.png',
  'chelsea.png',
  'coffee.png',
  'coins.png',
  'color.png',
  'grass.png',
  'gravel.png',
  'horse.png',
  'hubble_deep_field.jpg',
  'ihc.png',
  'logo.png',
  'microaneurysms.png',
  'moon.png',
  'motorcycle_left.png',
  'motorcycle_right.png',
  'page.png',
  'phantom.png',
  'retina.jpg',
  'rocket.jpg',
  'text.png',
];

type Copy = 'resized' | 'jpeg' | 'crop';
const COPIES: Copy[] = ['resized', 'jpeg', 'crop'];

async function copyOf(data: Buffer, how: Copy): Promise<Buffer> {
  const img = sharp(data);
  const { width = 1, height = 1 } = await img.metadata();
  if (how === 'jpeg') return img.flatten().jpeg({ quality: 60 }).toBuffer();
  if (how === 'crop') {
    const [w, h] = [Math.round(width * 0.9), Math.round(height * 0.9)];
    return img
      .extract({ left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h })
      .png()
      .toBuffer();
  }
  // Small images (Fashion-MNIST, faces) are enlarged, photos shrunk: both are how copies arise.
  const f = width < 100 ? 2 : 0.5;
  return img
    .resize(Math.round(width * f), Math.round(height * f), { kernel: 'lanczos3' })
    .png()
    .toBuffer();
}

/** Every image file and, for copies, the index of its original. */
async function writeImages(
  dir: string,
): Promise<{ files: string[]; originalOf: number[]; group: string[]; kind: string[] }> {
  const files: string[] = [];
  const originalOf: number[] = [];
  const group: string[] = [];
  const kind: string[] = [];
  const add = async (name: string, data: Buffer, from: number, g: string, k = 'original') => {
    kind.push(k);
    const file = path.join(dir, name);
    fs.writeFileSync(file, data);
    files.push(file);
    originalOf.push(from);
    group.push(g);
  };
  const originals: { name: string; data: Buffer; group: string }[] = PHOTOS.map(p => ({
    name: `photo-${p.replace(/\.\w+$/, '')}.png`,
    data: fs.readFileSync(path.join(SKIMAGE_DATA, p)),
    group: 'photo',
  }));
  // LFW subset: 200 grey 25×25 faces, float64 in [0, 1] (.npy, header then data).
  const npy = fs.readFileSync(path.join(SKIMAGE_DATA, 'lfw_subset.npy'));
  const headerLen = npy.readUInt16LE(8);
  const faces = new Float64Array(npy.buffer.slice(npy.byteOffset + 10 + headerLen, npy.byteOffset + npy.byteLength));
  for (let i = 0; i < 100; i++) {
    const px = Uint8Array.from(faces.subarray(i * 625, (i + 1) * 625), v => Math.round(v * 255));
    originals.push({
      name: `face-${i}.png`,
      data: await sharp(Buffer.from(px), { raw: { width: 25, height: 25, channels: 1 } })
        .png()
        .toBuffer(),
      group: 'face',
    });
  }
  const test = readIdx(FASHION_MNIST_DIR, 't10k');
  for (let i = 0; i < 300; i++) {
    const px = Buffer.from(test.pixels.subarray(i * 784, (i + 1) * 784));
    originals.push({
      name: `fmnist-${i}.png`,
      data: await sharp(px, { raw: { width: 28, height: 28, channels: 1 } })
        .png()
        .toBuffer(),
      group: 'fmnist',
    });
  }
  for (const o of originals) await add(o.name, o.data, -1, o.group);
  // Copies: every photo, every 5th face and every 15th Fashion-MNIST image, each way.
  for (let i = 0; i < originals.length; i++) {
    const o = originals[i];
    const idx = Number(/-(\d+)\.png$/.exec(o.name)?.[1] ?? 0);
    if (o.group === 'face' && idx % 5) continue;
    if (o.group === 'fmnist' && idx % 15) continue;
    for (const how of COPIES)
      await add(`${o.name.replace('.png', '')}.${how}.png`, await copyOf(o.data, how), i, o.group, how);
  }
  return { files, originalOf, group, kind };
}

function score(U: Float32Array, n: number, dim: number, originalOf: number[], subset: (i: number) => boolean) {
  const sims: { s: number; copy: boolean }[] = [];
  let nn = 0;
  let copies = 0;
  const idx = [...Array(n).keys()].filter(subset);
  for (const i of idx) {
    let best = -Infinity;
    let bestJ = -1;
    for (const j of idx) {
      if (j === i) continue;
      let s = 0;
      for (let d = 0; d < dim; d++) s += U[i * dim + d] * U[j * dim + d];
      if (j > i) sims.push({ s, copy: originalOf[j] === i || originalOf[i] === j });
      if (s > best) [best, bestJ] = [s, j];
    }
    if (originalOf[i] >= 0) {
      copies++;
      if (bestJ === originalOf[i]) nn++;
    }
  }
  sims.sort((a, b) => b.s - a.s);
  const positives = sims.filter(p => p.copy).length;
  let hits = 0;
  let ap = 0;
  sims.forEach((p, r) => p.copy && (ap += ++hits / (r + 1)));
  const firstNegative = sims.findIndex(p => !p.copy);
  return {
    ap: ap / Math.max(1, positives),
    found: `${sims.slice(0, firstNegative).length}/${positives}`,
    nn: `${nn}/${copies}`,
  };
}

async function main(): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-bench-dup-'));
  try {
    const { files, originalOf, group, kind } = await writeImages(tmp);
    const n = files.length;
    console.log(`${n} images (${originalOf.filter(o => o >= 0).length} copies: resized, JPEG q60, 90% centre crop)`);
    console.log(
      'model'.padEnd(34) +
        'representation'.padEnd(16) +
        'subset'.padEnd(9) +
        'AP'.padEnd(7) +
        'found@0FP'.padEnd(11) +
        'NN',
    );
    for (const model of MODELS) {
      const engine = new Engine({ cacheDir: path.join(tmp, 'cache') });
      await engine.load(model);
      const pre = engine.featureIdentity().preprocess;
      const [h, w] = pre.size;
      const load = folderLoader(pre);
      let dim = 0;
      const F: Float32Array[] = [];
      const T = new Float32Array(n * THUMB * THUMB);
      for (let i = 0; i < n; i++) {
        const px = await load({ file: files[i], label: 0 });
        const f = await engine.features(px, 1);
        dim = f.size;
        F.push(f.values);
        T.set(thumbnail(px, 0, h, w), i * THUMB * THUMB);
      }
      const X = new Float32Array(n * dim);
      F.forEach((f, i) => X.set(f, i * dim));
      const [Uf, Ut] = [normalisedRows(X, n, dim), normalisedRows(T, n, THUMB * THUMB, true)];
      // Both: the two unit vectors side by side, scaled so that the cosine is the mean of the two cosines.
      const both = new Float32Array(n * (dim + THUMB * THUMB));
      for (let i = 0; i < n; i++) {
        both.set(
          Uf.subarray(i * dim, (i + 1) * dim).map(v => v * Math.SQRT1_2),
          i * (dim + THUMB * THUMB),
        );
        both.set(
          Ut.subarray(i * THUMB * THUMB, (i + 1) * THUMB * THUMB).map(v => v * Math.SQRT1_2),
          i * (dim + THUMB * THUMB) + dim,
        );
      }
      const reps: [string, Float32Array, number][] = [
        [`[CLS] ${dim}-d`, Uf, dim],
        [`thumbnail ${THUMB}²`, Ut, THUMB * THUMB],
        ['mean of both', both, dim + THUMB * THUMB],
      ];
      for (const [name, U, d] of reps) {
        for (const sub of ['all', 'photo', 'face', 'fmnist', ...COPIES]) {
          // A copy kind: the originals and that kind of copies only.
          const r = score(
            U,
            n,
            d,
            originalOf,
            i =>
              sub === 'all' ||
              group[i] === sub ||
              kind[i] === sub ||
              ((COPIES as string[]).includes(sub) && originalOf[i] < 0),
          );
          console.log(
            `${path.relative(root, model).padEnd(34)}${name.padEnd(16)}${sub.padEnd(9)}${r.ap.toFixed(3).padEnd(7)}${r.found.padEnd(11)}${r.nn}`,
          );
        }
      }
      await engine.dispose();
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
