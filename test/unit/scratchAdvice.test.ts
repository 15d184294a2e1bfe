/** The from-scratch advice the Fine-tune form and the CLI's start log show for small datasets. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SCRATCH_FEW_IMAGES, scratchAdvice } from '../../extension/runs/scratchAdvice';

test('from scratch on a few hundred images gets the advice; more images or a pretrained model do not', () => {
  const advice = scratchAdvice('scratch:tiny', 320);
  assert.ok(advice && advice.includes('scratch:tiny') && advice.includes('320 training images') && /pretrained/.test(advice), advice);
  assert.equal(scratchAdvice('scratch:tiny', SCRATCH_FEW_IMAGES), undefined);
  assert.equal(scratchAdvice('/models/vit-base-patch16-224', 320), undefined);
  assert.ok(scratchAdvice('scratch:base', 1)?.includes('1 training image is'));
});
