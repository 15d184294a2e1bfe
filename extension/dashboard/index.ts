/**
 * Training dashboard (issue 5): live curves, confusion matrix, held-out gallery and suspect labels
 * for our run folders, and live scalars of TensorBoard event files written by other tools
 * ("ViT: Monitor Training Logs…").
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import { DashboardSource, parseSavedSources } from '../../common/webviewMessages/dashboard';
import { DASHBOARD_VIEW_TYPE, DashboardPanel } from './panel';

export type { DashboardSource } from '../../common/webviewMessages/dashboard';

export function registerDashboard(ctx: Ctx): void {
  ctx.push(
    vscode.commands.registerCommand('vitLens.monitorLogs', (uri?: vscode.Uri) => monitorLogs(ctx, uri)),
    vscode.window.registerWebviewPanelSerializer(DASHBOARD_VIEW_TYPE, {
      deserializeWebviewPanel: async (panel, state) => {
        const sources = parseSavedSources(state, path.isAbsolute);
        if (!sources.length) {
          panel.dispose();
          return;
        }
        DashboardPanel.revive(ctx, panel, sources);
      },
    }),
  );
}

/** Open (or reveal) the dashboard on these sources; several runs are overlaid in the same charts. */
export function openDashboard(ctx: Ctx, sources: DashboardSource[]): void {
  if (!sources.length) return;
  DashboardPanel.show(ctx, sources);
}

/** A folder from the explorer's context menu, or picked; the dashboard keeps watching even while it has no event files. */
async function monitorLogs(ctx: Ctx, uri?: vscode.Uri): Promise<void> {
  let folder = uri?.scheme === 'file' ? uri : undefined;
  if (!folder) {
    const picked = await vscode.window.showOpenDialog({
      canSelectFolders: true,
      canSelectFiles: false,
      canSelectMany: false,
      openLabel: 'Monitor',
      title: 'Folder with TensorBoard event files (searched recursively)',
      defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
    });
    folder = picked?.[0];
  }
  if (!folder) return;
  openDashboard(ctx, [{ kind: 'tfevents', dir: folder.fsPath }]);
}
