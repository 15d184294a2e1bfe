/** Classify Folder (issue 5): placeholder until it lands. */
import type { Ctx } from '../ctx';

export function registerClassifyFolder(_ctx: Ctx): void {}
