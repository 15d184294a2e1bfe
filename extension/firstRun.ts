/**
 * The first classification in the editor with no `vitLens.model` set asks, once, which model to use:
 * the standard ImageNet ViT from the hub (its download size from a HEAD request), the offline
 * built-in demo (10 clothing classes), or another model. The answer is kept in globalState. Without
 * network the prompt says so and offers the demo. The CLI does not ask: its default stays the
 * offline built-in model.
 */
import * as vscode from 'vscode';
import { formatSize, hubWeightsSize } from './hubSize';
import { writeModelSetting } from './config';

export const STANDARD_MODEL = 'google/vit-base-patch16-224';
export const DEMO_MODEL_NAME = 'Fashion-MNIST demo (10 clothing classes)';
export const ANSWER_KEY = 'vitLens.firstModelAnswer';
const HEAD_TIMEOUT_MS = 8000;

export type FirstRunAnswer = 'download' | 'demo' | 'other';
export const DOWNLOAD = 'Download';
export const USE_DEMO = 'Use the offline demo model (10 clothing classes)';
export const CHOOSE = 'Choose another…';

interface FirstRunHost {
  extension: vscode.ExtensionContext;
  settings(): { modelSetting: string };
  log: vscode.LogOutputChannel;
  picker: { pick(current: string): Promise<string | undefined> };
}

/** Whether the prompt is due: no model set, not answered before, not turned off (vitLens.askForModel). */
export function shouldAsk(host: FirstRunHost): boolean {
  if (host.settings().modelSetting) return false;
  if (host.extension.globalState.get<FirstRunAnswer>(ANSWER_KEY)) return false;
  return vscode.workspace.getConfiguration('vitLens').get<boolean>('askForModel', true);
}

/** Ask when due; false when the user dismissed the question (the command then does nothing). */
export async function ensureModelChosen(host: FirstRunHost): Promise<boolean> {
  if (!shouldAsk(host)) return true;
  let size: string | undefined;
  let offline: string | undefined;
  try {
    const w = await hubWeightsSize(STANDARD_MODEL, { signal: AbortSignal.timeout(HEAD_TIMEOUT_MS) });
    if (w?.bytes) size = formatSize(w.bytes);
  } catch (e) {
    offline = e instanceof Error ? e.message : String(e);
    host.log.warn(`first-run model prompt: ${offline}`);
  }
  const answer = offline
    ? await vscode.window.showWarningMessage(
        `ViT Lens classifies with ${STANDARD_MODEL} (ImageNet, 1000 classes), but the Hugging Face Hub cannot be reached, so it cannot be downloaded now.`,
        {
          modal: true,
          detail: `The built-in demo model works offline; it knows only 10 clothing classes (Fashion-MNIST), so photos get a clothing label.\n\n${offline}`,
        },
        USE_DEMO,
        CHOOSE,
      )
    : await vscode.window.showInformationMessage(
        `ViT Lens classifies with ${STANDARD_MODEL} (ImageNet, 1000 classes; ${size ?? 'size unknown'}, downloaded once, cached).`,
        {
          modal: true,
          detail:
            'Or use the built-in demo model: offline, but it knows only 10 clothing classes (Fashion-MNIST). You can change the model any time with “ViT Lens: Select Model…”.',
        },
        DOWNLOAD,
        USE_DEMO,
        CHOOSE,
      );
  if (answer === DOWNLOAD) {
    await writeModelSetting(STANDARD_MODEL);
    await remember(host, 'download');
    return true;
  }
  if (answer === USE_DEMO) {
    await remember(host, 'demo');
    return true;
  }
  if (answer === CHOOSE) {
    // The picker writes the setting; its built-in entry (the demo) is an answer too.
    if ((await host.picker.pick(host.settings().modelSetting)) === undefined) return false;
    await remember(host, 'other');
    return true;
  }
  return false;
}

async function remember(host: FirstRunHost, answer: FirstRunAnswer): Promise<void> {
  await host.extension.globalState.update(ANSWER_KEY, answer);
  host.log.info(`first-run model prompt answered: ${answer}`);
}
