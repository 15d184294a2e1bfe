// `npm run demo`: the main job on the built-in model — classify the sample images and write an
// attention-rollout overlay — through the real CLI (dist/cli.js).
import { existsSync, readdirSync } from 'fs';
import { join } from 'path';
import { spawnSync } from 'child_process';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const builtIn = join(root, 'models', 'default');
const hasBuiltIn = existsSync(join(builtIn, 'config.json'));
// Until the trained built-in model exists, fall back to the small random-weight test model.
const model = hasBuiltIn ? builtIn : join(root, 'test', 'fixtures', 'vit-tiny', 'hf');
const imageDir =
  hasBuiltIn && existsSync(join(root, 'samples')) ? join(root, 'samples') : join(root, 'test', 'fixtures', 'photos');
const images = readdirSync(imageDir)
  .filter(f => /\.(png|jpe?g|webp|gif|bmp|tiff?)$/i.test(f))
  .sort()
  .map(f => join(imageDir, f));
if (images.length === 0) throw new Error(`no images in ${imageDir}`);
if (!hasBuiltIn)
  console.log('Note: no built-in model yet; using the random-weight test model (predictions are meaningless).\n');

function cli(...args) {
  console.log(`$ vit-lens ${args.map(a => (a.startsWith(root) ? a.slice(root.length + 1) : a)).join(' ')}`);
  const r = spawnSync(process.execPath, [join(root, 'dist', 'cli.js'), ...args], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
  console.log('');
}

// With the built-in model present, no --model at all: that is the default users get.
const modelArgs = hasBuiltIn ? [] : ['--model', model];
cli('info', ...modelArgs);
cli('classify', ...images, ...modelArgs, '--top-k', '3');
const out = join(root, 'demo-output', 'rollout-overlay.png');
cli('explain', images[0], ...modelArgs, '--out', out);
