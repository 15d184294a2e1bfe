/** Runs view and Fine-tune ViT on Folder (issue 5): placeholder until they land. */
import type { Ctx } from '../ctx';

export function registerRuns(_ctx: Ctx): void {}
