/** Training dashboard (issue 5): placeholder until the dashboard lands. */
import type { Ctx } from '../ctx';

/** What a dashboard shows: one of our run folders, or a folder of TensorBoard event files. */
export type DashboardSource = { kind: 'run'; dir: string } | { kind: 'tfevents'; dir: string };

export function registerDashboard(_ctx: Ctx): void {}

export function openDashboard(_ctx: Ctx, _sources: DashboardSource[]): void {}
