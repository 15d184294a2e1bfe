/**
 * What the folder commands (Classify Folder, Audit Dataset) share: the folder from the explorer or
 * a folder picker, at most one run per folder at a time, the first-run model question, the model
 * loaded before the work starts, and the worker request behind a cancellable notification.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Ctx } from './ctx';
import { ensureModelChosen } from './firstRun';

export interface FolderCommand {
  /** The folder picker's title and button, e.g. "Audit Dataset" and "Audit". */
  title: string;
  openLabel: string;
  /** "audit", "auditing": the notification says "ViT Lens: auditing <folder>", a second run on it "ViT Lens is already auditing <folder>.", a failure "ViT Lens could not audit <folder>". */
  verb: string;
  doing: string;
}

/** Folders a command is working on (keyed by command and folder): a second click on the same folder reveals nothing new, it is refused. */
const running = new Set<string>();

/** Run `work` on the folder once the model is loaded; nothing (after telling the user why) when there is no folder or model. */
export async function runOnFolder(
  ctx: Ctx,
  cmd: FolderCommand,
  arg: unknown,
  work: (folder: string) => Promise<void>,
): Promise<void> {
  const folder = await pickFolder(cmd, arg);
  if (!folder) return;
  const key = `${cmd.doing}\n${folder}`;
  if (running.has(key)) {
    void vscode.window.showInformationMessage(`ViT Lens is already ${cmd.doing} ${path.basename(folder)}.`);
    return;
  }
  // The same first-run question as Classify Image: with no model set, which one.
  if (!(await ensureModelChosen(ctx))) return;
  const model = ctx.modelRequest();
  if (!model) return;
  running.add(key);
  try {
    try {
      await ctx.worker.ensureModel(model);
    } catch (e) {
      ctx.reportError('load the model', e);
      return;
    }
    await work(folder);
  } finally {
    running.delete(key);
  }
}

/** The worker's answer to `request`, made behind a cancellable notification; undefined after reporting a failure. */
export async function withFolderProgress<R>(
  ctx: Ctx,
  cmd: FolderCommand,
  folder: string,
  request: (
    progress: vscode.Progress<{ message?: string; increment?: number }>,
    token: vscode.CancellationToken,
  ) => Thenable<R>,
): Promise<R | undefined> {
  try {
    return await vscode.window.withProgress(
      {
        location: vscode.ProgressLocation.Notification,
        title: `ViT Lens: ${cmd.doing} ${path.basename(folder)}`,
        cancellable: true,
      },
      request,
    );
  } catch (e) {
    ctx.reportError(`${cmd.verb} ${folder}`, e);
    return undefined;
  }
}

async function pickFolder(cmd: FolderCommand, arg: unknown): Promise<string | undefined> {
  let uri = arg instanceof vscode.Uri ? arg : undefined;
  if (!uri) {
    const picked = await vscode.window.showOpenDialog({
      canSelectFiles: false,
      canSelectFolders: true,
      canSelectMany: false,
      defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
      title: cmd.title,
      openLabel: cmd.openLabel,
    });
    uri = picked?.[0];
    if (!uri) return undefined;
  }
  if (uri.scheme !== 'file') {
    void vscode.window.showErrorMessage(
      `ViT Lens reads images from disk; ${uri.toString()} is not a folder on this machine.`,
    );
    return undefined;
  }
  const st = await fs.stat(uri.fsPath).catch(() => undefined);
  if (!st?.isDirectory()) {
    void vscode.window.showErrorMessage(`ViT Lens: ${uri.fsPath} is not a folder.`);
    return undefined;
  }
  return uri.fsPath;
}
