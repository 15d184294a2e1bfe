/**
 * What models are called in the editor (status bar, panel header) and what a hub download's
 * notification says: the built-in demo by what it is, a fine-tuning run's export by the run's name,
 * a download by file, megabytes and percent (the notification's title already names the model).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { downloadMessage, folderModelName, resolveModel } from '../../server/model/modelSource';

const ROOT = path.resolve(__dirname, '../..');

test('the built-in model is named "Fashion-MNIST demo (10 clothing classes)", by its config.json', async () => {
  assert.equal(await folderModelName(path.join(ROOT, 'models/default')), 'Fashion-MNIST demo (10 clothing classes)');
  const m = await resolveModel(path.join(ROOT, 'models/default'), {
    cacheDir: await fsp.mkdtemp(path.join(os.tmpdir(), 'vit-lens-name-')),
  });
  assert.equal(m.name, 'Fashion-MNIST demo (10 clothing classes)');
});

test("a run's export folder is named after the run; other folders by their own name", async () => {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'vit-lens-name-'));
  const exp = path.join(tmp, 'runs', 'colors-2024-05-01-1200', 'export');
  await fsp.mkdir(exp, { recursive: true });
  await fsp.writeFile(path.join(exp, 'config.json'), JSON.stringify({ model_type: 'vit' }));
  assert.equal(await folderModelName(exp), 'colors-2024-05-01-1200');
  assert.equal(await folderModelName(`${exp}/`), 'colors-2024-05-01-1200');
  assert.equal(await folderModelName(path.join(ROOT, 'test/fixtures/vit-tiny/hf')), 'hf');
  // A display name that is not a short string is ignored.
  await fsp.writeFile(path.join(exp, 'config.json'), JSON.stringify({ vit_lens_display_name: 'x'.repeat(200) }));
  assert.equal(await folderModelName(exp), 'colors-2024-05-01-1200');
  await fsp.rm(tmp, { recursive: true, force: true });
});

test('the download message: file, MB and percent, not the model id again', () => {
  assert.equal(
    downloadMessage('model.safetensors', 86_000_000, 346_000_000),
    'model.safetensors: 86.0 MB of 346.0 MB (24%)',
  );
  assert.equal(downloadMessage('config.json', 700, 700), 'config.json: 700 bytes of 700 bytes (100%)');
  assert.equal(downloadMessage('model.safetensors', 5_500_000), 'model.safetensors: 5.5 MB');
});
