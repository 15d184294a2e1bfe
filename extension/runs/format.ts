/** How a run reads in the Runs view: description, icon, context value and tooltip (Markdown text). Pure, for the unit tests. */
import * as path from 'node:path';
import type { RunEntry } from './runFolders';

export const pct = (v: number) => `${(v * 100).toFixed(1)}%`;

/** The view's status icon: a codicon id and, where colour carries meaning, a theme colour id. */
export function statusIcon(r: RunEntry): { id: string; color?: string } {
  switch (r.status) {
    case 'running':
    case 'starting':
      return { id: 'sync~spin' };
    case 'finished':
      return { id: 'pass', color: 'testing.iconPassed' };
    case 'failed':
      return { id: 'error', color: 'testing.iconFailed' };
    case 'stopped':
      return { id: 'debug-pause' };
    case 'interrupted':
      return { id: 'warning', color: 'list.warningForeground' };
    case 'unreadable':
      return { id: 'warning', color: 'list.warningForeground' };
  }
}

/** The manifest's menus key on this: run.<status>, and runUnreadable for folders that cannot be read. */
export function contextValue(r: RunEntry): string {
  if (r.status === 'unreadable') return 'runUnreadable';
  // A run being started can already be stopped (its pid is known), so it takes the running menus.
  return `run.${r.status === 'starting' ? 'running' : r.status}`;
}

export function datasetName(dataset: string): string {
  return path.basename(dataset.replace(/[\\/]+$/, '')) || dataset;
}

/** e.g. "fmnist · epoch 3/10 · best 91.2%"; a running run adds how far into the run it is. */
export function describeRun(r: RunEntry): string {
  if (r.status === 'starting') return 'starting…';
  if (!r.info) return r.error ?? 'unreadable';
  const i = r.info;
  const parts = [datasetName(i.config.dataset)];
  if (r.status === 'running' && i.totalSteps > 0) {
    const step = Math.max(i.step, r.lastStep?.step ?? 0);
    parts.push(
      `epoch ${Math.min(i.totalEpochs, i.epoch + 1)}/${i.totalEpochs} · ${Math.floor((100 * step) / i.totalSteps)}%`,
    );
  } else {
    parts.push(`epoch ${i.epoch}/${i.totalEpochs}`);
  }
  if (typeof i.bestValAcc === 'number') parts.push(`best ${pct(i.bestValAcc)}`);
  if (r.status === 'interrupted') parts.push('interrupted');
  if (r.elsewhere) parts.push(i.host ? `on ${i.host}` : 'not on this machine?');
  return parts.join(' · ');
}

/** Markdown that shows paths and names literally. */
export function escapeMd(s: string): string {
  return s.replace(/[\\`*_{}[\]()#+\-.!|<>~]/g, c => `\\${c}`);
}

const when = (iso: string | undefined) => (iso ? new Date(iso).toLocaleString() : undefined);

export function tooltipMarkdown(r: RunEntry): string {
  const head = `**${escapeMd(r.name)}** — ${r.status}${r.elsewhere ? ` (${r.info?.host ? `on ${escapeMd(r.info.host)}` : 'process not on this machine'}; files changed recently)` : ''}`;
  if (!r.info) return `${head}\n\n${escapeMd(r.error ?? 'run.json is not written yet')}`;
  const i = r.info;
  const c = i.config;
  const rows: [string, string | undefined][] = [
    ['Dataset', c.dataset && escapeMd(c.dataset)],
    [
      'Classes',
      i.classes?.length
        ? `${i.classes.length}: ${escapeMd(i.classes.slice(0, 8).join(', '))}${i.classes.length > 8 ? ', …' : ''}`
        : undefined,
    ],
    ['Images', `${i.trainImages ?? '?'} train, ${i.valImages ?? '?'} validation`],
    ['Model', c.model && escapeMd(c.model)],
    ['Mode', c.mode === 'last-k' ? `last-k (k = ${c.lastK})` : c.mode],
    ['Backend', i.device ? `${i.backend}: ${escapeMd(i.device)}` : i.backend],
    [
      'Optimizer',
      `${c.optimizer}, lr ${c.lr}, batch ${c.batchSize}${c.accumulate > 1 ? ` × ${c.accumulate}` : ''}${c.imageSize ? `, ${c.imageSize[0]}×${c.imageSize[1]}` : ''}`,
    ],
    [
      'Progress',
      `epoch ${i.epoch}/${i.totalEpochs}, step ${Math.max(i.step, r.lastStep?.step ?? 0)}/${i.totalSteps}${r.lastStep ? `, loss ${r.lastStep.loss.toFixed(4)}, ${r.lastStep.imagesPerSec.toFixed(1)} img/s` : ''}`,
    ],
    [
      'Best val acc',
      typeof i.bestValAcc === 'number' ? `${pct(i.bestValAcc)} (epoch ${(i.bestEpoch ?? 0) + 1})` : undefined,
    ],
    ['Started', when(i.createdAt)],
    ['Updated', when(i.updatedAt)],
    ['Finished', when(i.finishedAt)],
    ['Reason', i.reason && escapeMd(i.reason)],
    ['Pid', i.status === 'running' ? String(i.pid) : undefined],
  ];
  const body = rows
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `| ${k} | ${String(v).replace(/\n/g, ' ')} |`);
  let md = `${head}\n\n| | |\n|---|---|\n${body.join('\n')}`;
  if (r.status === 'interrupted')
    md += '\n\nThe trainer process is gone (killed or crashed). **Resume** continues from the last checkpoint.';
  return md;
}
