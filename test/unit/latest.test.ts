import { describe, expect, it } from 'vitest';
import { latestLoad, latestOnly } from '../../src/renderer/src/latest';

/** A promise settled from outside, to make answers arrive in a chosen order. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('latestOnly', () => {
  it('keeps only the latest token current; invalidate makes every token stale', () => {
    const tokens = latestOnly();
    const first = tokens.begin();
    expect(first.current).toBe(true);
    const second = tokens.begin();
    expect([first.current, second.current]).toEqual([false, true]);
    tokens.invalidate();
    expect(second.current).toBe(false);
    expect(tokens.begin().current).toBe(true);
  });

  it('drops an earlier answer that arrives after a later one', async () => {
    const tokens = latestOnly();
    let shown = 'nothing';
    const load = async (answer: Promise<string>) => {
      const token = tokens.begin();
      const value = await answer;
      if (token.current) shown = value;
    };
    const unfiltered = deferred<string>();
    const filtered = deferred<string>();
    const a = load(unfiltered.promise);
    const b = load(filtered.promise);
    filtered.resolve('class 5: 500 images');
    await b;
    unfiltered.resolve('all: 5,000 images');
    await a;
    expect(shown).toBe('class 5: 500 images');
  });
});

describe('latestLoad', () => {
  it('keeps loading true until the latest load ends, and ignores an earlier load’s failure', async () => {
    const loader = latestLoad();
    const slow = deferred<void>();
    const fast = deferred<void>();
    const a = loader.run(() => slow.promise);
    const b = loader.run(() => fast.promise);
    expect(loader.loading.value).toBe(true);
    slow.reject(new Error('the earlier request failed'));
    await a;
    // The earlier load ended, but the latest still runs, and its failure is not the latest's.
    expect(loader.loading.value).toBe(true);
    expect(loader.error.value).toBeNull();
    fast.resolve();
    await b;
    expect(loader.loading.value).toBe(false);
    expect(loader.error.value).toBeNull();
  });

  it('reports the latest load’s failure, and clears it when a new load starts', async () => {
    const loader = latestLoad();
    await loader.run(async () => {
      throw new Error('server answered 500');
    });
    expect(loader.error.value).toBe('server answered 500');
    expect(loader.loading.value).toBe(false);
    const next = deferred<void>();
    const run = loader.run(() => next.promise);
    expect(loader.error.value).toBeNull();
    next.resolve();
    await run;
  });

  it('gives the load its token, stale once another load begins', async () => {
    const loader = latestLoad();
    const gate = deferred<void>();
    let applied = false;
    const a = loader.run(async (token) => {
      await gate.promise;
      if (token.current) applied = true;
    });
    loader.invalidate();
    gate.resolve();
    await a;
    expect(applied).toBe(false);
    expect(loader.loading.value).toBe(false);
  });
});
