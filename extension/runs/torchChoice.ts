/**
 * The Fine-tune form's PyTorch row: which interpreter `--backend torch` would use (vitLens.pythonPath,
 * then the Python extension's selected interpreter, then python3 on PATH) and what it has. The check
 * itself is `vit-lens torch-check --json`, so the form and the CLI decide the same way; PyTorch is
 * offered only when that interpreter imports torch, and the row says what was found either way.
 */
import * as vscode from 'vscode';
import { runCli } from './trainerProcess';

export interface TorchFound {
  python: string;
  /** Where the interpreter came from, for the row's text. */
  from: string;
  /** "PyTorch · CUDA ×8 (NVIDIA H100)" / "PyTorch · CPU" when it can train. */
  label?: string;
  torch?: string;
  /** Why it cannot (missing, too old, no torch.distributed). */
  error?: string;
}

/** vitLens.pythonPath (machine scope: a workspace cannot point it at a program), then the Python extension's choice, then python3. */
async function pickInterpreter(): Promise<{ python: string; from: string }> {
  const setting = vscode.workspace.getConfiguration('vitLens').get<string>('pythonPath')?.trim();
  if (setting) return { python: setting, from: 'vitLens.pythonPath' };
  try {
    const ext = vscode.extensions.getExtension('ms-python.python');
    if (ext) {
      const api = (ext.isActive ? ext.exports : await ext.activate()) as {
        environments?: { getActiveEnvironmentPath(resource?: vscode.Uri): { path: string } };
        settings?: { getExecutionDetails(resource?: vscode.Uri): { execCommand?: string[] } };
      };
      const resource = vscode.workspace.workspaceFolders?.[0]?.uri;
      const p =
        api.environments?.getActiveEnvironmentPath(resource)?.path ??
        api.settings?.getExecutionDetails(resource)?.execCommand?.[0];
      if (p) return { python: p, from: 'the Python extension' };
    }
  } catch {
    /* the Python extension is optional */
  }
  return { python: 'python3', from: 'python3 on PATH' };
}

export async function findTorch(cliJs: string): Promise<TorchFound> {
  const { python, from } = await pickInterpreter();
  try {
    const r = await runCli(cliJs, ['torch-check', '--python', python, '--json'], AbortSignal.timeout(60_000));
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as {
      label?: string;
      torch?: string;
      error?: string;
    };
    return {
      python,
      from,
      label: out.label,
      torch: out.torch,
      error: out.label ? undefined : (out.error ?? `no answer (${r.stderr.trim().slice(0, 200)})`),
    };
  } catch (e) {
    return { python, from, error: (e as Error).message };
  }
}

/** The form's row; `using` is the interpreter the run will use, undefined for the built-in TF.js trainer. */
export function torchRow(found: TorchFound, using: string | undefined): vscode.QuickPickItem & { key: string } {
  if (!found.label)
    return {
      key: 'torch',
      label: 'PyTorch',
      description: `not available: ${found.error}`,
      detail: `${found.python} (${found.from})`,
    };
  return {
    key: 'torch',
    label: 'PyTorch',
    description: using
      ? `${found.label} (torch ${found.torch})`
      : `off: the built-in TF.js trainer (${found.label} available)`,
    detail: `${found.python} (${found.from})`,
  };
}

/** On/off for PyTorch; resolves with the interpreter to use, undefined for TF.js, or `keep` on Escape. */
export async function pickTorch(found: TorchFound, using: string | undefined): Promise<string | undefined | 'keep'> {
  if (!found.label) {
    void vscode.window.showWarningMessage(
      `ViT Lens: ${found.python} (${found.from}) cannot train with PyTorch: ${found.error}. Set vitLens.pythonPath to an interpreter with PyTorch ≥ 1.13.`,
    );
    return 'keep';
  }
  const items = [
    {
      label: `$(rocket) ${found.label}`,
      description: `torch ${found.torch}`,
      detail: `${found.python}: DistributedDataParallel under torchrun, one process per GPU; same run folder`,
      value: found.python,
    },
    { label: 'Built-in TF.js trainer', detail: 'No Python needed', value: undefined },
  ];
  const pick = await vscode.window.showQuickPick(items, {
    title: 'Fine-tune ViT: Trainer',
    placeHolder: using ? 'PyTorch is selected' : 'The built-in trainer is selected',
  });
  return pick ? pick.value : 'keep';
}
