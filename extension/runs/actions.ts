/** The Runs view's item actions: stop, resume, export, use as model, reveal, delete. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import { cliPath, launchTrainer } from './launch';
import type { RunEntry } from './runFolders';
import type { RunStore } from './store';
import { editorTrainThreads, resumeArgs } from './trainArgs';
import { runCli } from './trainerProcess';

export function stopRun(store: RunStore, r: RunEntry): void {
  if (r.status !== 'running' && r.status !== 'starting') {
    void vscode.window.showInformationMessage(`ViT Lens: ${r.name} is not running (${r.status}).`);
    return;
  }
  if (r.elsewhere) {
    void vscode.window.showWarningMessage(
      `ViT Lens: ${r.name} runs as process ${r.info?.pid}, which is not on this machine; stop it where it runs.`,
    );
    return;
  }
  const target = r.info?.pid ?? store.startingPid(r.dir);
  try {
    if (target === undefined) throw Object.assign(new Error('no process id yet'), { code: 'ESRCH' });
    // SIGTERM: the trainer finishes the current step, checkpoints and marks the run stopped (resumable).
    process.kill(target, 'SIGTERM');
    void vscode.window.setStatusBarMessage(`ViT Lens: stopping ${r.name} after the current step…`, 5000);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    void vscode.window.showWarningMessage(
      code === 'ESRCH'
        ? `ViT Lens: ${r.name} is not running (process ${target ?? '?'} is gone).`
        : `ViT Lens could not stop ${r.name}: ${(e as Error).message}`,
    );
  }
  store.refresh();
}

export async function resumeRun(ctx: Ctx, store: RunStore, r: RunEntry): Promise<void> {
  if (!r.info) return;
  if (r.status === 'running') {
    void vscode.window.showInformationMessage(`ViT Lens: ${r.name} is already running.`);
    return;
  }
  if (r.status === 'finished') {
    void vscode.window.showInformationMessage(
      `ViT Lens: ${r.name} has finished all ${r.info.totalEpochs} epochs; start a new run to train further.`,
    );
    return;
  }
  await launchTrainer(
    ctx,
    store,
    r.dir,
    resumeArgs(r.dir, ctx.settings().cacheDir, editorTrainThreads()),
    `resume ${r.name}`,
  );
}

const hasModel = (dir: string) =>
  fs.existsSync(path.join(dir, 'config.json')) &&
  (fs.existsSync(path.join(dir, 'model.safetensors')) || fs.existsSync(path.join(dir, 'onnx', 'model.onnx')));

/** `vit-lens export RUN --out DIR` behind a cancellable progress notification; the folder on success. */
async function exportTo(ctx: Ctx, r: RunEntry, out: string): Promise<string | undefined> {
  if (!fs.existsSync(path.join(r.dir, 'checkpoints', 'best.safetensors'))) {
    void vscode.window.showErrorMessage(
      `ViT Lens: ${r.name} has no best checkpoint yet (${path.join(r.dir, 'checkpoints', 'best.safetensors')}); it is written after the first epoch.`,
    );
    return undefined;
  }
  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Exporting ${r.name}`, cancellable: true },
    async (_p, token) => {
      const abort = new AbortController();
      token.onCancellationRequested(() => abort.abort());
      try {
        const res = await runCli(cliPath(ctx), ['export', r.dir, '--out', out], abort.signal);
        if (res.code !== 0) throw new Error(res.stderr.trim().split('\n').pop() || `exit code ${res.code}`);
        ctx.log.info(res.stdout.trim());
        return out;
      } catch (e) {
        if (!abort.signal.aborted)
          void vscode.window.showErrorMessage(`ViT Lens could not export ${r.name}: ${(e as Error).message}`);
        return undefined;
      }
    },
  );
}

export async function exportRun(ctx: Ctx, r: RunEntry): Promise<void> {
  const picked = await vscode.window.showSaveDialog({
    defaultUri: vscode.Uri.file(path.join(r.dir, 'export')),
    title: `Export ${r.name} as a Hugging Face model folder`,
    saveLabel: 'Export',
  });
  if (!picked) return;
  const out = await exportTo(ctx, r, picked.fsPath);
  if (!out) return;
  const pick = await vscode.window.showInformationMessage(
    `ViT Lens: exported ${r.name} to ${out}.`,
    'Use as Current Model',
    'Reveal',
  );
  if (pick === 'Use as Current Model') await setModel(out);
  if (pick === 'Reveal') await reveal(out);
}

export async function useAsModel(ctx: Ctx, r: RunEntry): Promise<void> {
  let dir: string | undefined = path.join(r.dir, 'export');
  // The trainer writes export/ when a run ends; a stopped or running run can be exported from its best checkpoint.
  if (!hasModel(dir)) dir = await exportTo(ctx, r, dir);
  if (!dir) return;
  await setModel(dir);
  void vscode.window.showInformationMessage(
    `ViT Lens: now using ${r.name} (${r.info ? `${r.info.classes.length} classes` : dir}).`,
  );
}

/** `vitLens.model` in the workspace settings, relative to the first workspace folder when inside it. */
async function setModel(dir: string): Promise<void> {
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const rel = folder ? path.relative(folder, dir) : undefined;
  const inside = rel !== undefined && !rel.startsWith('..') && !path.isAbsolute(rel);
  const value = inside ? rel.split(path.sep).join('/') : dir;
  await vscode.workspace
    .getConfiguration('vitLens')
    .update('model', value, folder ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global);
}

export async function reveal(dir: string): Promise<void> {
  const uri = vscode.Uri.file(dir);
  const inside = !!vscode.workspace.getWorkspaceFolder(uri);
  await vscode.commands.executeCommand(inside ? 'revealInExplorer' : 'revealFileInOS', uri);
}

export async function deleteRuns(store: RunStore, runs: RunEntry[]): Promise<void> {
  const running = runs.filter(r => r.status === 'running' || r.status === 'starting');
  if (running.length) {
    void vscode.window.showWarningMessage(
      `ViT Lens: stop ${running.map(r => r.name).join(', ')} before deleting ${running.length > 1 ? 'them' : 'it'}.`,
    );
    return;
  }
  const what = runs.length === 1 ? `run "${runs[0].name}"` : `${runs.length} runs`;
  const ok = await vscode.window.showWarningMessage(
    `Delete ${what}?`,
    {
      modal: true,
      detail: `${runs.map(r => r.dir).join('\n')}\n\nThe folder${runs.length > 1 ? 's go' : ' goes'} to the trash, with checkpoints, metrics and the exported model.`,
    },
    'Move to Trash',
  );
  if (ok !== 'Move to Trash') return;
  const failed: RunEntry[] = [];
  for (const r of runs) {
    try {
      await vscode.workspace.fs.delete(vscode.Uri.file(r.dir), { recursive: true, useTrash: true });
    } catch {
      failed.push(r);
    }
  }
  if (failed.length) {
    const again = await vscode.window.showWarningMessage(
      `The trash is not available for ${failed.map(r => r.name).join(', ')}. Delete permanently?`,
      { modal: true, detail: 'This cannot be undone.' },
      'Delete Permanently',
    );
    if (again === 'Delete Permanently') {
      for (const r of failed) {
        try {
          await vscode.workspace.fs.delete(vscode.Uri.file(r.dir), { recursive: true, useTrash: false });
        } catch (e) {
          void vscode.window.showErrorMessage(`ViT Lens could not delete ${r.dir}: ${(e as Error).message}`);
        }
      }
    }
  }
  store.refresh(true);
}
