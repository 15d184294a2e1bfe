/**
 * "ViT: Classify Folder": pick the folder (explorer argument or a folder picker), make sure the
 * model is loaded, run the worker's classifyFolder behind a cancellable "n / N images"
 * notification, then show the table. Cancelling still shows (and keeps the files of) what was done.
 */
import { constants as fsConstants, promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { ensureModelChosen } from '../firstRun';
import type { Ctx } from '../ctx';
import { ClassifyFolderRequest, ClassifyFolderResult } from '../../common/workerRequests';
import { KnownPredictionFiles, PredictionsPanel } from './predictionsPanel';

/** Folders being classified: a second click on the same folder reveals nothing new, it is refused. */
const running = new Set<string>();

export async function classifyFolderCommand(ctx: Ctx, known: KnownPredictionFiles, arg?: unknown): Promise<void> {
  const folder = await pickFolder(arg);
  if (!folder) return;
  if (running.has(folder)) {
    void vscode.window.showInformationMessage(`ViT Lens is already classifying ${path.basename(folder)}.`);
    return;
  }
  if (!(await ensureModelChosen(ctx))) return;
  const model = ctx.modelRequest();
  if (!model) return;
  running.add(folder);
  try {
    try {
      await ctx.worker.ensureModel(model);
    } catch (e) {
      ctx.reportError('load the model', e);
      return;
    }
    const outDir = await outputFolder(ctx, folder);
    let result: ClassifyFolderResult;
    try {
      result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `ViT Lens: classifying ${path.basename(folder)}`, cancellable: true },
        (progress, token) => ctx.worker.request(ClassifyFolderRequest, { folder, outDir, topK: ctx.settings().topK }, token, progress),
      );
    } catch (e) {
      ctx.reportError(`classify ${folder}`, e);
      return;
    }
    for (const f of result.failures) ctx.log.warn(f.error);
    ctx.log.info(`classified ${result.predictions.length} of ${result.total} images in ${folder}${result.partial ? ' (stopped early)' : ''}; wrote ${result.csvFile} and ${result.jsonFile}`);
    await known.add(result.jsonFile);
    PredictionsPanel.show(ctx, result);
    if (outDir !== folder) void vscode.window.showInformationMessage(`ViT Lens cannot write into ${folder}; predictions.csv and .json are in ${outDir}.`);
  } finally {
    running.delete(folder);
  }
}

async function pickFolder(arg: unknown): Promise<string | undefined> {
  let uri = arg instanceof vscode.Uri ? arg : undefined;
  if (!uri) {
    const picked = await vscode.window.showOpenDialog({
      canSelectFiles: false,
      canSelectFolders: true,
      canSelectMany: false,
      defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
      title: 'Classify Folder',
      openLabel: 'Classify',
    });
    uri = picked?.[0];
    if (!uri) return undefined;
  }
  if (uri.scheme !== 'file') {
    void vscode.window.showErrorMessage(`ViT Lens reads images from disk; ${uri.toString()} is not a folder on this machine.`);
    return undefined;
  }
  const st = await fs.stat(uri.fsPath).catch(() => undefined);
  if (!st?.isDirectory()) {
    void vscode.window.showErrorMessage(`ViT Lens: ${uri.fsPath} is not a folder.`);
    return undefined;
  }
  return uri.fsPath;
}

/** The folder itself; a read-only dataset (a mount, a shared drive) gets a folder in the extension's storage instead. */
async function outputFolder(ctx: Ctx, folder: string): Promise<string> {
  try {
    await fs.access(folder, fsConstants.W_OK);
    return folder;
  } catch {
    const id = createHash('sha256').update(folder).digest('hex').slice(0, 16);
    return path.join(ctx.extension.globalStorageUri.fsPath, 'predictions', `${path.basename(folder)}-${id}`);
  }
}
