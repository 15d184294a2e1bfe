/** The dashboard's chart specs and legend: every line drawn has a legend entry with its colour. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SourceView } from '../../extension/dashboard/model';
import { legendEntries, tfChartSpecs } from '../../webview/dashboard/specs';

const COLORS = ['#1', '#2', '#3', '#4'];

function tfSource(id: number, name: string, runs: string[], tags: string[]): SourceView {
  return {
    id,
    kind: 'tfevents',
    dir: `/logs/${name}`,
    name,
    steps: [],
    epochs: [],
    problems: [],
    scalars: runs.flatMap((run) => tags.map((tag) => ({ run, tag, step: [0, 1], value: [1, 0.5], wallTime: [0, 1] }))),
  };
}

test('TensorBoard runs get one legend entry each, with the colour of their lines in every chart', () => {
  const sources = [tfSource(0, 'logs', ['baseline', 'lr-3e-4', 'mixup'], ['train/loss', 'val/acc'])];
  const legend = legendEntries(sources, COLORS);
  assert.deepEqual(legend.map((l) => l.label), ['baseline', 'lr-3e-4', 'mixup']);
  assert.equal(new Set(legend.map((l) => l.color)).size, 3);
  for (const chart of tfChartSpecs(sources, COLORS)) {
    assert.equal(chart.lines.length, 3);
    for (const line of chart.lines) assert.deepEqual(legend.find((l) => l.label === line.label)?.color, line.color, `${chart.title}: ${line.label}`);
  }
});

test('Several TensorBoard folders: legend labels name the folder and the run', () => {
  const sources = [tfSource(0, 'a', ['run1'], ['loss']), tfSource(1, 'b', ['.', 'run1'], ['loss'])];
  assert.deepEqual(legendEntries(sources, COLORS).map((l) => l.label), ['a / run1', 'b', 'b / run1']);
});
