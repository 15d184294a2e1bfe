/**
 * Relabel a suspect image by moving it into another class folder of its dataset (the ImageFolder
 * layout: the class is the image's parent folder, also under train/ and val/), and undo that.
 * Never overwrites: a file of the same name in the target folder stops the move.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { SourceState } from './sourceState';

export async function moveImage(state: SourceState, file: string): Promise<void> {
  const h = state.heldOut(file);
  const classes = state.view.run?.classes;
  if (!h || !classes?.length) return;
  const name = path.basename(file);
  // The folder that holds the class folders (dataset/ or dataset/train/ …).
  const parent = path.dirname(path.dirname(file));
  const current = path.basename(path.dirname(file));
  type Item = vscode.QuickPickItem & { index: number };
  const items: Item[] = classes
    .map((c, index) => ({
      index,
      label: c,
      description: `${((h.probabilities[index] ?? 0) * 100).toFixed(1)}%${index === h.predicted ? ' · predicted' : ''}${c === current ? ' · current folder' : ''}`,
    }))
    .filter(i => i.label !== current)
    // The model's pick first (the quick pick's default), then by probability.
    .sort((a, b) =>
      a.index === h.predicted
        ? -1
        : b.index === h.predicted
          ? 1
          : (h.probabilities[b.index] ?? 0) - (h.probabilities[a.index] ?? 0),
    );
  const pick = await vscode.window.showQuickPick(items, {
    title: `Move ${name} to class…`,
    placeHolder: `Now in “${current}”; the model says “${classes[h.predicted]}”`,
  });
  if (!pick) return;
  const target = path.join(parent, classes[pick.index], name);
  if (!(await rename(file, target))) return;
  state.moved(file, target, pick.index);
  const undo = await vscode.window.showInformationMessage(
    `Moved ${name} from “${current}” to “${classes[pick.index]}”.`,
    'Undo',
  );
  if (undo) await undoMove(state, target);
}

export async function undoMove(state: SourceState, file: string): Promise<void> {
  const move = state.moveOf(file);
  if (!move) return;
  if (!(await rename(file, move.original))) return;
  state.unmoved(move.original);
  void vscode.window.setStatusBarMessage(
    `$(discard) Moved ${path.basename(file)} back to “${path.basename(path.dirname(move.original))}”`,
    4000,
  );
}

/** Rename without overwriting; says why when it cannot. Also the dataset audit's moves (extension/audit/panel.ts). */
export async function rename(from: string, to: string): Promise<boolean> {
  const target = vscode.Uri.file(to);
  try {
    await vscode.workspace.fs.stat(target);
    void vscode.window.showErrorMessage(`Not moved: ${to} already exists.`);
    return false;
  } catch {
    /* free: go on */
  }
  try {
    await vscode.workspace.fs.createDirectory(vscode.Uri.file(path.dirname(to)));
    await vscode.workspace.fs.rename(vscode.Uri.file(from), target, { overwrite: false });
    return true;
  } catch (e) {
    void vscode.window.showErrorMessage(
      `Could not move ${path.basename(from)}: ${e instanceof Error ? e.message : String(e)}`,
    );
    return false;
  }
}
