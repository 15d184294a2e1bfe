/** Starting a trainer (new run or resume) from the editor, and telling the user when it dies at once. */
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import type { RunStore } from './store';
import { logFile, spawnTrainer, tailLines } from './trainerProcess';

/** A trainer that fails within this long (bad arguments, unreadable model) is reported with its log. */
const EARLY_EXIT_MS = 8000;

export function cliPath(ctx: Ctx): string {
  return vscode.Uri.joinPath(ctx.extensionUri, 'dist', 'cli.js').fsPath;
}

/** Spawns `vit-lens <args>` detached, logging to <runDir>/train.log; false when it could not start. */
export async function launchTrainer(
  ctx: Ctx,
  store: RunStore,
  runDir: string,
  args: string[],
  what: string,
): Promise<boolean> {
  let started;
  try {
    started = await spawnTrainer(cliPath(ctx), args, runDir);
  } catch (e) {
    void vscode.window.showErrorMessage(`ViT Lens could not ${what}: ${(e as Error).message}`);
    return false;
  }
  ctx.log.info(`${what}: pid ${started.pid}, log ${logFile(runDir)}`);
  store.track(runDir, started);
  const t0 = Date.now();
  void started.exit.then(({ code, signal }) => {
    ctx.log.info(`trainer ${started.pid} (${runDir}) exited with ${code ?? signal}`);
    // Later failures show in the view (status failed, reason in the tooltip); an immediate one needs saying.
    if (code === 0 || code === 130 || Date.now() - t0 > EARLY_EXIT_MS) return;
    // Notifications show one paragraph: the CLI's own error line (before any usage text), else the log's last lines.
    const lines = tailLines(logFile(runDir), 40).split('\n');
    const tail = [...lines].reverse().find(l => /^vit-lens \w+: /.test(l)) ?? lines.slice(-3).join(' ⏎ ');
    void vscode.window
      .showErrorMessage(
        `ViT Lens could not ${what}: the trainer exited at once (code ${code ?? signal}). ${tail}`,
        'Open Log',
      )
      .then(pick => {
        if (pick) void vscode.window.showTextDocument(vscode.Uri.file(logFile(runDir)));
      });
  });
  return true;
}
