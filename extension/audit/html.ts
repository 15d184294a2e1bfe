/** The audit panel's HTML: its body inside the shared page (extension/webviewPage.ts has the CSP). */
import { folderHeader, webviewPage, type PageParts } from '../webviewPage';

export function auditHtml(parts: PageParts): string {
  return webviewPage({ ...parts, title: 'ViT Lens Dataset Audit', imgSrc: [], body: BODY });
}

const BODY = `${folderHeader(`
<vscode-button id="undo" secondary disabled title="Undo the last move or ignore">Undo</vscode-button>
<vscode-button id="rerun" title="Audit the folder again with the current model">Audit Again</vscode-button>`)}
<p id="error" class="banner error" role="alert" hidden></p>
<div class="tabs" role="tablist" aria-label="Audit findings">
  <button type="button" role="tab" id="tab-labelIssues" data-tab="labelIssues" aria-controls="list">Label issues <span class="count"></span></button>
  <button type="button" role="tab" id="tab-duplicates" data-tab="duplicates" aria-controls="list">Duplicates <span class="count"></span></button>
  <button type="button" role="tab" id="tab-outliers" data-tab="outliers" aria-controls="list">Outliers <span class="count"></span></button>
</div>
<div class="bar">
  <p id="explain" class="muted explain"></p>
  <label class="sort">Sort by <select id="sort"></select></label>
</div>
<ol id="list" class="list" role="tabpanel"></ol>
<p id="empty" class="empty muted" hidden></p>`;
