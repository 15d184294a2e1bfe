/**
 * The dataset audit panel (one per dataset): the three lists of an audit.json, and the actions on
 * them. Moves use the dashboard's rename (never overwrites); Delete sends the file to the trash
 * after a confirmation; Ignore hides a finding. Every decision is appended to audit.json's
 * `decisions` (so a re-run keeps ignored findings hidden) and the file is rewritten atomically.
 * Undo takes back the last move or ignore (a deletion is undone from the system trash).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import { rename } from '../dashboard/moves';
import { Disposable } from '../disposable';
import type { AuditDecision, AuditKind, AuditResult } from '../../common/workerRequests';
import { ResultsPanel } from '../resultsPanel';
import { pageParts } from '../webviewPage';
import { auditHtml } from './html';
import { Lists, withoutFile } from './listEdits';
import { HostMessage, listedFiles, parseWebviewMessage, WebviewMessage } from '../../common/webviewMessages/audit';

export const AUDIT_VIEW_TYPE = 'vitLens.audit';

interface UndoStep {
  label: string;
  lists: Lists;
  /** Puts the file back (moves). */
  revert?: () => Promise<boolean>;
}

const toAbs = (root: string, rel: string) => path.join(root, ...rel.split('/'));
const toRel = (root: string, abs: string) => path.relative(root, abs).split(path.sep).join('/');

export class AuditPanel extends Disposable {
  private readonly undoSteps: UndoStep[] = [];
  private files = new Set<string>();

  static show(ctx: Ctx, report: AuditResult): AuditPanel {
    const existing = ctx.panels.audits.get(report.dataset);
    if (existing) {
      existing.report = report;
      existing.undoSteps.length = 0;
      existing.panel.reveal(undefined, false);
      existing.post();
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(
      AUDIT_VIEW_TYPE,
      `Audit: ${path.basename(report.dataset)}`,
      vscode.ViewColumn.Active,
      { enableScripts: true, localResourceRoots: [] },
    );
    return new AuditPanel(ctx, panel, report);
  }

  /** After a window reload (the serializer in index.ts). */
  static revive(ctx: Ctx, panel: vscode.WebviewPanel, report: AuditResult): AuditPanel {
    ctx.panels.audits.get(report.dataset)?.dispose();
    return new AuditPanel(ctx, panel, report);
  }

  private constructor(
    private readonly ctx: Ctx,
    private readonly panel: vscode.WebviewPanel,
    private report: AuditResult,
  ) {
    super();
    this._register(ctx.panels.audits.track(report.dataset, this));
    this._register(panel);
    panel.iconPath = vscode.Uri.joinPath(ctx.extensionUri, 'media', 'icon.png');
    const ext = ctx.extensionUri;
    panel.webview.options = {
      enableScripts: true,
      localResourceRoots: [
        vscode.Uri.joinPath(ext, 'dist'),
        vscode.Uri.joinPath(ext, 'media'),
        vscode.Uri.file(report.dataset),
      ],
    };
    panel.webview.html = auditHtml(
      pageParts(
        panel.webview,
        vscode.Uri.joinPath(ext, 'dist', 'audit.js'),
        vscode.Uri.joinPath(ext, 'media', 'audit.css'),
      ),
    );
    this._register(panel.onDidDispose(() => this.dispose()));
    this._register(
      panel.webview.onDidReceiveMessage(m => {
        const msg = parseWebviewMessage(m, this.files);
        if (msg) void this.handle(msg).catch(e => ctx.reportError('carry out the audit action', e));
        else ctx.log.warn(`ignored a malformed message from the audit panel: ${JSON.stringify(m)?.slice(0, 200)}`);
      }),
    );
  }

  private post(): void {
    const r = this.report;
    this.files = listedFiles(r);
    const baseUri = this.panel.webview.asWebviewUri(vscode.Uri.file(r.dataset)).toString().replace(/\/$/, '');
    const m: HostMessage = {
      type: 'data',
      data: {
        folder: r.dataset,
        file: r.file,
        model: r.model,
        images: r.images,
        classes: r.classes,
        baseUri,
        labelIssues: r.labelIssues,
        duplicates: r.duplicates,
        outliers: r.outliers,
        undo: this.undoSteps.at(-1)?.label,
        ignored: r.decisions.filter(d => d.action === 'ignore').length,
      },
    };
    if (!this.isDisposed) void this.panel.webview.postMessage(m);
  }

  /** Apply new lists, remember how to go back, and save audit.json. */
  private async commit(lists: Lists, step: UndoStep | undefined): Promise<void> {
    if (step) this.undoSteps.push(step);
    this.report = { ...this.report, ...lists };
    this.post();
    await saveAudit(this.report);
  }

  private decision(kind: AuditKind, files: string[], action: AuditDecision['action'], to?: string): AuditDecision[] {
    return [...this.report.decisions, { kind, files, action, ...(to ? { to } : {}), at: new Date().toISOString() }];
  }

  private kindOf(file: string): AuditKind {
    return this.report.labelIssues.some(l => l.file === file)
      ? 'labelIssue'
      : this.report.outliers.some(o => o.file === file)
        ? 'outlier'
        : 'duplicate';
  }

  private async handle(m: WebviewMessage): Promise<void> {
    const r = this.report;
    switch (m.type) {
      case 'ready':
        this.post();
        return;
      case 'rerun':
        await vscode.commands.executeCommand('vitLens.auditDataset', vscode.Uri.file(r.dataset));
        return;
      case 'open':
        ResultsPanel.show(this.ctx, [toAbs(r.dataset, m.file)], 'explain');
        return;
      case 'move': {
        const from = toAbs(r.dataset, m.file);
        const current = path.basename(path.dirname(from));
        const suggested = r.labelIssues.find(l => l.file === m.file)?.suggested;
        const items = r.classes
          .filter(c => c !== current)
          .sort((a, b) => Number(b === suggested) - Number(a === suggested));
        const pick = await vscode.window.showQuickPick(
          items.map(c => ({ label: c, description: c === suggested ? 'suggested by the audit' : undefined })),
          { title: `Move ${path.basename(from)} to class…`, placeHolder: `Now in “${current}”` },
        );
        if (!pick) return;
        // The class folders' parent (the dataset, or its train/ or val/).
        const to = path.join(path.dirname(path.dirname(from)), pick.label, path.basename(from));
        if (!(await rename(from, to))) return;
        const rel = toRel(r.dataset, to);
        const before = {
          labelIssues: r.labelIssues,
          duplicates: r.duplicates,
          outliers: r.outliers,
          decisions: r.decisions,
        };
        await this.commit(
          { ...withoutFile(before, m.file, rel), decisions: this.decision(this.kindOf(m.file), [m.file], 'move', rel) },
          {
            label: `move ${path.basename(from)} back to “${current}”`,
            lists: before,
            revert: () => rename(to, from),
          },
        );
        return;
      }
      case 'delete': {
        const file = toAbs(r.dataset, m.file);
        const ok = await vscode.window.showWarningMessage(
          `Move ${m.file} to the trash?`,
          { modal: true, detail: 'Restore it from the system trash to undo.' },
          'Delete',
        );
        if (ok !== 'Delete') return;
        await vscode.workspace.fs.delete(vscode.Uri.file(file), { useTrash: true });
        // Earlier undo steps would bring the deleted file back into the lists.
        this.undoSteps.length = 0;
        await this.commit(
          { ...withoutFile(r, m.file), decisions: this.decision(this.kindOf(m.file), [m.file], 'delete') },
          undefined,
        );
        return;
      }
      case 'ignore': {
        const before = {
          labelIssues: r.labelIssues,
          duplicates: r.duplicates,
          outliers: r.outliers,
          decisions: r.decisions,
        };
        const key = m.files.slice().sort().join('\n');
        const lists: Lists = {
          labelIssues: m.kind === 'labelIssue' ? r.labelIssues.filter(l => l.file !== m.files[0]) : r.labelIssues,
          outliers: m.kind === 'outlier' ? r.outliers.filter(o => o.file !== m.files[0]) : r.outliers,
          duplicates:
            m.kind === 'duplicate' ? r.duplicates.filter(g => g.files.slice().sort().join('\n') !== key) : r.duplicates,
          decisions: this.decision(m.kind, m.files, 'ignore'),
        };
        await this.commit(lists, {
          label: `show ${m.files.length === 1 ? path.basename(m.files[0]) : `the group of ${m.files.length}`} again`,
          lists: before,
        });
        return;
      }
      case 'undo': {
        const step = this.undoSteps.pop();
        if (!step) return;
        if (step.revert && !(await step.revert())) {
          this.undoSteps.push(step);
          return;
        }
        await this.commit(step.lists, undefined);
        return;
      }
    }
  }
}

/** Rewrite audit.json with the current lists and decisions: a temp file beside it, then a rename. */
async function saveAudit(r: AuditResult): Promise<void> {
  const tmp = `${r.file}.${process.pid}.${Date.now().toString(36)}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(r, null, 1) + '\n');
  await fs.rename(tmp, r.file);
}
