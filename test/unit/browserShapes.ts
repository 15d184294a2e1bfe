/**
 * The few DOM shapes the browser-side code of the webview tests touches (functions passed to
 * Playwright's `evaluate`, `waitForFunction`, `evaluateAll`, which run in Chromium). The project's
 * tsconfig has no DOM lib (adding it would type server/ against browser globals), so these stand in
 * for it. Types only: nothing here may be called from inside the page, write
 * `(globalThis as unknown as Win)` there. Not named *.test.ts: the runner does not run it.
 */
export interface El {
  id: string;
  textContent: string | null;
  dataset: Record<string, string | undefined>;
  classList: { contains(name: string): boolean };
  getBoundingClientRect(): { x: number; y: number; top: number; width: number; height: number };
  querySelector(selector: string): El | null;
  querySelectorAll(selector: string): Iterable<El>;
  parentElement: El | null;
  firstChild: El | null;
  scrollWidth: number;
  scrollHeight: number;
  scrollTop: number;
  clientWidth: number;
  clientHeight: number;
}

export interface Img extends El {
  complete: boolean;
  naturalWidth: number;
  decode(): Promise<void>;
}

export interface Canvas extends El {
  width: number;
  height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
  toDataURL(): string;
}

/** An input-like control (checkbox, radio, select, the toolkit's vscode-* elements). */
export interface Control extends El {
  checked: boolean;
  disabled: boolean;
  value: string;
}

export interface Style {
  opacity: string;
  imageRendering: string;
  backgroundColor: string;
  lineHeight: string;
  fontWeight: string;
}

/** The page's window: DOM entry points plus what the fake host (webviewHarness.ts) keeps on it. */
export interface Win {
  document: {
    body: El;
    /** Not null: the tests ask only for elements the page has. */
    getElementById<T extends El = El>(id: string): T;
    querySelector(selector: string): El | null;
    querySelectorAll<T extends El = El>(selector: string): Iterable<T>;
  };
  getComputedStyle(el: El): Style;
  postMessage(message: unknown, targetOrigin: string): void;
  scrollTo(x: number, y: number): void;
  navigator: { clipboard: { readText(): Promise<string> } };
  /** What the page posted to the fake host. */
  __posted: unknown[];
  /** The fake host's setState value. */
  __state: unknown;
  __cspViolations: string[];
}

/** One of the dashboard's live charts (webview/dashboard/charts.ts): its element, spec and uPlot. */
export interface LiveChart {
  el: El;
  spec: { group?: string; lines: { label: string; x: number[]; y: (number | null)[] }[] };
  plot: {
    width: number;
    ctx: { canvas: Canvas };
    data: (number | null)[][];
    series: { label: string; show?: boolean; stroke?: unknown; _stroke?: unknown }[];
    scales: { y: { distr: number } };
    setSeries(index: number, opts: { show: boolean }): void;
  };
}

/** The dashboard page's window: its charts by id, kept for the tests (webview/dashboard/main.ts). */
export interface ChartsWin extends Win {
  __vitLensCharts: Map<string, LiveChart>;
}
