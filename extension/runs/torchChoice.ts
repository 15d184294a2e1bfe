/**
 * The Fine-tune form's PyTorch row: which interpreter `--backend torch` would use (torchInterpreter.ts)
 * and what it has. The check itself is `vit-lens torch-check --json`, so the form and the CLI decide
 * the same way; PyTorch is offered only when that interpreter imports torch, and the row says what was
 * found either way.
 */
import * as vscode from 'vscode';
import { runCli } from './trainerProcess';
import {
  interpreterPath,
  interpreterText,
  pickInterpreter,
  pythonExtensionInterpreter,
  TORCH_ADVICE,
  torchProblem,
  TorchFound,
  torchRow as rowText,
  torchText,
} from './torchInterpreter';

export type { TorchFound } from './torchInterpreter';

const PYTHON_EXTENSION = 'ms-python.python';

export async function findTorch(cliJs: string): Promise<TorchFound> {
  // vitLens.pythonPath has machine scope: a workspace cannot point it at a program.
  const interpreter = await pickInterpreter(
    vscode.workspace.getConfiguration('vitLens').get<string>('pythonPath'),
    () =>
      pythonExtensionInterpreter(
        vscode.extensions.getExtension(PYTHON_EXTENSION),
        vscode.workspace.workspaceFolders?.[0]?.uri,
      ),
  );
  if (!interpreter.resolved) return { ...interpreter, error: 'not found' };
  try {
    const r = await runCli(
      cliJs,
      ['torch-check', '--python', interpreterPath(interpreter), '--json'],
      AbortSignal.timeout(60_000),
    );
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as {
      label?: string;
      torch?: string;
      executable?: string;
      error?: string;
    };
    return {
      ...interpreter,
      label: out.label,
      torch: out.torch,
      executable: out.executable,
      error: out.label ? undefined : (out.error ?? `no answer (${r.stderr.trim().slice(0, 200)})`),
    };
  } catch (e) {
    return { ...interpreter, error: (e as Error).message };
  }
}

/** The form's row; `using` is the interpreter the run will use, undefined for the built-in TF.js trainer. */
export function torchRow(found: TorchFound, using: string | undefined): vscode.QuickPickItem & { key: string } {
  return { key: 'torch', ...rowText(found, using) };
}

/** On/off for PyTorch; resolves with the interpreter to use, undefined for TF.js, or `keep` on Escape. */
export async function pickTorch(found: TorchFound, using: string | undefined): Promise<string | undefined | 'keep'> {
  if (!found.label) {
    const actions = [
      'Open Setting',
      ...(vscode.extensions.getExtension(PYTHON_EXTENSION) ? ['Select Interpreter'] : []),
    ];
    void vscode.window
      .showWarningMessage(
        `ViT Lens cannot train with PyTorch: ${torchProblem(found)}: ${interpreterText(found)}. ${TORCH_ADVICE} Then start Fine-tune ViT on Folder again.`,
        ...actions,
      )
      .then(a => {
        if (a === 'Open Setting')
          void vscode.commands.executeCommand('workbench.action.openSettings', 'vitLens.pythonPath');
        else if (a === 'Select Interpreter') void vscode.commands.executeCommand('python.setInterpreter');
      });
    return 'keep';
  }
  const python = interpreterPath(found);
  const items = [
    {
      label: `$(rocket) ${torchText(found)}`,
      description: interpreterText(found),
      detail: 'DistributedDataParallel under torchrun, one process per GPU; the same run folder',
      value: python,
    },
    { label: 'Built-in TF.js trainer', detail: 'No Python needed', value: undefined },
  ];
  const pick = await vscode.window.showQuickPick(items, {
    title: 'Fine-tune ViT: Trainer',
    placeHolder: using ? 'PyTorch is selected' : 'The built-in trainer is selected',
  });
  return pick ? pick.value : 'keep';
}
