/**
 * The results panel's script. It renders the PanelState the extension sends, keeps a copy with
 * setState (hide/show and window reload restore it without a worker round trip), and turns the
 * controls into messages. Opacity and colormap are drawn here; everything that needs a new map
 * (method, head fusion, discard ratio, layer, head) asks the extension, which asks the worker.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-form-group/index.js';
import '@vscode-elements/elements/dist/vscode-label/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-progress-ring/index.js';
import '@vscode-elements/elements/dist/vscode-radio/index.js';
import '@vscode-elements/elements/dist/vscode-radio-group/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import type { Controls, HostMessage, PanelState, WebviewMessage } from '../common/webviewMessages/resultsPanel';
import { drawColorScale, drawHeatmap } from './heatmap';
import { $, vscodeApi } from './vscodeApi';

/** How the status bar writes them ("WebGPU", not "WEBGPU"). */
const PROVIDER_NAMES: Record<string, string> = { webgpu: 'WebGPU', cuda: 'CUDA', cpu: 'CPU' };

const vscode = vscodeApi<WebviewMessage, PanelState>();
let state: PanelState | undefined = vscode.getState();

type Select = HTMLElement & { value: string };
const ui = {
  model: $('model'),
  busy: $('busy'),
  busyText: $('busy-text'),
  copy: $('copy-json'),
  save: $('save-overlay'),
  stage: $('stage'),
  image: $<HTMLImageElement>('image'),
  overlay: $<HTMLCanvasElement>('overlay'),
  caption: $('map-caption'),
  legend: $('legend'),
  legendBar: $<HTMLCanvasElement>('legend-bar'),
  scaleNote: $('scale-note'),
  demoNote: $('demo-note'),
  controls: $('controls'),
  mapError: $('map-error'),
  radios: [
    ...document.querySelectorAll<HTMLElement & { checked: boolean; value: string }>('vscode-radio[name="method"]'),
  ],
  headFusion: $<Select>('head-fusion'),
  discard: $<HTMLInputElement>('discard-ratio'),
  discardValue: $('discard-value'),
  discardGroup: $('discard-group'),
  fusionGroup: $('fusion-group'),
  relevanceHint: $('relevance-hint'),
  layer: $<Select>('layer'),
  layerGroup: $('layer-group'),
  head: $<Select>('head'),
  headGroup: $('head-group'),
  opacity: $<HTMLInputElement>('opacity'),
  opacityValue: $('opacity-value'),
  colormap: $<Select>('colormap'),
  rows: $('rows'),
};
/** The attention controls, disabled while the selected image could not be read (they would do nothing). */
const attentionControls: HTMLElement[] = [
  ...ui.radios,
  ui.headFusion,
  ui.discard,
  ui.layer,
  ui.head,
  ui.opacity,
  ui.colormap,
];

/**
 * Images smaller than this (e.g. 28×28 dataset images) are drawn scaled up by a whole factor with
 * `image-rendering: pixelated`, so their pixels stay sharp squares; the overlay canvas covers the
 * frame, which wraps the image, so it stays aligned whatever the drawn size.
 */
const READABLE_SIDE = 224;
/** Whole-number factor that brings an image of natural size w×h up to READABLE_SIDE (1 when large enough). */
function upscaleFactor(w: number, h: number): number {
  const side = Math.max(w, h);
  return side > 0 && side < READABLE_SIDE ? Math.floor(READABLE_SIDE / side) : 1;
}

/** What the demo model's warning needs to know about the shown image (its training images are 28×28 grey). */
let shownImage: { src: string; width: number; height: number; colour: boolean | undefined } | undefined;
const DEMO_MAX_SIDE = 64;

/**
 * Whether an image has colour: sampled at 32×32 on a canvas. Undefined where the page may not read
 * the pixels (a resource origin without CORS taints the canvas): then only the size is judged.
 */
function hasColour(img: HTMLImageElement): boolean | undefined {
  try {
    const c = document.createElement('canvas');
    c.width = c.height = 32;
    const g = c.getContext('2d', { willReadFrequently: true })!;
    g.drawImage(img, 0, 0, 32, 32);
    const d = g.getImageData(0, 0, 32, 32).data;
    let coloured = 0;
    for (let i = 0; i < d.length; i += 4)
      if (Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 24) coloured++;
    return coloured > 1024 * 0.02;
  } catch {
    return undefined;
  }
}

function fitImage(): void {
  const img = ui.image;
  shownImage = {
    src: img.getAttribute('src') ?? '',
    width: img.naturalWidth,
    height: img.naturalHeight,
    colour: hasColour(img),
  };
  renderDemoNote();
  const k = img.naturalWidth ? upscaleFactor(img.naturalWidth, img.naturalHeight) : 1;
  img.classList.toggle('pixelated', k > 1);
  img.style.width = k > 1 ? `${img.naturalWidth * k}px` : '';
  ui.scaleNote.hidden = k === 1;
  ui.scaleNote.textContent = k > 1 ? `${img.naturalWidth}×${img.naturalHeight} px, shown ${k}× larger` : '';
}
ui.image.addEventListener('load', fitImage);
// A file that cannot be decoded shows no broken-image glyph (its row says what is wrong).
ui.image.addEventListener('error', () => (ui.stage.hidden = true));

function post(m: WebviewMessage): void {
  vscode.postMessage(m);
}

/** Apply a control change locally at once (the UI must not wait for the worker), then tell the extension. */
function setControls(patch: Partial<Controls>, reexplain: boolean): void {
  if (!state) return;
  state = { ...state, controls: { ...state.controls, ...patch } };
  vscode.setState(state);
  render();
  post({ type: 'setControls', controls: state.controls, reexplain });
}

// ---- control events (no inline handlers: CSP forbids them) ----
for (const radio of ui.radios) {
  radio.addEventListener('change', () => {
    if (radio.checked && state && state.controls.method !== radio.value)
      setControls({ method: radio.value as Controls['method'], classIndex: null }, true);
  });
}
ui.headFusion.addEventListener('change', () =>
  setControls({ headFusion: ui.headFusion.value as Controls['headFusion'] }, true),
);
ui.discard.addEventListener('input', () => (ui.discardValue.textContent = Number(ui.discard.value).toFixed(2)));
// 'change' fires on release / key press, so dragging does not flood the worker.
ui.discard.addEventListener('change', () => setControls({ discardRatio: Number(ui.discard.value) }, true));
ui.layer.addEventListener('change', () => setControls({ layer: Number(ui.layer.value) }, true));
ui.head.addEventListener('change', () =>
  setControls({ head: ui.head.value === 'fused' ? null : Number(ui.head.value) }, true),
);
ui.opacity.addEventListener('input', () => {
  if (!state) return;
  state.controls.opacity = Number(ui.opacity.value);
  ui.overlay.style.opacity = String(state.controls.opacity);
  ui.opacityValue.textContent = `${Math.round(state.controls.opacity * 100)}%`;
});
ui.opacity.addEventListener('change', () => setControls({ opacity: Number(ui.opacity.value) }, false));
ui.colormap.addEventListener('change', () =>
  setControls({ colormap: ui.colormap.value as Controls['colormap'] }, false),
);
ui.copy.addEventListener('click', () => post({ type: 'copyJson' }));
ui.save.addEventListener('click', () => post({ type: 'saveOverlay' }));

window.addEventListener('message', (e: MessageEvent<HostMessage>) => {
  const m = e.data;
  if (m?.type !== 'state') return;
  state = m.state;
  vscode.setState(state);
  render();
});

/** The demo model on an image unlike its training data: say that its labels mean little here. */
function renderDemoNote(): void {
  const row = state?.rows[state.selected];
  const img = shownImage;
  const unlike: string[] = [];
  if (state?.model?.demo && row && !row.error && img && img.src === row.src) {
    if (img.colour) unlike.push('in colour');
    if (Math.max(img.width, img.height) > DEMO_MAX_SIDE) unlike.push(`${img.width}×${img.height} px`);
  }
  // From classify: the model's training sample says the image is far from every training image.
  const far = row && !row.error ? row.unlikeTraining : undefined;
  ui.demoNote.hidden = unlike.length === 0 && !far;
  ui.demoNote.textContent = unlike.length
    ? `This image is ${unlike.join(' and ')}, unlike the 28×28 grey clothing images the built-in demo model learned from: it can only answer one of 10 clothing classes, so these labels say little. For photos, pick an ImageNet model with “ViT Lens: Select Model…” (e.g. google/vit-base-patch16-224).`
    : far
      ? `This image is unlike the training data of this model (distance ${far.distance.toFixed(2)} to its nearest training images; 99% of them are within ${far.threshold.toFixed(2)}): its labels say little here.`
      : '';
}

// ---- rendering ----
function render(): void {
  if (!state) return;
  const s = state;
  const c = s.controls;
  const row = s.rows[s.selected];

  ui.model.textContent = s.model ? `${s.model.name} · ${PROVIDER_NAMES[s.model.provider] ?? s.model.provider}` : '';
  ui.model.title = ui.model.textContent;
  ui.busy.hidden = !s.busy;
  ui.busyText.textContent = s.busy ?? '';
  document.body.classList.toggle('is-busy', !!s.busy);
  document.body.dataset.mode = s.mode;

  // Image and heatmap; an image that could not be read is not drawn (its row has the message).
  const failed = !!row?.error;
  if (row && !failed && ui.image.getAttribute('src') !== row.src) {
    ui.image.style.width = '';
    ui.image.src = row.src;
  }
  ui.image.alt = row ? row.name : '';
  ui.stage.hidden = !row || failed;
  if (failed) ui.scaleNote.hidden = true;
  for (const el of attentionControls) el.toggleAttribute('disabled', failed);
  renderDemoNote();
  ui.controls.setAttribute('aria-disabled', String(failed));
  const map = s.map && row && s.map.image === row.path ? s.map : undefined;
  if (map) {
    drawHeatmap(ui.overlay, map.grid, map.values, map.width, map.height, c.colormap);
    ui.overlay.dataset.drawn = `${map.label} · ${c.colormap}`;
    ui.overlay.hidden = false;
    drawColorScale(ui.legendBar, c.colormap);
    ui.legend.dataset.colormap = c.colormap;
    ui.legend.hidden = false;
    ui.caption.textContent =
      map.method === 'rollout'
        ? `Attention rollout (${map.label})`
        : map.method === 'relevance'
          ? `Class relevance: why “${map.class?.label ?? '?'}”`
          : `Raw attention (${map.label})`;
  } else {
    ui.overlay.hidden = true;
    ui.legend.hidden = true;
    delete ui.overlay.dataset.drawn;
    ui.caption.textContent = '';
  }
  ui.overlay.style.opacity = String(c.opacity);
  // The selected row already shows its own error: said once, there.
  const mapError = failed && s.mapError === row.error ? undefined : s.mapError;
  ui.mapError.hidden = !mapError;
  ui.mapError.textContent = mapError ?? '';

  // Controls mirror the state.
  for (const r of ui.radios) r.checked = r.value === c.method;
  setSelect(ui.headFusion, c.headFusion);
  ui.discard.value = String(c.discardRatio);
  ui.discardValue.textContent = c.discardRatio.toFixed(2);
  ui.opacity.value = String(c.opacity);
  ui.opacityValue.textContent = `${Math.round(c.opacity * 100)}%`;
  setSelect(ui.colormap, c.colormap);
  const raw = c.method === 'attention';
  const relevance = c.method === 'relevance';
  ui.discardGroup.hidden = raw || relevance;
  ui.fusionGroup.hidden = relevance;
  ui.relevanceHint.hidden = !relevance;
  ui.layerGroup.hidden = !raw;
  ui.headGroup.hidden = !raw;
  const layers = s.model?.numLayers ?? 0;
  const heads = s.model?.numHeads ?? 0;
  fillOptions(
    ui.layer,
    Array.from({ length: layers }, (_, i) => [String(i), `Layer ${i}`]),
    String(c.layer),
  );
  fillOptions(
    ui.head,
    [
      ['fused', `All heads (${c.headFusion})`],
      ...Array.from({ length: heads }, (_, i): [string, string] => [String(i), `Head ${i}`]),
    ],
    c.head === null ? 'fused' : String(c.head),
  );
  const explainable = s.model?.explainAvailable !== false;
  // Relevance reads the weights, not the graph's attention outputs: it can be saved where rollout cannot run.
  ui.save.toggleAttribute('disabled', failed || !map || (!explainable && map.method !== 'relevance'));
  ui.copy.toggleAttribute('disabled', !s.rows.some(r => r.predictions));

  renderRows(s, map?.method === 'relevance' ? map.class?.index : undefined);
}

function setSelect(select: Select, value: string): void {
  if (select.value !== value) select.value = value;
}

/** Rebuild a select's options only when they change (rebuilding would close an open dropdown). */
function fillOptions(select: Select, options: [string, string][], value: string): void {
  const key = options.map(o => o.join('=')).join(',');
  if (select.dataset.options !== key) {
    select.dataset.options = key;
    select.replaceChildren(
      ...options.map(([v, label]) => {
        const o = document.createElement('vscode-option');
        o.setAttribute('value', v);
        if (v === value) o.setAttribute('selected', '');
        o.textContent = label;
        return o;
      }),
    );
  }
  setSelect(select, value);
}

/** `explained`: the class the shown relevance map explains (its label is marked in the selected row). */
function renderRows(s: PanelState, explained: number | undefined): void {
  const items = s.rows.map((row, index) => {
    const li = document.createElement('li');
    li.className = 'row';
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'row-head';
    button.setAttribute('aria-pressed', String(index === s.selected));
    button.title = s.rows.length > 1 ? 'Show the attention of this image' : row.path;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = row.name;
    button.append(thumbnail(row), name);
    button.addEventListener('click', () => {
      if (state && index !== state.selected) {
        state = { ...state, selected: index, map: undefined };
        vscode.setState(state);
        render();
        post({ type: 'select', index });
      }
    });
    li.append(button);
    if (row.error) {
      const p = document.createElement('p');
      p.className = 'error';
      p.setAttribute('role', 'alert');
      p.textContent = errorText(row);
      li.append(p);
    } else if (row.predictions) {
      li.append(predictionList(row.predictions, index === s.selected, explained));
    } else {
      const p = document.createElement('p');
      p.className = 'pending';
      p.textContent = 'Waiting for the model…';
      li.append(p);
    }
    return li;
  });
  ui.rows.replaceChildren(...items);
}

/** A row's thumbnail; a file that cannot be read gets an empty placeholder, never a broken-image glyph. */
function thumbnail(row: PanelState['rows'][number]): HTMLElement {
  const placeholder = () => {
    const empty = document.createElement('span');
    empty.className = 'thumb missing';
    return empty;
  };
  if (row.error) return placeholder();
  const img = document.createElement('img');
  img.alt = '';
  img.className = 'thumb';
  img.addEventListener('load', () =>
    img.classList.toggle('pixelated', Math.max(img.naturalWidth, img.naturalHeight) < 64),
  );
  img.addEventListener('error', () => img.replaceWith(placeholder()));
  img.src = row.src;
  return img;
}

/** The worker names files by absolute path (maybe a temp copy): the row shows its short name instead. */
function errorText(row: PanelState['rows'][number]): string {
  return (row.error ?? '').split(row.path).join(row.name);
}

/** The top-k bars; in the selected row each label is a button that explains that class (relevance). */
function predictionList(
  predictions: NonNullable<PanelState['rows'][number]['predictions']>,
  selected: boolean,
  explained: number | undefined,
): HTMLElement {
  const ol = document.createElement('ol');
  ol.className = 'predictions';
  for (const p of predictions) {
    const li = document.createElement('li');
    li.className = 'prediction';
    const pct = p.score * 100;
    const label = document.createElement(selected ? 'button' : 'span');
    label.className = 'label';
    label.textContent = p.label;
    label.title = `class ${p.index}`;
    if (label instanceof HTMLButtonElement) {
      label.type = 'button';
      label.classList.add('class-pick');
      label.title = `Why “${p.label}”? Show the class relevance of class ${p.index}`;
      label.setAttribute('aria-pressed', String(p.index === explained));
      label.addEventListener('click', () => {
        if (state && !(state.controls.method === 'relevance' && p.index === explained))
          setControls({ method: 'relevance', classIndex: p.index }, true);
      });
    }
    const value = document.createElement('span');
    value.className = 'score';
    value.textContent = `${pct.toFixed(1)}%`;
    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.setAttribute('role', 'meter');
    bar.setAttribute('aria-label', p.label);
    bar.setAttribute('aria-valuemin', '0');
    bar.setAttribute('aria-valuemax', '100');
    bar.setAttribute('aria-valuenow', pct.toFixed(1));
    const fill = document.createElement('div');
    fill.className = 'fill';
    // CSSOM, not a style attribute: allowed by the CSP.
    fill.style.width = `${Math.max(0.5, pct)}%`;
    bar.append(fill);
    li.append(label, value, bar);
    ol.append(li);
  }
  return ol;
}

render();
post({ type: 'ready' });
