/**
 * Entry point. Activation only wires things up: no worker, no model, no native module is loaded
 * here (the worker, which loads onnxruntime-node, starts on the first request), so activation
 * stays in the low milliseconds. The time is logged to the "ViT Lens" output channel.
 */
import * as vscode from 'vscode';
import { registerAudit } from './audit';
import { registerClassifyFolder } from './classifyFolder';
import { registerCommands } from './commands';
import { Ctx } from './ctx';
import { registerDashboard } from './dashboard';
import { RESULTS_VIEW_TYPE, ResultsPanel } from './resultsPanel';
import { registerRuns } from './runs';

let ctx: Ctx | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const t0 = performance.now();
  const log = vscode.window.createOutputChannel('ViT Lens', { log: true });
  ctx = new Ctx(context, log);
  registerCommands(ctx);
  registerDashboard(ctx);
  registerRuns(ctx);
  registerClassifyFolder(ctx);
  registerAudit(ctx);
  const c = ctx;
  ctx.push(
    vscode.window.registerWebviewPanelSerializer(RESULTS_VIEW_TYPE, {
      deserializeWebviewPanel: async (panel, state) => {
        ResultsPanel.revive(c, panel, state);
      },
    }),
  );
  log.info(`activated in ${(performance.now() - t0).toFixed(1)} ms`);
}

export async function deactivate(): Promise<void> {
  const c = ctx;
  ctx = undefined;
  await c?.dispose();
}
