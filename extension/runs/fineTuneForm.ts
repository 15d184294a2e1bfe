/**
 * The Fine-tune choices as one QuickPick "form": every choice is a row showing its value (good
 * defaults, or the last answers for this dataset), "Start Training" is the first row, so the common
 * case is one Enter; picking a row edits it (QuickPick or InputBox with inline validation) and comes
 * back. The rarely changed options sit behind "Advanced…".
 */
import * as vscode from 'vscode';
import { ModelFacts } from './baseModel';
import { scratchAdvice } from '../../common/scratchAdvice';
import { check, defaultLr, effectiveLr, FineTuneAnswers, Mode, TrainBackend } from './trainArgs';
import { backendChoices, backendDevice, BackendsProbe, backendSummary } from './trainBackends';
import { pickTorch, TorchFound, torchRow } from './torchChoice';
import { torchText } from './torchInterpreter';

export interface FormState {
  answers: FineTuneAnswers;
  name: string;
  /** Until the user types a name, it follows the mode (`<dataset>-<mode>-<time>`). */
  nameEdited?: boolean;
  facts: ModelFacts;
}

export interface FormHooks {
  pickBaseModel(current: string): Promise<ModelFacts | undefined>;
  nameTaken(name: string): boolean;
  defaultName(mode: Mode): string;
  /** The dataset summary, shown as the form's placeholder. */
  summary: string;
  /** What `vit-lens torch-check` found (the PyTorch row); absent: no row. */
  torch?: TorchFound;
  /** What each backend would run on (asked of the CLI, see trainBackends.ts). */
  backends: BackendsProbe;
  /** Training images the scan found (before the model is picked: it decides whether from scratch is advisable). */
  trainImages: number;
}

type Row = vscode.QuickPickItem & { key: string };

const MODES: { mode: Mode; label: string; detail: string }[] = [
  {
    mode: 'head',
    label: 'Head only',
    detail:
      'Freeze the backbone and train a new classifier. Features are computed once and cached: fastest, works with a few images per class.',
  },
  {
    mode: 'last-k',
    label: 'Last k blocks',
    detail:
      'Also train the last k transformer blocks (k = 2; Advanced…). Adapts better to images unlike the pretraining data; slower.',
  },
  {
    mode: 'full',
    label: 'Full fine-tune',
    detail:
      'Train every weight, with augmentation. Best with thousands of images and a GPU; slowest on CPU. Required from scratch.',
  },
];

/** One QuickPick, with `active` highlighted; resolves with the chosen row's key, or undefined on Escape. */
function choose(title: string, placeholder: string, rows: Row[], active?: string): Promise<string | undefined> {
  return new Promise(resolve => {
    const qp = vscode.window.createQuickPick<Row>();
    qp.title = title;
    qp.placeholder = placeholder;
    qp.items = rows;
    qp.matchOnDescription = true;
    const a = rows.find(r => r.key === active);
    if (a) qp.activeItems = [a];
    let done = false;
    qp.onDidAccept(() => {
      done = true;
      resolve(qp.selectedItems[0]?.key);
      qp.hide();
    });
    qp.onDidHide(() => {
      if (!done) resolve(undefined);
      qp.dispose();
    });
    qp.show();
  });
}

async function ask(
  title: string,
  value: string,
  prompt: string,
  validate: (v: string) => string | undefined,
): Promise<string | undefined> {
  const v = await vscode.window.showInputBox({ title, value, prompt, validateInput: validate, ignoreFocusOut: true });
  return v?.trim();
}

const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));

/** Resolves with the final state when the user starts, undefined when they cancel. */
export async function runForm(state: FormState, hooks: FormHooks): Promise<FormState | undefined> {
  const title = 'Fine-tune ViT';
  let active = 'start';
  for (;;) {
    if (!state.nameEdited) state.name = hooks.defaultName(state.answers.mode);
    const a = state.answers;
    const lrDefault = defaultLr(a.optimizer, a.mode, a.model.startsWith('scratch:'));
    const rows: Row[] = [
      {
        key: 'start',
        label: '$(play) Start Training',
        detail: `${state.name} · ${a.mode} · ${a.epochs} epoch${a.epochs === 1 ? '' : 's'} · lr ${effectiveLr(a)} · ${a.torchPython && hooks.torch ? torchText(hooks.torch) : backendDevice(a.backend ?? 'auto', hooks.backends).replace(/ \([^()]*\)$/, '')}`,
      },
      { key: '', label: 'Settings', kind: vscode.QuickPickItemKind.Separator },
      { key: 'model', label: 'Base model', description: a.model },
      ...scratchRow(a.model, hooks.trainImages),
      {
        key: 'mode',
        label: 'Mode',
        description: MODES.find(m => m.mode === a.mode)!.label + (a.mode === 'last-k' ? ` (k = ${a.lastK})` : ''),
      },
      { key: 'epochs', label: 'Epochs', description: String(a.epochs) },
      {
        key: 'lr',
        label: 'Learning rate',
        description: a.lr === undefined ? `${lrDefault} (default for ${a.mode}, ${a.optimizer})` : String(a.lr),
      },
      {
        key: 'imageSize',
        label: 'Image size',
        description: a.imageSize
          ? `${a.imageSize}×${a.imageSize}`
          : `${state.facts.imageSize ?? 224}×${state.facts.imageSize ?? 224} (the model's)`,
      },
      {
        key: 'backend',
        label: 'Backend',
        description: a.torchPython
          ? 'PyTorch trains this run (the PyTorch row)'
          : backendSummary(a.backend ?? 'auto', hooks.backends),
      },
      ...(hooks.torch ? [torchRow(hooks.torch, a.torchPython)] : []),
      { key: 'name', label: 'Run name', description: state.name },
      {
        key: 'advanced',
        label: 'Advanced…',
        description: `batch ${a.batchSize}, ${a.optimizer}, val ${a.valSplit}, seed ${a.seed}, augment ${a.augment === undefined ? 'auto' : a.augment ? 'on' : 'off'}`,
      },
    ];
    const key = await choose(title, hooks.summary, rows, active);
    if (!key) return undefined;
    active = key;
    if (key === 'start') return state;
    if (key === 'model') {
      const facts = await hooks.pickBaseModel(a.model);
      if (facts) {
        state = {
          ...state,
          facts,
          answers: {
            ...a,
            model: facts.spec,
            imageSize: undefined,
            mode: facts.spec.startsWith('scratch:') ? 'full' : a.mode,
          },
        };
      }
    } else if (key === 'mode') {
      const m = await choose(
        `${title}: Mode`,
        'What to train',
        MODES.map(m => ({ key: m.mode, label: m.label, description: m.mode, detail: m.detail })),
        a.mode,
      );
      if (m) state.answers = { ...a, mode: m as Mode };
    } else if (key === 'epochs') {
      const v = await ask(`${title}: Epochs`, String(a.epochs), 'Passes over the training images', check.epochs);
      if (v) a.epochs = Number(v);
    } else if (key === 'lr') {
      const v = await ask(
        `${title}: Learning rate`,
        String(effectiveLr(a)),
        `Peak learning rate after warmup (default ${lrDefault}); empty for the default`,
        x => (x.trim() === '' ? undefined : check.lr(x)),
      );
      if (v !== undefined) a.lr = v === '' || Number(v) === lrDefault ? undefined : Number(v);
    } else if (key === 'imageSize') {
      const own = state.facts.imageSize ?? 224;
      const v = await ask(
        `${title}: Image size`,
        String(a.imageSize ?? own),
        `Square input size; the model's is ${own}. Position embeddings are interpolated for other sizes.`,
        x => check.imageSize(x, state.facts.patchSize),
      );
      if (v) a.imageSize = Number(v) === own ? undefined : Number(v);
    } else if (key === 'backend') {
      const b = await choose(
        `${title}: Backend`,
        'Where the training steps run',
        backendChoices(hooks.backends),
        a.backend ?? 'auto',
      );
      if (b) a.backend = b === 'auto' ? undefined : (b as TrainBackend);
    } else if (key === 'name') {
      const v = await ask(`${title}: Run name`, state.name, 'The run folder under vitLens.runsDir', x =>
        check.runName(x, hooks.nameTaken),
      );
      if (v && v !== state.name) Object.assign(state, { name: v, nameEdited: true });
    } else if (key === 'torch' && hooks.torch) {
      const v = await pickTorch(hooks.torch, a.torchPython);
      if (v !== 'keep') a.torchPython = v;
    } else if (key === 'advanced') {
      await advanced(state, title);
    }
  }
}

/** A warning under the base model when it is a scratch model and the dataset is small; picking it picks the model. */
function scratchRow(model: string, trainImages: number): Row[] {
  const advice = scratchAdvice(model, trainImages);
  return advice ? [{ key: 'model', label: '$(warning) Few images for training from scratch', detail: advice }] : [];
}

async function advanced(state: FormState, title: string): Promise<void> {
  let active = 'back';
  for (;;) {
    const a = state.answers;
    const rows: Row[] = [
      { key: 'back', label: '$(arrow-left) Back' },
      { key: 'batchSize', label: 'Batch size', description: String(a.batchSize) },
      { key: 'optimizer', label: 'Optimizer', description: a.optimizer },
      {
        key: 'valSplit',
        label: 'Validation split',
        description: `${a.valSplit} (ignored with train/ and val/ folders)`,
      },
      { key: 'seed', label: 'Seed', description: String(a.seed) },
      {
        key: 'augment',
        label: 'Augmentation',
        description: a.augment === undefined ? 'auto (on for full, off otherwise)' : a.augment ? 'on' : 'off',
      },
      {
        key: 'lastK',
        label: 'Last k blocks',
        description: `${a.lastK}${a.mode === 'last-k' ? '' : ' (used in last-k mode)'}`,
      },
      { key: 'labelSmoothing', label: 'Label smoothing', description: String(a.labelSmoothing) },
      {
        key: 'weightDecay',
        label: 'Weight decay',
        description:
          a.weightDecay === undefined ? `default (${a.optimizer === 'adamw' ? 0.05 : 0})` : String(a.weightDecay),
      },
    ];
    const key = await choose(`${title}: Advanced`, 'Rarely needed; the defaults suit most datasets', rows, active);
    if (!key || key === 'back') return;
    active = key;
    const edit = async (label: string, prompt: string, validate: (v: string) => string | undefined) =>
      ask(`${title}: ${label}`, rows.find(r => r.key === key)!.description!.split(' ')[0], prompt, validate);
    if (key === 'batchSize')
      a.batchSize =
        num(await edit('Batch size', 'Images per step (lower it if memory runs out)', check.batchSize)) ?? a.batchSize;
    else if (key === 'valSplit')
      a.valSplit =
        num(
          await edit('Validation split', 'Fraction of each class held out for validation (0 to 0.9)', check.valSplit),
        ) ?? a.valSplit;
    else if (key === 'seed')
      a.seed =
        num(await edit('Seed', 'Drives the split, shuffling and augmentation (a run is reproducible)', check.seed)) ??
        a.seed;
    else if (key === 'lastK')
      a.lastK =
        num(
          await edit(
            'Last k blocks',
            `Blocks trained in last-k mode${state.facts.layers ? ` (the model has ${state.facts.layers})` : ''}`,
            v => check.lastK(v, state.facts.layers),
          ),
        ) ?? a.lastK;
    else if (key === 'labelSmoothing')
      a.labelSmoothing =
        num(await edit('Label smoothing', '0 = off; 0.1 is common', check.labelSmoothing)) ?? a.labelSmoothing;
    else if (key === 'weightDecay') {
      const v = await ask(
        `${title}: Weight decay`,
        a.weightDecay === undefined ? '' : String(a.weightDecay),
        'Empty for the optimizer default (AdamW 0.05, SGD 0)',
        check.weightDecay,
      );
      if (v !== undefined) a.weightDecay = v === '' ? undefined : Number(v);
    } else if (key === 'optimizer') {
      const o = await choose(
        `${title}: Optimizer`,
        'The learning rate default follows the optimizer',
        [
          { key: 'adamw', label: 'AdamW', detail: 'Decoupled weight decay; the usual choice for ViTs' },
          { key: 'sgd', label: 'SGD with momentum', detail: 'Momentum 0.9; needs a larger learning rate' },
        ],
        a.optimizer,
      );
      if (o && o !== a.optimizer) Object.assign(a, { optimizer: o, lr: undefined });
    } else if (key === 'augment') {
      const v = await choose(
        `${title}: Augmentation`,
        'Random-resized crop and horizontal flip',
        [
          {
            key: 'auto',
            label: 'Auto',
            detail: 'On for full fine-tuning, off otherwise (head and last-k then use the feature cache)',
          },
          {
            key: 'on',
            label: 'On',
            detail: 'In head/last-k mode the frozen part runs on every batch instead of the cache: slower',
          },
          { key: 'off', label: 'Off' },
        ],
        a.augment === undefined ? 'auto' : a.augment ? 'on' : 'off',
      );
      if (v) a.augment = v === 'auto' ? undefined : v === 'on';
    }
  }
}
