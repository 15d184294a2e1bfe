/**
 * The panels' lifetimes (extension/disposable.ts): what a panel registers is released once, newest
 * first, and the registry the context object owns forgets a closed panel and closes the open ones.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Disposable, PanelRegistry } from '../../extension/disposable';

class Owner extends Disposable {
  constructor(readonly log: string[]) {
    super();
  }
  own(name: string): void {
    this._register({ dispose: () => this.log.push(name) });
  }
  get closed(): boolean {
    return this.isDisposed;
  }
}

test('a Disposable releases what it registered once, newest first, and disposes late registrations at once', () => {
  const log: string[] = [];
  const o = new Owner(log);
  o.own('panel');
  o.own('listener');
  assert.equal(o.closed, false);
  o.dispose();
  o.dispose();
  assert.deepEqual(log, ['listener', 'panel']);
  assert.equal(o.closed, true);
  o.own('late');
  assert.deepEqual(log, ['listener', 'panel', 'late']);
});

class Panel extends Disposable {
  constructor(registry: PanelRegistry<Panel>, key: string) {
    super();
    this._register(registry.track(key, this));
  }
  retrack(registry: PanelRegistry<Panel>, key: string): void {
    this._register(registry.track(key, this));
  }
  get closed(): boolean {
    return this.isDisposed;
  }
}

test('the registry finds open panels by key, forgets closed ones and closes the rest', () => {
  const registry = new PanelRegistry<Panel>();
  const a = new Panel(registry, '/data/a');
  const b = new Panel(registry, '/data/b');
  assert.equal(registry.get('/data/a'), a);
  assert.equal(registry.has('/data/b'), true);

  // A panel that moves to another key leaves its old one.
  b.retrack(registry, '/data/c');
  assert.equal(registry.has('/data/b'), false);
  assert.equal(registry.get('/data/c'), b);

  // Closing a replaced panel leaves its successor under the key.
  const a2 = new Panel(registry, '/data/a');
  a.dispose();
  assert.equal(registry.get('/data/a'), a2);

  registry.dispose();
  assert.equal(b.closed && a2.closed, true);
  assert.equal(registry.has('/data/a') || registry.has('/data/c'), false);
});
