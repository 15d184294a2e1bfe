/**
 * ViT: Fine-tune ViT on Folder — scan the folder (worker), show what was found, ask the few choices
 * that matter (remembered per dataset), then start `vit-lens train` as its own process and show it
 * in the Runs view and the dashboard.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { resolveModelSpec } from '../config';
import type { Ctx } from '../ctx';
import { isCancellation } from '../ctx';
import { openDashboard } from '../dashboard';
import { messageOf } from '../resultsPanel';
import { ScanDatasetRequest, ScanDatasetResult } from '../../common/workerRequests';
import { builtInModel } from '../../common/modelSpec';
import { modelFacts, ModelFacts } from './baseModel';
import { runForm } from './fineTuneForm';
import { cliPath, launchTrainer } from './launch';
import { findTorch } from './torchChoice';
import { interpreterPath } from './torchInterpreter';
import { summarizeScan } from './scanSummary';
import type { RunStore } from './store';
import { DEFAULT_ANSWERS, defaultRunName, editorTrainThreads, FineTuneAnswers, trainArgs } from './trainArgs';
import { BackendsProbe, probeTrainBackends } from './trainBackends';
import { runCli } from './trainerProcess';

const MEMORY_KEY = 'vitLens.fineTune.answers';
const MEMORY_LIMIT = 30;

export async function fineTune(
  ctx: Ctx,
  store: RunStore,
  reveal: (dir: string) => Promise<void>,
  arg?: unknown,
): Promise<void> {
  const folder = await datasetFolder(arg);
  if (!folder) return;
  const memory = ctx.extension.workspaceState.get<Record<string, Partial<FineTuneAnswers>>>(MEMORY_KEY) ?? {};
  const remembered = memory[folder] ?? {};

  // Asked while the folder is scanned; the form shows the answers. The Backend row is asked for
  // the thread count the run will get.
  const threads = editorTrainThreads();
  const torch = findTorch(cliPath(ctx));
  const backends = trainBackends(ctx, threads);
  const scan = await scanWithProgress(ctx, folder, remembered.valSplit ?? DEFAULT_ANSWERS.valSplit);
  if (!scan) return;
  if (!(await confirmSummary(scan))) return;

  const facts = pickInitialModel(ctx, remembered.model);
  const taken = (name: string) => fs.existsSync(path.join(store.runsDir, name));
  const answers: FineTuneAnswers = { ...DEFAULT_ANSWERS, ...remembered, model: facts.spec };
  if (facts.spec.startsWith('scratch:') && !remembered.mode) answers.mode = 'full';
  const found = await torch;
  // PyTorch stays chosen for this dataset only while that interpreter still imports torch.
  answers.torchPython = found.label && remembered.torchPython ? interpreterPath(found) : undefined;
  const summary = `${summarizeScan(scan).message} · runs go to ${store.runsDir}`;
  const state = await runForm(
    { answers, name: '', facts },
    {
      summary,
      backends: await backends,
      trainImages: scan.classes.reduce((n, c) => n + c.train, 0),
      nameTaken: taken,
      defaultName: mode => defaultRunName(folder, mode, new Date(), taken),
      pickBaseModel: current => pickBaseModel(ctx, store, current),
      torch: found,
    },
  );
  if (!state) return;

  const runDir = path.join(store.runsDir, state.name);
  if (taken(state.name)) {
    void vscode.window.showErrorMessage(`ViT Lens: ${runDir} already exists; choose another run name.`);
    return;
  }
  // Most recent last; the oldest datasets are forgotten beyond MEMORY_LIMIT.
  const { [folder]: _old, ...others } = memory;
  await ctx.extension.workspaceState.update(
    MEMORY_KEY,
    Object.fromEntries([...Object.entries(others).slice(-(MEMORY_LIMIT - 1)), [folder, state.answers]]),
  );
  const ok = await launchTrainer(
    ctx,
    store,
    runDir,
    trainArgs(folder, runDir, { threads, ...state.answers }, ctx.settings().cacheDir),
    `start ${state.name}`,
  );
  if (!ok) return;
  await reveal(runDir);
  openDashboard(ctx, [{ kind: 'run', dir: runDir }]);
}

let backendsProbe: Promise<BackendsProbe> | undefined;

/** What the trainer's backends would run on, asked once per window (again after a failed ask); `threads` is the same each time. */
function trainBackends(ctx: Ctx, threads: number): Promise<BackendsProbe> {
  backendsProbe ??= probeTrainBackends(args => runCli(cliPath(ctx), args, AbortSignal.timeout(30_000)), threads).then(
    p => {
      if ('error' in p) {
        ctx.log.warn(`vit-lens train --list-backends: ${p.error}`);
        backendsProbe = undefined;
      }
      return p;
    },
  );
  return backendsProbe;
}

async function datasetFolder(arg: unknown): Promise<string | undefined> {
  if (arg instanceof vscode.Uri) {
    if (arg.scheme !== 'file') {
      void vscode.window.showErrorMessage(`ViT Lens trains on folders on this machine; ${arg.toString()} is not one.`);
      return undefined;
    }
    return arg.fsPath;
  }
  const picked = await vscode.window.showOpenDialog({
    canSelectFolders: true,
    canSelectFiles: false,
    canSelectMany: false,
    defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
    title: 'Fine-tune ViT: dataset folder (one sub-folder per class, or train/ and val/)',
    openLabel: 'Scan Folder',
  });
  return picked?.[0]?.fsPath;
}

async function scanWithProgress(ctx: Ctx, folder: string, valSplit: number): Promise<ScanDatasetResult | undefined> {
  const title = `Scanning ${path.basename(folder)}`;
  try {
    return await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title, cancellable: true },
      (progress, token) =>
        ctx.worker.request(ScanDatasetRequest, { folder, checkImages: true, valSplit }, token, progress),
    );
  } catch (e) {
    if (!isCancellation(e))
      void vscode.window.showErrorMessage(`ViT Lens cannot fine-tune on this folder: ${messageOf(e)}`);
    return undefined;
  }
}

/** The summary as a modal; false when the user cancels or the dataset cannot be trained on. */
async function confirmSummary(scan: ScanDatasetResult): Promise<boolean> {
  const s = summarizeScan(scan);
  if (s.blocking) {
    void vscode.window.showErrorMessage(`ViT Lens cannot fine-tune: ${s.blocking}`);
    return false;
  }
  for (;;) {
    const actions = scan.skipped.length ? ['Continue…', 'Show Skipped Files'] : ['Continue…'];
    const pick = await vscode.window.showInformationMessage(s.message, { modal: true, detail: s.detail }, ...actions);
    if (pick !== 'Show Skipped Files') return pick === 'Continue…';
    const text = scan.skipped.map(f => `${path.relative(scan.root, f.file) || f.file}\t${f.reason}`).join('\n');
    await vscode.window.showTextDocument(
      await vscode.workspace.openTextDocument({
        content: `Files the trainer will skip in ${scan.root}:\n\n${text}\n`,
        language: 'plaintext',
      }),
      { preview: true },
    );
  }
}

/** The remembered base model, else the current vitLens.model when the trainer can start from it, else the built-in model. */
function pickInitialModel(ctx: Ctx, remembered: string | undefined): ModelFacts {
  const candidates = [
    remembered,
    resolveModelSpec(ctx.settings().modelSetting, ctx.extension.extensionPath),
    builtIn(ctx),
  ];
  for (const c of candidates) {
    if (!c) continue;
    const f = modelFacts(c);
    if (!f.unusable) return f;
    if (f.alternative) return modelFacts(f.alternative);
  }
  return modelFacts('scratch:tiny');
}

function builtIn(ctx: Ctx): string | undefined {
  return builtInModel(ctx.extension.extensionPath, fs.existsSync);
}

type ModelPick = vscode.QuickPickItem & { spec?: string; browse?: boolean };

async function pickBaseModel(ctx: Ctx, store: RunStore, current: string): Promise<ModelFacts | undefined> {
  const items: ModelPick[] = [];
  const add = (label: string, spec: string, detail?: string) => {
    const f = modelFacts(spec);
    if (f.unusable && !f.alternative) {
      items.push({ label: `$(circle-slash) ${label}`, description: 'cannot be fine-tuned', detail: f.unusable });
    } else {
      const use = f.unusable ? f.alternative! : spec;
      items.push({
        label,
        description: use === current ? 'selected' : undefined,
        detail: f.unusable ? `${f.unusable}; uses ${use} instead` : (detail ?? use),
        spec: use,
      });
    }
  };
  const setting = resolveModelSpec(ctx.settings().modelSetting, ctx.extension.extensionPath);
  if (setting && setting !== builtIn(ctx)) add('$(eye) Current model (vitLens.model)', setting);
  const b = builtIn(ctx);
  if (b) add('$(package) Built-in model', b, 'Fashion-MNIST ViT (28×28, grayscale); best for small grayscale images');
  const runs = store.entries
    .filter(r => r.status === 'finished' && fs.existsSync(path.join(r.dir, 'export', 'config.json')))
    .slice(0, 5);
  if (runs.length) items.push({ label: 'Earlier runs', kind: vscode.QuickPickItemKind.Separator });
  for (const r of runs)
    add(`$(history) ${r.name}`, r.dir, `continue from its best epoch (${r.info?.classes.length} classes)`);
  items.push({ label: 'From scratch', kind: vscode.QuickPickItemKind.Separator });
  items.push({
    label: 'Tiny ViT from scratch',
    description: 'scratch:tiny',
    detail: 'DeiT-Ti (5M parameters): needs full mode and many images',
    spec: 'scratch:tiny',
  });
  items.push({
    label: 'Small ViT from scratch',
    description: 'scratch:small',
    detail: 'DeiT-S (22M parameters)',
    spec: 'scratch:small',
  });
  items.push({ label: 'Other', kind: vscode.QuickPickItemKind.Separator });
  items.push({
    label: '$(folder) Model folder, .npz or .onnx…',
    detail:
      'A Hugging Face folder with config.json and model.safetensors, a Google vision_transformer .npz, a ViT exported to .onnx, or a run folder',
    browse: true,
  });

  for (;;) {
    const pick = await vscode.window.showQuickPick(items, {
      title: 'Fine-tune ViT: Base model',
      placeHolder: 'The weights to start from',
      matchOnDetail: true,
    });
    if (!pick) return undefined;
    if (pick.spec) return modelFacts(pick.spec);
    if (!pick.browse) {
      void vscode.window.showWarningMessage(
        `ViT Lens: ${pick.detail}. Pick a Hugging Face folder with model.safetensors, a .npz, an .onnx, or start from scratch.`,
      );
      continue;
    }
    const uri = await vscode.window.showOpenDialog({
      canSelectFiles: true,
      canSelectFolders: true,
      canSelectMany: false,
      filters: { 'ViT checkpoints': ['npz', 'onnx'] },
      title: 'Base model: a folder, .npz or .onnx',
    });
    if (!uri?.[0]) continue;
    const f = modelFacts(uri[0].fsPath);
    if (!f.unusable) return f;
    if (f.alternative) return modelFacts(f.alternative);
    void vscode.window.showErrorMessage(`ViT Lens cannot fine-tune from this: ${f.unusable}.`);
  }
}
