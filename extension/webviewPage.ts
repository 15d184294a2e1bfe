/**
 * The page around every webview of ours (results panel, training dashboard, predictions table):
 * the CSP, the stylesheet, the script and the nonce. Pure (no `vscode` value import) so the
 * webview tests build the very same pages around a fake host; each panel keeps its own body.
 *
 * Security: CSP `default-src 'none'`; scripts only by nonce; styles from the extension (plus the
 * nonce, which the web components' constructable stylesheets do not need but a fallback would);
 * fonts from the extension; images only from webview resources (the extension and the folders in
 * each panel's localResourceRoots) plus what `imgSrc` adds. No inline handlers: the scripts attach
 * every listener.
 */
import type * as vscode from 'vscode';

/** What a page needs from the webview it is set on. */
export interface PageParts {
  /** `webview.cspSource` */
  cspSource: string;
  nonce: string;
  scriptUri: string;
  styleUri: string;
}

export interface PageSpec extends PageParts {
  title: string;
  /** The markup inside <body>, before the script tag. */
  body: string;
  /** Image sources besides `cspSource`, e.g. `data:` or `blob:` that the page's own script makes. */
  imgSrc: string[];
}

export function webviewPage({ cspSource, nonce, scriptUri, styleUri, title, body, imgSrc }: PageSpec): string {
  const csp = [
    "default-src 'none'",
    [`img-src ${cspSource}`, ...imgSrc].join(' '),
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
<title>${title}</title>
</head>
<body>
${body}
<script nonce="${nonce}" src="${scriptUri}"></script>
</body>
</html>`;
}

/** The header of the folder panels (predictions table, dataset audit): title and summary, filled in by the page's script; `actions` on the right. */
export function folderHeader(actions: string): string {
  return `<header class="top">
  <div class="summary">
    <h1 id="title"></h1>
    <p id="summary" class="muted" aria-live="polite"></p>
  </div>
  <div class="actions">
    ${actions.trim().split('\n').join('\n    ')}
  </div>
</header>`;
}

/** A fresh nonce each time the HTML is set (128 random bits, base64url). */
export function makeNonce(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return Buffer.from(bytes).toString('base64url');
}

/** The parts for `webview`, with a fresh nonce: `script` and `style` are files the webview may load (see localResourceRoots). */
export function pageParts(
  webview: Pick<vscode.Webview, 'cspSource' | 'asWebviewUri'>,
  script: vscode.Uri,
  style: vscode.Uri,
): PageParts {
  return {
    cspSource: webview.cspSource,
    nonce: makeNonce(),
    scriptUri: webview.asWebviewUri(script).toString(),
    styleUri: webview.asWebviewUri(style).toString(),
  };
}
