/**
 * Lifetimes of the extension's objects, as in VS Code's media-preview extension: an owner hands
 * each resource to `_register` and releases them all with one `dispose`. The context object (ctx.ts)
 * owns one `PanelRegistry` per panel kind, so every open panel is closed with the extension.
 * No `vscode` value import: `vscode.Disposable` is only a shape here.
 */

export interface IDisposable {
  dispose(): unknown;
}

/** Owns disposables and releases them once, newest first (listeners before the panel they listen to). */
export abstract class Disposable implements IDisposable {
  private readonly owned: IDisposable[] = [];
  private disposed = false;

  protected get isDisposed(): boolean {
    return this.disposed;
  }

  /** `value` now lives as long as this object; registered after disposal, it is disposed at once. */
  protected _register<T extends IDisposable>(value: T): T {
    if (this.disposed) value.dispose();
    else this.owned.push(value);
    return value;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    while (this.owned.length) this.owned.pop()!.dispose();
  }
}

/** The open panels of one kind, by key (a folder, a set of runs): showing the same key again reveals the open one. */
export class PanelRegistry<P extends IDisposable> implements IDisposable {
  private readonly open = new Map<string, P>();

  get(key: string): P | undefined {
    return this.open.get(key);
  }

  has(key: string): boolean {
    return this.open.has(key);
  }

  /**
   * Track `panel` under `key` (only there: a key it had before is dropped). The panel registers the
   * result, so disposing it leaves the registry (a newer panel under the same key stays).
   */
  track(key: string, panel: P): IDisposable {
    this.forget(panel);
    this.open.set(key, panel);
    return { dispose: () => this.forget(panel) };
  }

  private forget(panel: P): void {
    for (const [key, p] of this.open) if (p === panel) this.open.delete(key);
  }

  /** Close every open panel. */
  dispose(): void {
    for (const p of [...this.open.values()]) p.dispose();
    this.open.clear();
  }
}
