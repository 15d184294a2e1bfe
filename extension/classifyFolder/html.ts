/**
 * The predictions table's HTML: its body inside the shared page (extension/webviewPage.ts, which
 * has the CSP; images from the extension and the classified folder, plus `data:`, no `blob:`).
 */
import { folderHeader, webviewPage, type PageParts } from '../webviewPage';

export function predictionsHtml(parts: PageParts): string {
  return webviewPage({ ...parts, title: 'ViT Lens Predictions', imgSrc: ['data:'], body: BODY });
}

const BODY = `${folderHeader(`
<vscode-button id="open-csv" secondary title="Open predictions.csv">Open CSV</vscode-button>
<vscode-button id="open-json" secondary title="Open predictions.json">Open JSON</vscode-button>
<vscode-button id="rerun" title="Classify the folder again with the current model">Classify Again</vscode-button>`)}
<p id="partial" class="banner" role="status" hidden></p>
<p id="error" class="banner error" role="alert" hidden></p>
<details id="failures" class="failures" hidden>
  <summary id="failures-summary"></summary>
  <ul id="failures-list"></ul>
</details>
<div class="filters">
  <vscode-textfield id="filter" placeholder="Filter by file or label" aria-label="Filter by file or label"></vscode-textfield>
  <vscode-checkbox id="disagreements" label="Disagreements only">Disagreements only</vscode-checkbox>
  <span id="shown" class="muted" aria-live="polite"></span>
</div>
<div id="scroller" class="scroller" role="grid" aria-rowcount="1" aria-label="Predictions">
  <div class="row head" role="row" aria-rowindex="1">
    <span class="cell thumb" role="columnheader"><span class="sr-only">Thumbnail</span></span>
    <span class="cell" role="columnheader" data-key="file"><button type="button">Image</button></span>
    <span class="cell" role="columnheader" data-key="folderLabel"><button type="button">Folder label</button></span>
    <span class="cell" role="columnheader" data-key="predicted"><button type="button">Predicted</button></span>
    <span class="cell" role="columnheader" data-key="confidence"><button type="button">Confidence</button></span>
    <span class="cell" role="columnheader" data-key="agrees"><button type="button">Agreement</button></span>
  </div>
  <div id="spacer" class="spacer" role="rowgroup"></div>
  <p id="empty" class="empty muted" hidden></p>
</div>`;
