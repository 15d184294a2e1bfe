/**
 * The Fine-tune form's Backend and PyTorch rows: the thread count the run will get, where the
 * interpreter came from (vitLens.pythonPath, the Python extension's API, python3 on PATH), a Python
 * extension that is slow or throws, and the text when torch is missing (the CLI's own answer, from
 * dist/cli.js: run `npm run build` first).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backendChoices, backendSummary, probeTrainBackends } from '../../extension/runs/trainBackends';
import { editorTrainThreads } from '../../extension/runs/trainArgs';
import {
  interpreterPath,
  interpreterText,
  onPath,
  pickInterpreter,
  pythonExtensionInterpreter,
  torchProblem,
  torchRow,
  torchText,
} from '../../extension/runs/torchInterpreter';
import { runCli } from '../../extension/runs/trainerProcess';

const cliJs = path.join(__dirname, '..', '..', 'dist', 'cli.js');

test('the Backend row states the threads the run will train on', async () => {
  // The real CLI (dist/cli.js), asked as the form asks it.
  const asked: string[][] = [];
  const cli = (args: string[]) => (asked.push(args), runCli(cliJs, args, AbortSignal.timeout(60_000)));
  const eight = await probeTrainBackends(cli, editorTrainThreads(8));
  assert.deepEqual(asked[0], ['train', '--list-backends', '--json', '--threads', '7']);
  assert.equal(backendSummary('auto', eight), 'Auto: CPU · 7 threads (wasm + fused kernels)');
  assert.equal(backendSummary('wasm', eight), 'CPU · 7 threads (wasm + fused kernels)');
  assert.equal(
    backendChoices(eight).find(c => c.key === 'wasm')!.description,
    'CPU · 7 threads (wasm + fused kernels)',
  );
  // The JavaScript kernels do not train data-parallel on worker threads.
  assert.equal(
    'listing' in eight && eight.listing.backends.find(b => b.name === 'cpu')!.device,
    'CPU · 1 thread (TF.js JavaScript kernels)',
  );
  // One or two cores: the editor keeps one, the run trains on one.
  for (const cores of [1, 2]) {
    const p = await probeTrainBackends(cli, editorTrainThreads(cores));
    assert.deepEqual(asked.at(-1)!.slice(-2), ['--threads', '1']);
    assert.equal(backendSummary('auto', p), 'Auto: CPU · 1 thread (wasm + fused kernels)');
  }
});

/** A stand-in for ms-python.python: the API shape @vscode/python-extension declares. */
function pythonExtension(exportsValue: unknown, activate?: () => Promise<unknown>) {
  return {
    isActive: !activate,
    exports: activate ? undefined : exportsValue,
    activate: activate ?? (async () => exportsValue),
  };
}
const uri = (fsPath: string) => ({ fsPath }) as unknown as import('vscode').Uri;
const passedOver = async (ext: ReturnType<typeof pythonExtension>) =>
  ((await pythonExtensionInterpreter(ext, undefined)) as { passedOver: string }).passedOver;

test("the Python extension's selected interpreter, through its environments API", async () => {
  const resource = uri('/ws');
  const seen: unknown[] = [];
  const api = {
    environments: {
      getActiveEnvironmentPath: (r: unknown) => (seen.push(r), { id: 'venv', path: '/ws/.venv' }),
      resolveEnvironment: async (e: { path: string }) =>
        e.path === '/ws/.venv' ? { executable: { uri: uri('/ws/.venv/bin/python') } } : undefined,
    },
  };
  // Not yet active: activated, and its exports used.
  assert.deepEqual(
    await pythonExtensionInterpreter(
      pythonExtension(api, async () => api),
      resource,
    ),
    {
      python: '/ws/.venv/bin/python',
    },
  );
  assert.deepEqual(seen, [resource]);
  assert.deepEqual(await pythonExtensionInterpreter(pythonExtension(api), resource), {
    python: '/ws/.venv/bin/python',
  });
  // A selected environment that does not resolve, or has no interpreter (conda without python).
  const invalid = { environments: { ...api.environments, resolveEnvironment: async () => undefined } };
  assert.match(await passedOver(pythonExtension(invalid)), /\/ws\/\.venv is not valid/);
  const noExe = {
    environments: { ...api.environments, resolveEnvironment: async () => ({ executable: { uri: undefined } }) },
  };
  assert.match(await passedOver(pythonExtension(noExe)), /has no python executable/);
  // The older API: execCommand of one element is the interpreter; a launcher (conda run …) is not.
  const old = (execCommand: string[]) => ({ settings: { getExecutionDetails: () => ({ execCommand }) } });
  assert.deepEqual(await pythonExtensionInterpreter(pythonExtension(old(['/opt/py/bin/python3'])), undefined), {
    python: '/opt/py/bin/python3',
  });
  assert.match(await passedOver(pythonExtension(old(['conda', 'run', '-n', 'x', 'python']))), /named no interpreter/);
  assert.equal(await pythonExtensionInterpreter(undefined, resource), undefined);
});

test('a Python extension that hangs or throws on activation never holds up the form', async () => {
  const started = Date.now();
  const hang = await pythonExtensionInterpreter(
    pythonExtension(undefined, () => new Promise(() => undefined)),
    undefined,
    200,
  );
  assert.deepEqual(hang, { passedOver: 'Python extension: no answer in 0.2 s' });
  assert.ok(Date.now() - started < 2000);
  const late = await pythonExtensionInterpreter(
    pythonExtension(undefined, () => new Promise((_, reject) => setTimeout(() => reject(new Error('late')), 300))),
    undefined,
    100,
  );
  assert.match((late as { passedOver: string }).passedOver, /no answer in 0.1 s/);
  await new Promise(r => setTimeout(r, 400)); // the late rejection must not surface as unhandled
  const boom = await pythonExtensionInterpreter(
    pythonExtension(undefined, async () => {
      throw new Error('boom');
    }),
    undefined,
  );
  assert.deepEqual(boom, { passedOver: 'Python extension failed: boom' });
  const getterThrows = {
    environments: {
      getActiveEnvironmentPath: () => {
        throw new Error('no workspace');
      },
      resolveEnvironment: async () => undefined,
    },
  };
  assert.deepEqual(await pythonExtensionInterpreter(pythonExtension(getterThrows), undefined), {
    passedOver: 'Python extension failed: no workspace',
  });
  // Then python3 on PATH, saying why.
  const i = await pickInterpreter('', async () => hang);
  assert.equal(i.from, 'python3 on PATH');
  assert.equal(i.passedOver, hang!.passedOver as string);
});

test('the interpreter: vitLens.pythonPath, else the Python extension, else python3 on PATH, resolved to a path', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-python-'));
  try {
    const py = path.join(dir, 'python3');
    fs.writeFileSync(py, '#!/bin/sh\n', { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'notexec'), '', { mode: 0o644 });
    const env = { PATH: ['/nonexistent', dir].join(path.delimiter) };
    let asked = 0;
    const ext = async () => (asked++, { python: '/opt/venv/bin/python' });
    const fromSetting = await pickInterpreter(' python3 ', ext, env);
    assert.deepEqual(fromSetting, { python: 'python3', from: 'vitLens.pythonPath', resolved: py });
    assert.equal(asked, 0, 'the Python extension is not activated when the setting decides');
    assert.deepEqual(await pickInterpreter(undefined, ext, env), {
      python: '/opt/venv/bin/python',
      from: 'the Python extension',
      resolved: undefined,
    });
    assert.deepEqual(await pickInterpreter('', async () => undefined, env), {
      python: 'python3',
      from: 'python3 on PATH',
      resolved: py,
    });
    assert.equal(onPath('notexec', env), undefined);
    assert.equal(onPath(py, {}), py);
    assert.equal(interpreterPath({ python: 'python3', from: 'python3 on PATH', resolved: py }), py);
    // A shim or wrapper: the row also names the interpreter torch-check found behind it.
    const shim = { python: 'python3', from: 'python3 on PATH' as const, resolved: '/home/u/.pyenv/shims/python3' };
    assert.equal(interpreterText(shim), '/home/u/.pyenv/shims/python3 (python3 on PATH)');
    assert.equal(
      interpreterText({ ...shim, executable: '/home/u/.pyenv/versions/3.11.7/bin/python3' }),
      '/home/u/.pyenv/shims/python3 → /home/u/.pyenv/versions/3.11.7/bin/python3 (python3 on PATH)',
    );
    assert.equal(interpreterText({ ...shim, executable: shim.resolved }), interpreterText(shim));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the PyTorch row: version, devices, the interpreter and where it came from', () => {
  const cpu = {
    python: '/usr/bin/python3',
    resolved: '/usr/bin/python3',
    from: 'vitLens.pythonPath' as const,
    label: 'PyTorch · CPU',
    torch: '1.13.1',
  };
  assert.deepEqual(torchRow(cpu, '/usr/bin/python3'), {
    label: 'PyTorch',
    description: 'On: PyTorch 1.13.1 · CPU',
    detail: '/usr/bin/python3 (vitLens.pythonPath)',
  });
  assert.equal(torchRow(cpu, undefined).description, 'Off: the built-in trainer runs (PyTorch 1.13.1 · CPU available)');
  assert.equal(
    torchText({ ...cpu, label: 'PyTorch · CUDA ×8 (NVIDIA H100)', torch: '2.11.0' }),
    'PyTorch 2.11.0 · CUDA ×8 (NVIDIA H100)',
  );
  const passed = { ...cpu, from: 'python3 on PATH' as const, passedOver: 'Python extension failed: boom' };
  assert.equal(torchRow(passed, undefined).detail, '/usr/bin/python3 (python3 on PATH; Python extension failed: boom)');
  const missing = { python: 'python3', from: 'python3 on PATH' as const, error: 'not found' };
  assert.equal(torchRow(missing, undefined).description, 'Not available: not found · pick to choose another');
  assert.match(torchRow(missing, undefined).detail, /^python3, not found \(python3 on PATH\)$/);
});

test('an interpreter without torch: the CLI says why, the row says it without the CLI-only advice', async () => {
  assert.ok(fs.existsSync(cliJs), `${cliJs} is missing: run npm run build first`);
  // A real Python that cannot import torch: Debian's, without its site-packages.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-lens-notorch-'));
  try {
    const py = path.join(dir, 'python3');
    fs.writeFileSync(py, '#!/bin/sh\nexec /usr/bin/python3 -S "$@"\n', { mode: 0o755 });
    const r = await runCli(cliJs, ['torch-check', '--python', py, '--json']);
    const { error } = JSON.parse(r.stdout) as { error: string };
    assert.match(error, /cannot import torch/);
    assert.match(
      error,
      /install PyTorch for \/usr\/bin\/python3 \(pip install torch\)/,
      'names the interpreter behind the wrapper',
    );
    const found = { python: py, resolved: py, from: 'the Python extension' as const, error };
    assert.equal(torchProblem(found), 'torch is not installed');
    const row = torchRow(found, undefined);
    assert.equal(row.description, 'Not available: torch is not installed · pick to choose another');
    assert.equal(row.detail, `${py} (the Python extension)`);
    // Any other reason is the CLI's, without the interpreter it already names.
    const old = { ...found, error: `${py} (--python) has torch 1.12.1, too old: --backend torch needs 1.13 or later` };
    assert.equal(torchProblem(old), 'has torch 1.12.1, too old: --backend torch needs 1.13 or later');
    assert.doesNotMatch(JSON.stringify(row), /--python/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
