/** What every webview script of ours starts with: VS Code's API for the page, and element lookup by id. */

/** `Message`: what the page posts to the extension; `State`: what it keeps with setState. */
export interface VsCodeApi<Message, State> {
  postMessage(message: Message): void;
  getState(): State | undefined;
  setState(state: State): void;
}
declare function acquireVsCodeApi(): VsCodeApi<unknown, unknown>;

/** VS Code allows one call per page: each script calls this once, at the top. */
export const vscodeApi = <Message, State>() => acquireVsCodeApi() as VsCodeApi<Message, State>;

export const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
