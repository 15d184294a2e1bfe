/**
 * "ViT: Audit Dataset" (issue 16): pick the folder (explorer argument or a folder picker), make sure
 * the model is loaded, run the worker's audit behind a cancellable notification, show the panel.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import { ensureModelChosen } from '../firstRun';
import { AuditRequest, AuditResult } from '../protocol';
import { AUDIT_VIEW_TYPE, AuditPanel } from './panel';
import { readSavedAudit } from './saved';

const running = new Set<string>();

export function registerAudit(ctx: Ctx): void {
  ctx.push(
    vscode.commands.registerCommand('vitLens.auditDataset', (uri?: unknown) => auditCommand(ctx, uri)),
    // A window reload reopens the panel on its audit.json (as it is now, with the moves and ignores made).
    vscode.window.registerWebviewPanelSerializer(AUDIT_VIEW_TYPE, {
      deserializeWebviewPanel: async (panel, state) => {
        const report = await readSavedAudit(state);
        if (report) AuditPanel.revive(ctx, panel, report);
        else panel.dispose();
      },
    }),
  );
}

async function auditCommand(ctx: Ctx, arg: unknown): Promise<void> {
  let uri = arg instanceof vscode.Uri ? arg : undefined;
  if (!uri) {
    const picked = await vscode.window.showOpenDialog({ canSelectFiles: false, canSelectFolders: true, canSelectMany: false, defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri, title: 'Audit Dataset', openLabel: 'Audit' });
    uri = picked?.[0];
    if (!uri) return;
  }
  if (uri.scheme !== 'file' || !(await fs.stat(uri.fsPath).catch(() => undefined))?.isDirectory()) {
    void vscode.window.showErrorMessage(`ViT Lens: ${uri.scheme === 'file' ? uri.fsPath : uri.toString()} is not a folder on this machine.`);
    return;
  }
  const folder = uri.fsPath;
  if (running.has(folder)) {
    void vscode.window.showInformationMessage(`ViT Lens is already auditing ${path.basename(folder)}.`);
    return;
  }
  // The same first-run question as Classify Image and Classify Folder: with no model set, which one.
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
    let result: AuditResult;
    try {
      result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `ViT Lens: auditing ${path.basename(folder)}`, cancellable: true },
        (progress, token) => ctx.worker.request(AuditRequest, { folder }, token, progress),
      );
    } catch (e) {
      ctx.reportError(`audit ${folder}`, e);
      return;
    }
    for (const s of result.skipped) ctx.log.warn(`${s.file}: ${s.reason}`);
    ctx.log.info(`audited ${result.images} images in ${folder}: ${result.labelIssues.length} label issues, ${result.duplicates.length} duplicate groups, ${result.outliers.length} outliers; wrote ${result.file}`);
    AuditPanel.show(ctx, result);
  } finally {
    running.delete(folder);
  }
}
