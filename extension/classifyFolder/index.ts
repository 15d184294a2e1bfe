/** Classify Folder (issue 5): the command and the predictions table, revived after a window reload. */
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import { classifyFolderCommand } from './command';
import { KnownPredictionFiles, PREDICTIONS_VIEW_TYPE, PredictionsPanel } from './predictionsPanel';

export function registerClassifyFolder(ctx: Ctx): void {
  const known = new KnownPredictionFiles(ctx.extension.globalState);
  ctx.push(
    vscode.commands.registerCommand('vitLens.classifyFolder', (uri?: unknown) =>
      classifyFolderCommand(ctx, known, uri),
    ),
    vscode.window.registerWebviewPanelSerializer(PREDICTIONS_VIEW_TYPE, {
      deserializeWebviewPanel: (panel, state) => PredictionsPanel.revive(ctx, panel, state, known),
    }),
  );
}
