/** The Runs tree: one item per run (click → dashboard), with its log, run.json and export as children. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { contextValue, describeRun, statusIcon, tooltipMarkdown } from './format';
import type { RunEntry } from './runFolders';
import type { RunStore } from './store';

export type RunNode = { kind: 'run'; run: RunEntry } | { kind: 'file'; run: RunEntry; file: string; label: string };

export class RunsTree implements vscode.TreeDataProvider<RunNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<RunNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly sub: vscode.Disposable;
  /** Nodes by run folder, so reveal() and the view's selection use the objects the view knows. */
  private nodes = new Map<string, RunNode & { kind: 'run' }>();

  constructor(store: RunStore) {
    this.sub = store.onDidChange(() => {
      this.nodes = new Map(store.entries.map(run => [run.dir, { kind: 'run' as const, run }]));
      this.changed.fire(undefined);
    });
  }

  node(dir: string): RunNode | undefined {
    return this.nodes.get(dir);
  }

  getChildren(parent?: RunNode): RunNode[] {
    if (!parent) return [...this.nodes.values()];
    if (parent.kind !== 'run') return [];
    const files: [string, string][] = [
      ['train.log', 'train.log'],
      ['run.json', 'run.json'],
      ['report.json', 'report.json'],
      ['export', 'export/'],
    ];
    return files
      .filter(([f]) => fs.existsSync(path.join(parent.run.dir, f)))
      .map(([f, label]) => ({ kind: 'file', run: parent.run, file: path.join(parent.run.dir, f), label }));
  }

  getParent(n: RunNode): RunNode | undefined {
    return n.kind === 'file' ? this.nodes.get(n.run.dir) : undefined;
  }

  getTreeItem(n: RunNode): vscode.TreeItem {
    if (n.kind === 'file') {
      const uri = vscode.Uri.file(n.file);
      const item = new vscode.TreeItem(uri, vscode.TreeItemCollapsibleState.None);
      item.label = n.label;
      item.contextValue = 'runFile';
      item.command = n.label.endsWith('/')
        ? { command: 'revealFileInOS', title: 'Reveal', arguments: [uri] }
        : { command: 'vscode.open', title: 'Open', arguments: [uri] };
      return item;
    }
    const r = n.run;
    const item = new vscode.TreeItem(r.name, vscode.TreeItemCollapsibleState.Collapsed);
    item.id = r.dir;
    item.description = describeRun(r);
    const icon = statusIcon(r);
    item.iconPath = new vscode.ThemeIcon(icon.id, icon.color ? new vscode.ThemeColor(icon.color) : undefined);
    item.tooltip = new vscode.MarkdownString(tooltipMarkdown(r));
    item.contextValue = contextValue(r);
    if (r.info) item.command = { command: 'vitLens.runs.openDashboard', title: 'Open Dashboard', arguments: [n] };
    return item;
  }

  dispose(): void {
    this.sub.dispose();
    this.changed.dispose();
  }
}
