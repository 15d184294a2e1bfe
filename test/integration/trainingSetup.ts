/**
 * What the training CLI tests set up: a temp folder with a small colour dataset (made before the
 * tests) and a cache folder, removed after them, and the built CLI run with that cache. Call it at
 * the top level of a test file: it registers the `before` and `after` hooks there.
 */
import { after, before } from 'node:test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeColorDataset } from '../fixtures/train/makeDataset';
import { CliOptions, CliRun, runCli } from './runCli';

export interface TrainingSetup {
  tmp: string;
  /** tmp/ds: classes red, green and blue. */
  dataset: string;
  /** tmp/cache, also VIT_LENS_CACHE for every CLI run. */
  cacheDir: string;
  cli(args: string[], opts?: Pick<CliOptions, 'onStderr'>): Promise<CliRun>;
}

export function trainingSetup(name: string, data: Parameters<typeof makeColorDataset>[1]): TrainingSetup {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `vit-lens-${name}-`));
  const dataset = path.join(tmp, 'ds');
  const cacheDir = path.join(tmp, 'cache');
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  before(async () => {
    await makeColorDataset(dataset, data);
  });
  return {
    tmp,
    dataset,
    cacheDir,
    cli: (args, opts = {}) => runCli(args, { ...opts, env: { VIT_LENS_CACHE: cacheDir } }),
  };
}
