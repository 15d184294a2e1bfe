/**
 * Which Python `--backend torch` uses when started from the editor — vitLens.pythonPath, then the
 * Python extension's selected interpreter, then python3 on PATH — and how the Fine-tune form's
 * PyTorch row says what was found. `vscode` is only a type here: the unit tests drive the Python
 * extension's side with stand-ins (torchChoice.ts passes the real ones).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as vscode from 'vscode';

export type InterpreterSource = 'vitLens.pythonPath' | 'the Python extension' | 'python3 on PATH';

export interface Interpreter {
  /** As configured or reported. */
  python: string;
  from: InterpreterSource;
  /** The absolute path it runs from (searched on PATH for a bare name); undefined when not found. */
  resolved?: string;
  /** Why the Python extension was passed over (timed out, failed, nothing usable selected). */
  passedOver?: string;
}

/** What `vit-lens torch-check --json` answered for the interpreter. */
export interface TorchFound extends Interpreter {
  /** "PyTorch · CUDA ×8 (NVIDIA H100)" / "PyTorch · CPU" when it can train. */
  label?: string;
  torch?: string;
  /** The interpreter that answered (sys.executable), when a shim, wrapper or bare name led elsewhere. */
  executable?: string;
  /** Why it cannot (missing, too old, no torch.distributed). */
  error?: string;
}

/** The path given to torch-check and to the run: the resolved one, so both use the same file. */
export const interpreterPath = (i: Interpreter) => i.resolved ?? i.python;

/**
 * The part of the Python extension's public API we use, as its own facade (@vscode/python-extension)
 * declares it: `environments` (2022 on) and the older `settings.getExecutionDetails`.
 */
interface PythonExtensionApi {
  environments?: {
    /** The setting's value: may be a bare name, an environment folder or invalid; resolveEnvironment tells. */
    getActiveEnvironmentPath(resource?: vscode.Uri): { id: string; path: string };
    resolveEnvironment(
      env: { id: string; path: string } | string,
    ): Promise<{ executable: { uri: vscode.Uri | undefined } } | undefined>;
  };
  settings?: { getExecutionDetails(resource?: vscode.Uri): { execCommand: string[] | undefined } };
}

type ExtensionHandle = Pick<vscode.Extension<unknown>, 'isActive' | 'exports' | 'activate'>;

/** Activation of ms-python.python can take seconds; the form never waits longer than this for it. */
export const PYTHON_EXTENSION_TIMEOUT_MS = 15_000;

/** The Python extension's interpreter; `passedOver` says why there is none; undefined: not installed. */
export async function pythonExtensionInterpreter(
  ext: ExtensionHandle | undefined,
  resource: vscode.Uri | undefined,
  timeoutMs = PYTHON_EXTENSION_TIMEOUT_MS,
): Promise<{ python: string } | { passedOver: string } | undefined> {
  if (!ext) return undefined;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<{ passedOver: string }>(resolve => {
    timer = setTimeout(
      () => resolve({ passedOver: `Python extension: no answer in ${timeoutMs / 1000} s` }),
      timeoutMs,
    );
  });
  // Caught here, so a failure after the timeout is not an unhandled rejection.
  const answer = askPythonExtension(ext, resource).catch((e: unknown) => ({
    passedOver: `Python extension failed: ${e instanceof Error ? e.message : String(e)}`,
  }));
  try {
    return await Promise.race([answer, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function askPythonExtension(
  ext: ExtensionHandle,
  resource: vscode.Uri | undefined,
): Promise<{ python: string } | { passedOver: string }> {
  const api = (ext.isActive ? ext.exports : await ext.activate()) as PythonExtensionApi | undefined;
  const envs = api?.environments;
  if (envs?.getActiveEnvironmentPath && envs.resolveEnvironment) {
    const active = envs.getActiveEnvironmentPath(resource);
    const env = await envs.resolveEnvironment(active);
    const exe = env?.executable.uri?.fsPath;
    if (exe) return { python: exe };
    return {
      passedOver: env
        ? `Python extension's ${active.path} has no python executable`
        : `Python extension's ${active.path} is not valid`,
    };
  }
  const cmd = api?.settings?.getExecutionDetails(resource)?.execCommand;
  // One element is the interpreter; more is a launcher (conda run …) that torchrun cannot be started by.
  if (cmd?.length === 1 && cmd[0]) return { python: cmd[0] };
  return { passedOver: 'Python extension named no interpreter' };
}

/** vitLens.pythonPath, else the Python extension's interpreter (asked only then), else python3 on PATH. */
export async function pickInterpreter(
  setting: string | undefined,
  pythonExtension: () => Promise<{ python: string } | { passedOver: string } | undefined>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Interpreter> {
  const withPath = (i: Interpreter): Interpreter => ({ ...i, resolved: onPath(i.python, env) });
  if (setting?.trim()) return withPath({ python: setting.trim(), from: 'vitLens.pythonPath' });
  const ext = await pythonExtension();
  if (ext && 'python' in ext) return withPath({ python: ext.python, from: 'the Python extension' });
  return withPath({ python: 'python3', from: 'python3 on PATH', ...(ext ? { passedOver: ext.passedOver } : {}) });
}

/** `cmd`'s absolute path: itself when it names a file, else searched on PATH as a shell would; undefined when absent. */
export function onPath(cmd: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const runnable = (f: string) => {
    try {
      fs.accessSync(f, fs.constants.X_OK);
      return fs.statSync(f).isFile();
    } catch {
      return false;
    }
  };
  if (cmd.includes('/') || cmd.includes(path.sep)) return runnable(cmd) ? path.resolve(cmd) : undefined;
  const exts = process.platform === 'win32' ? ['', ...(env.PATHEXT ?? '.EXE').split(';')] : [''];
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean))
    for (const ext of exts) if (runnable(path.join(dir, cmd + ext))) return path.join(dir, cmd + ext);
  return undefined;
}

/** torch-check's label with the version: "PyTorch 1.13.1 · CPU", "PyTorch 2.11.0 · CUDA ×8 (NVIDIA H100)". */
export const torchText = (f: TorchFound) =>
  (f.label ?? 'PyTorch').replace(/^PyTorch\b/, `PyTorch ${f.torch ?? ''}`.trim());

/** "/usr/bin/python3 (vitLens.pythonPath)", and why the Python extension was passed over. */
export function interpreterText(f: Interpreter & { executable?: string }): string {
  const runs = f.executable && f.executable !== f.resolved ? ` → ${f.executable}` : '';
  const where = (f.resolved ?? `${f.python}, not found`) + runs;
  return `${where} (${f.from}${f.passedOver ? `; ${f.passedOver}` : ''})`;
}

/**
 * The CLI's reason without its interpreter prefix and its advice: the row names the interpreter
 * itself, and the CLI's advice (--python) is not how the editor picks one.
 */
export function torchProblem(f: TorchFound): string {
  const checked = `${interpreterPath(f)} (--python)`;
  let r = (f.error ?? '').trim();
  if (r.startsWith(checked)) r = r.slice(checked.length).replace(/^:?\s*/, '');
  r = r.replace(/;\s*(install PyTorch|pass --python)[^;]*$/, '');
  if (/^cannot run it \(ENOENT\)/.test(r) || !f.resolved) return 'not found';
  if (/^cannot import torch \(ModuleNotFoundError: No module named 'torch'\)$/.test(r)) return 'torch is not installed';
  return r || 'no answer';
}

/** What to do when the interpreter cannot train. */
export const TORCH_ADVICE =
  'Set vitLens.pythonPath to a Python with PyTorch ≥ 1.13, or select one in the Python extension (Python: Select Interpreter).';

/** The form's PyTorch row; `using`: the interpreter the run will use, undefined for the built-in TF.js trainer. */
export function torchRow(
  f: TorchFound,
  using: string | undefined,
): { label: string; description: string; detail: string } {
  if (!f.label)
    return {
      label: 'PyTorch',
      description: `Not available: ${torchProblem(f)} · pick to choose another`,
      detail: interpreterText(f),
    };
  return {
    label: 'PyTorch',
    description: using ? `On: ${torchText(f)}` : `Off: the built-in trainer runs (${torchText(f)} available)`,
    detail: interpreterText(f),
  };
}
