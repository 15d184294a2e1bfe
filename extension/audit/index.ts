/**
 * "ViT: Audit Dataset" (issue 16): pick the folder (explorer argument or a folder picker), make sure
 * the model is loaded, run the worker's audit behind a cancellable notification, show the panel.
 */
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import { FolderCommand, runOnFolder, withFolderProgress } from '../folderCommand';
import { AuditRequest } from '../../common/workerRequests';
import { AUDIT_VIEW_TYPE, AuditPanel } from './panel';
import { readSavedAudit } from './saved';

const AUDIT_DATASET: FolderCommand = { title: 'Audit Dataset', openLabel: 'Audit', verb: 'audit', doing: 'auditing' };

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

function auditCommand(ctx: Ctx, arg: unknown): Promise<void> {
  return runOnFolder(ctx, AUDIT_DATASET, arg, async folder => {
    const result = await withFolderProgress(ctx, AUDIT_DATASET, folder, (progress, token) =>
      ctx.worker.request(AuditRequest, { folder }, token, progress),
    );
    if (!result) return;
    for (const s of result.skipped) ctx.log.warn(`${s.file}: ${s.reason}`);
    ctx.log.info(
      `audited ${result.images} images in ${folder}: ${result.labelIssues.length} label issues, ${result.duplicates.length} duplicate groups, ${result.outliers.length} outliers; wrote ${result.file}`,
    );
    AuditPanel.show(ctx, result);
  });
}
