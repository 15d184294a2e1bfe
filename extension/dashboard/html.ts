/**
 * The dashboard's HTML: its body inside the shared page (extension/webviewPage.ts, which has the
 * CSP; images from the extension and the run's dataset folder, plus `data:`/`blob:`).
 */
import { webviewPage, type PageParts } from '../webviewPage';

export function dashboardHtml(parts: PageParts): string {
  return webviewPage({ ...parts, title: 'ViT Lens Dashboard', imgSrc: ['data:', 'blob:'], body: BODY });
}

const BODY = `<header id="runs" class="runs" aria-label="Runs" aria-live="polite"></header>
<div id="notices" class="notices" role="status"></div>
<section class="controls" aria-label="Chart controls">
  <div class="segmented" role="radiogroup" aria-label="X axis">
    <button type="button" id="axis-step" role="radio" aria-checked="true">Step</button>
    <button type="button" id="axis-epoch" role="radio" aria-checked="false">Epoch</button>
  </div>
  <label class="smoothing">Smoothing
    <input type="range" id="smoothing" min="0" max="0.999" step="0.001" value="0.6" aria-label="Smoothing">
    <output id="smoothing-value" for="smoothing">0.600</output>
  </label>
  <label class="check"><input type="checkbox" id="log-y"> Log scale</label>
  <span class="spacer"></span>
  <span id="legend" class="legend" aria-label="Legend"></span>
</section>
<section id="charts" class="charts" aria-label="Charts"></section>
<section id="evaluation" class="evaluation" aria-label="Evaluation" hidden>
  <div class="section-head">
    <h2>Evaluation</h2>
    <label id="eval-run-label" class="inline" hidden>Run <select id="eval-run"></select></label>
    <label class="inline">Epoch <select id="eval-epoch"></select></label>
    <label class="check"><input type="checkbox" id="normalize"> Normalise rows</label>
  </div>
  <p id="eval-note" class="note"></p>
  <div class="eval-grid">
    <div class="confusion-wrap"><table id="confusion" class="confusion" aria-label="Confusion matrix"></table></div>
    <table id="prf" class="prf" aria-label="Precision, recall and F1 per class"></table>
  </div>
  <div id="cell-images" class="cell-images" aria-live="polite"></div>
</section>
<section id="gallery" class="gallery" aria-label="Held-out images" hidden>
  <div class="section-head"><h2>Misclassified</h2><span id="misclassified-count" class="note"></span></div>
  <div id="misclassified" class="thumbs"></div>
  <div class="section-head"><h2>Least confident</h2></div>
  <div id="low-confidence" class="thumbs"></div>
</section>
<section id="suspects" class="suspects" aria-label="Suspect labels" hidden>
  <div class="section-head">
    <h2>Suspect labels</h2>
    <label class="inline">Rank by <select id="suspect-rank">
      <option value="selfConfidence">self-confidence (cleanlab)</option>
      <option value="mistakenness">mistakenness (FiftyOne)</option>
    </select></label>
  </div>
  <table id="suspect-table" class="suspect-table"></table>
</section>
<details id="problems" class="problems" hidden><summary></summary><ul id="problem-list"></ul></details>`;
