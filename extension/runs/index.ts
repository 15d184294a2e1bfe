/**
 * The Runs view (activity bar → ViT Lens → Runs) and ViT: Fine-tune ViT on Folder.
 *
 * Runs are folders under `vitLens.runsDir` in the run directory format; the view only reads them,
 * so runs started from a terminal, another machine or CI appear like the ones started here.
 * Nothing heavy happens at activation: the store lists a folder and starts a file watcher.
 */
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import { openDashboard } from '../dashboard';
import { deleteRuns, exportRun, resumeRun, reveal, stopRun, useAsModel } from './actions';
import { fineTune } from './fineTune';
import type { RunEntry } from './runFolders';
import { RunStore } from './store';
import { RunNode, RunsTree } from './tree';

export function registerRuns(ctx: Ctx): void {
  const store = new RunStore(ctx.extension.globalStorageUri, ctx.log);
  const tree = new RunsTree(store);
  const view = vscode.window.createTreeView('vitLens.runs', {
    treeDataProvider: tree,
    canSelectMany: true,
    showCollapseAll: true,
  });
  const updateMessage = () => {
    // The welcome content covers "no runs"; a folder that cannot be listed needs saying.
    view.message = store.listError;
  };
  ctx.push(store, tree, view, store.onDidChange(updateMessage));
  ctx.push(
    vscode.workspace.onDidChangeConfiguration(e => e.affectsConfiguration('vitLens.runsDir') && store.reconfigure()),
  );

  /** The runs a command applies to: the clicked item and, when it is part of a multi-selection, the whole selection. */
  const targets = (clicked?: unknown, selected?: unknown): RunEntry[] => {
    const nodes = (
      Array.isArray(selected) && selected.length ? selected : clicked ? [clicked] : view.selection
    ) as RunNode[];
    const dirs = [...new Set(nodes.filter(n => n && typeof n === 'object' && 'run' in n).map(n => n.run.dir))];
    // The node may predate the last refresh: act on the current state of the run.
    return dirs.map(d => store.find(d)).filter((r): r is RunEntry => !!r);
  };
  const forEach = (run: (r: RunEntry) => unknown) => async (clicked?: unknown, selected?: unknown) => {
    for (const r of targets(clicked, selected)) await run(r);
  };
  const register = (id: string, fn: (...args: unknown[]) => unknown) =>
    ctx.push(vscode.commands.registerCommand(id, fn));

  const revealRun = async (dir: string) => {
    await store.reload();
    const node = tree.node(dir);
    if (node) await view.reveal(node, { select: true, focus: false }).then(undefined, () => undefined);
  };

  register('vitLens.fineTune', arg => fineTune(ctx, store, revealRun, arg));
  register('vitLens.runs.refresh', () => store.refresh(true));
  register('vitLens.runs.openDashboard', (clicked, selected) => {
    const runs = targets(clicked, selected).filter(r => r.info);
    if (runs.length)
      openDashboard(
        ctx,
        runs.map(r => ({ kind: 'run', dir: r.dir })),
      );
  });
  register(
    'vitLens.runs.stop',
    forEach(r => stopRun(store, r)),
  );
  register(
    'vitLens.runs.resume',
    forEach(r => resumeRun(ctx, store, r)),
  );
  register(
    'vitLens.runs.export',
    forEach(r => exportRun(ctx, r)),
  );
  register('vitLens.runs.useAsModel', clicked => {
    const r = targets(clicked)[0];
    return r && useAsModel(ctx, r);
  });
  register(
    'vitLens.runs.reveal',
    forEach(r => reveal(r.dir)),
  );
  register('vitLens.runs.auditDataset', clicked => {
    const dataset = targets(clicked)[0]?.info?.config.dataset;
    return dataset && vscode.commands.executeCommand('vitLens.auditDataset', vscode.Uri.file(dataset));
  });
  register('vitLens.runs.delete', async (clicked, selected) => {
    const runs = targets(clicked, selected);
    if (runs.length) await deleteRuns(store, runs);
  });
}
