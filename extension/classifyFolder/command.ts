/**
 * "ViT: Classify Folder": pick the folder (explorer argument or a folder picker), make sure the
 * model is loaded, run the worker's classifyFolder behind a cancellable "n / N images"
 * notification, then show the table. Cancelling still shows (and keeps the files of) what was done.
 */
import { constants as fsConstants, promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import { FolderCommand, runOnFolder, withFolderProgress } from '../folderCommand';
import { ClassifyFolderRequest } from '../../common/workerRequests';
import { KnownPredictionFiles, PredictionsPanel } from './predictionsPanel';

const CLASSIFY_FOLDER: FolderCommand = {
  title: 'Classify Folder',
  openLabel: 'Classify',
  verb: 'classify',
  doing: 'classifying',
};

export function classifyFolderCommand(ctx: Ctx, known: KnownPredictionFiles, arg?: unknown): Promise<void> {
  return runOnFolder(ctx, CLASSIFY_FOLDER, arg, async folder => {
    const outDir = await outputFolder(ctx, folder);
    const result = await withFolderProgress(ctx, CLASSIFY_FOLDER, folder, (progress, token) =>
      ctx.worker.request(ClassifyFolderRequest, { folder, outDir, topK: ctx.settings().topK }, token, progress),
    );
    if (!result) return;
    for (const f of result.failures) ctx.log.warn(f.error);
    ctx.log.info(
      `classified ${result.predictions.length} of ${result.total} images in ${folder}${result.partial ? ' (stopped early)' : ''}; wrote ${result.csvFile} and ${result.jsonFile}`,
    );
    await known.add(result.jsonFile);
    PredictionsPanel.show(ctx, result);
    if (outDir !== folder)
      void vscode.window.showInformationMessage(
        `ViT Lens cannot write into ${folder}; predictions.csv and .json are in ${outDir}.`,
      );
  });
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
