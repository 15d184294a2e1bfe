/** The from-scratch advice the Fine-tune form and the CLI's start log show for small datasets. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import { mkdtempSync, rmSync } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SCRATCH_FEW_IMAGES, scratchAdvice } from '../../common/scratchAdvice';
import { makeColorDataset } from '../fixtures/train/makeDataset';

test('from scratch on a few hundred images gets the advice; more images or a pretrained model do not', () => {
  const advice = scratchAdvice('scratch:tiny', 320);
  assert.ok(
    advice && advice.includes('scratch:tiny') && advice.includes('320 training images') && /pretrained/.test(advice),
    advice,
  );
  assert.equal(scratchAdvice('scratch:tiny', SCRATCH_FEW_IMAGES), undefined);
  assert.equal(scratchAdvice('/models/vit-base-patch16-224', 320), undefined);
  assert.ok(scratchAdvice('scratch:base', 1)?.includes('1 training image is'));
});

test("the CLI's start log gives the advice before training a scratch model on a small folder", async () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'vit-lens-advice-'));
  try {
    await makeColorDataset(path.join(tmp, 'ds'), { perClass: 3, width: 16, height: 16 });
    const args = [
      '--import',
      'tsx',
      path.join(__dirname, '..', '..', 'server', 'cli.ts'),
      'train',
      path.join(tmp, 'ds'),
      '--model',
      'scratch:tiny',
      '--mode',
      'full',
      '--image-size',
      '16',
      '--patch',
      '8',
      '--epochs',
      '1',
      '--batch-size',
      '6',
      '--backend',
      'wasm',
      '--out',
      path.join(tmp, 'run'),
    ];
    const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stderr.split('\n');
    assert.match(lines[0], /^note: scratch:tiny from scratch on 6 training images is unlikely to work well/, r.stderr);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
