/**
 * The predictions table's HTML. Pure (no `vscode` import) so the webview test builds the very same
 * page. Same CSP as the results panel: scripts by nonce only, images only from webview resources
 * (the extension and the classified folder), no inline handlers.
 */
export interface PredictionsHtmlParts {
  cspSource: string;
  nonce: string;
  scriptUri: string;
  styleUri: string;
}

export function predictionsHtml({ cspSource, nonce, scriptUri, styleUri }: PredictionsHtmlParts): string {
  const csp = [
    "default-src 'none'",
    `img-src ${cspSource} data:`,
    `style-src ${cspSource} 'nonce-${nonce}'`,
    `font-src ${cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${styleUri}" nonce="${nonce}">
<title>ViT Lens Predictions</title>
</head>
<body>
<header class="top">
  <div class="summary">
    <h1 id="title"></h1>
    <p id="summary" class="muted" aria-live="polite"></p>
  </div>
  <div class="actions">
    <vscode-button id="open-csv" secondary title="Open predictions.csv">Open CSV</vscode-button>
    <vscode-button id="open-json" secondary title="Open predictions.json">Open JSON</vscode-button>
    <vscode-button id="rerun" title="Classify the folder again with the current model">Classify Again</vscode-button>
  </div>
</header>
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
</div>
<script nonce="${nonce}" src="${scriptUri}"></script>
</body>
</html>`;
}
