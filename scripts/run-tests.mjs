// Runs every unit and integration test file with Node's own test runner (TypeScript through tsx).
// Node 20's --test takes no globs, so the files are listed here.
import { readdirSync } from 'fs';
import { join } from 'path';
import { spawnSync } from 'child_process';

const suites = process.argv.slice(2).length ? process.argv.slice(2) : ['test/unit', 'test/integration'];
const files = suites.flatMap(dir =>
  dir.endsWith('.ts')
    ? [dir]
    : readdirSync(dir)
        .filter(f => f.endsWith('.test.ts'))
        .sort()
        .map(f => join(dir, f)),
);
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
