/** The ViT commands. Explorer and editor-title invocations pass the image(s); the palette uses the active image or asks. */
import * as vscode from 'vscode';
import type { Ctx } from './ctx';
import { IMAGE_EXTENSIONS, isImagePath } from '../common/imageFiles';
import { ensureModelChosen } from './firstRun';
import { ResultsPanel } from './resultsPanel';

const IMAGE_PREVIEW = 'imagePreview.previewEditor';

export function registerCommands(ctx: Ctx): void {
  const register = (id: string, run: (...args: unknown[]) => unknown) =>
    ctx.push(vscode.commands.registerCommand(id, run));

  register('vitLens.classifyImage', async (uri?: unknown, uris?: unknown) => {
    const images = await imagesFor(uri, uris, true);
    if (images && (await ensureModelChosen(ctx))) ResultsPanel.show(ctx, images, 'classify');
  });
  register('vitLens.showAttention', async (uri?: unknown, uris?: unknown) => {
    const images = await imagesFor(uri, uris, false);
    if (images && (await ensureModelChosen(ctx))) ResultsPanel.show(ctx, images.slice(0, 1), 'explain');
  });
  register('vitLens.selectModel', async () => {
    const value = await ctx.picker.pick(ctx.settings().modelSetting, ctx.settings().dtype);
    if (value === undefined) return;
    // Load now, so the status bar shows the provider and a bad pick fails while the user is looking.
    const model = ctx.modelRequest();
    if (model) await ctx.worker.ensureModel(model).catch(e => ctx.reportError('load the model', e));
  });
  register('vitLens.gettingStarted', () =>
    vscode.commands.executeCommand(
      'workbench.action.openWalkthrough',
      `${ctx.extension.extension.id}#vitLens.gettingStarted`,
      false,
    ),
  );
  register('vitLens.showWorkerLog', () => ctx.log.show());
  register('vitLens.restartWorker', () =>
    vscode.window.withProgress(
      { location: vscode.ProgressLocation.Window, title: 'Restarting the ViT Lens worker' },
      () => ctx.worker.restart().catch(e => ctx.reportError('restart the worker', e)),
    ),
  );
}

/** The images a command was invoked on, as file paths; undefined if there are none (after telling the user why). */
async function imagesFor(uri: unknown, uris: unknown, many: boolean): Promise<string[] | undefined> {
  let picked: vscode.Uri[] = [];
  // Explorer: (clicked, all selected); editor title: (resource); palette: ().
  if (Array.isArray(uris) && uris.length > 0) picked = uris.filter((u): u is vscode.Uri => u instanceof vscode.Uri);
  else if (uri instanceof vscode.Uri) picked = [uri];
  else {
    const active = activeImage();
    if (active) picked = [active];
    else {
      picked =
        (await vscode.window.showOpenDialog({
          canSelectMany: many,
          filters: { Images: [...IMAGE_EXTENSIONS] },
          title: many ? 'Classify Images' : 'Show Attention Overlay',
          openLabel: many ? 'Classify' : 'Explain',
        })) ?? [];
      if (picked.length === 0) return undefined;
    }
  }
  const nonFile = picked.find(u => u.scheme !== 'file');
  if (nonFile) {
    void vscode.window.showErrorMessage(
      `ViT Lens reads images from disk; ${nonFile.toString()} is not a file on this machine.`,
    );
    return undefined;
  }
  const images = picked.map(u => u.fsPath).filter(isImagePath);
  if (images.length === 0) {
    void vscode.window.showErrorMessage(
      `ViT Lens: not an image (${IMAGE_EXTENSIONS.join(', ')}): ${picked.map(u => u.fsPath).join(', ')}`,
    );
    return undefined;
  }
  return images;
}

/** The image shown in the active editor group by VS Code's built-in image preview. */
function activeImage(): vscode.Uri | undefined {
  const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
  if (input instanceof vscode.TabInputCustom && input.viewType === IMAGE_PREVIEW) return input.uri;
  if (input instanceof vscode.TabInputText && isImagePath(input.uri.fsPath)) return input.uri;
  return undefined;
}
