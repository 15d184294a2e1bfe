/**
 * The results panel's HTML: its body inside the shared page (extension/webviewPage.ts, which has
 * the CSP). Images may also be `blob:`/`data:` made by the panel's own script (the overlay).
 */
import { webviewPage, type PageParts } from './webviewPage';

export function panelHtml(parts: PageParts): string {
  return webviewPage({ ...parts, title: 'ViT Lens', imgSrc: ['data:', 'blob:'], body: BODY });
}

const BODY = `<header class="toolbar">
  <span id="model" class="model" aria-live="polite"></span>
  <span id="busy" class="busy" role="status" aria-live="polite" hidden><vscode-progress-ring></vscode-progress-ring><span id="busy-text"></span></span>
  <span class="spacer"></span>
  <vscode-button id="copy-json" secondary title="Copy the results as JSON">Copy JSON</vscode-button>
  <vscode-button id="save-overlay" title="Save the image with the overlay as PNG">Save Overlay…</vscode-button>
</header>
<main>
  <section id="detail" class="detail" aria-label="Attention">
    <figure class="stage" id="stage">
      <div class="frame">
        <img id="image" alt="">
        <canvas id="overlay" role="img" aria-label="Attention heatmap"></canvas>
      </div>
      <figcaption class="map-caption"><span id="map-caption"></span>
        <span id="legend" class="legend" role="img" aria-label="Colour scale: low to high attention" hidden><span>low</span><canvas id="legend-bar" width="128" height="1"></canvas><span>high</span></span>
      </figcaption>
    </figure>
    <p id="map-error" class="error" role="alert" hidden></p>
    <p id="scale-note" class="hint" hidden></p>
    <p id="demo-note" class="note" role="note" hidden></p>
    <form id="controls" class="controls" aria-label="Attention controls">
      <vscode-form-group variant="vertical">
        <vscode-label for="method">Map</vscode-label>
        <vscode-radio-group id="method">
          <vscode-radio name="method" value="rollout" label="Rollout">Rollout</vscode-radio>
          <vscode-radio name="method" value="relevance" label="Class relevance">Class relevance</vscode-radio>
          <vscode-radio name="method" value="attention" label="Raw attention">Raw attention</vscode-radio>
        </vscode-radio-group>
      </vscode-form-group>
      <p id="relevance-hint" class="hint">Why this class? Click a label among the predictions to explain it.</p>
      <vscode-form-group variant="vertical" id="fusion-group">
        <vscode-label for="head-fusion">Head fusion</vscode-label>
        <vscode-single-select id="head-fusion" aria-label="Head fusion">
          <vscode-option value="mean">mean</vscode-option>
          <vscode-option value="max">max</vscode-option>
          <vscode-option value="min">min</vscode-option>
        </vscode-single-select>
      </vscode-form-group>
      <vscode-form-group variant="vertical" id="discard-group">
        <vscode-label for="discard-ratio">Discard ratio <output id="discard-value" for="discard-ratio"></output></vscode-label>
        <input type="range" id="discard-ratio" min="0" max="0.99" step="0.01" aria-label="Discard ratio">
      </vscode-form-group>
      <vscode-form-group variant="vertical" id="layer-group">
        <vscode-label for="layer">Layer</vscode-label>
        <vscode-single-select id="layer" aria-label="Layer"></vscode-single-select>
      </vscode-form-group>
      <vscode-form-group variant="vertical" id="head-group">
        <vscode-label for="head">Head</vscode-label>
        <vscode-single-select id="head" aria-label="Head"></vscode-single-select>
      </vscode-form-group>
      <vscode-form-group variant="vertical">
        <vscode-label for="opacity">Opacity <output id="opacity-value" for="opacity"></output></vscode-label>
        <input type="range" id="opacity" min="0" max="1" step="0.05" aria-label="Overlay opacity">
      </vscode-form-group>
      <vscode-form-group variant="vertical">
        <vscode-label for="colormap">Colormap</vscode-label>
        <vscode-single-select id="colormap" aria-label="Colormap">
          <vscode-option value="turbo">turbo</vscode-option>
          <vscode-option value="viridis">viridis</vscode-option>
          <vscode-option value="inferno">inferno</vscode-option>
          <vscode-option value="magma">magma</vscode-option>
          <vscode-option value="plasma">plasma</vscode-option>
          <vscode-option value="gray">gray</vscode-option>
        </vscode-single-select>
      </vscode-form-group>
    </form>
  </section>
  <section class="results" aria-label="Predictions">
    <ol id="rows" class="rows"></ol>
  </section>
</main>`;
