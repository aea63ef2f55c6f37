import { effectScope, nextTick, ref, type EffectScope } from 'vue';
import { describe, expect, it } from 'vitest';
import { useQuery } from '../../src/renderer/src/query';

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

/** A fetch whose answers the test releases, one pending promise per call, with the inputs it was asked. */
function controlledFetch<T>() {
  const calls: { input: string; answer: ReturnType<typeof deferred<T>> }[] = [];
  const fetch = (input: string): Promise<T> => {
    const answer = deferred<T>();
    calls.push({ input, answer });
    return answer.promise;
  };
  return { calls, fetch };
}

/** Run `make` in an effect scope (as a component's setup would), returning what it made and the scope. */
function inScope<T>(make: () => T): { made: T; scope: EffectScope } {
  const scope = effectScope();
  const made = scope.run(make);
  if (made === undefined) throw new Error('the scope did not run');
  return { made, scope };
}

/** The `index`th call's answer, to settle. */
function answerOf<T>(calls: { answer: ReturnType<typeof deferred<T>> }[], index: number) {
  const call = calls[index];
  if (!call) throw new Error(`no call ${index} (${calls.length} made)`);
  return call.answer;
}

/** Let the promise callbacks (the query's awaits) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
  await nextTick();
}

describe('useQuery', () => {
  it('loads the input, then shows its answer with loading and loaded flags', async () => {
    const { calls, fetch } = controlledFetch<string>();
    const { made: query, scope } = inScope(() => useQuery(() => 'a', fetch));
    expect(calls.map((call) => call.input)).toEqual(['a']);
    expect([query.loading.value, query.loaded.value, query.data.value]).toEqual([true, false, null]);
    answerOf(calls, 0).resolve('answer to a');
    await settle();
    expect([query.loading.value, query.loaded.value, query.data.value]).toEqual([false, true, 'answer to a']);
    scope.stop();
  });

  it('drops an earlier input’s answer that arrives after the later one', async () => {
    const { calls, fetch } = controlledFetch<string>();
    const input = ref('a');
    const { made: query, scope } = inScope(() => useQuery(() => input.value, fetch));
    input.value = 'b';
    await nextTick();
    expect(calls.map((call) => call.input)).toEqual(['a', 'b']);
    answerOf(calls, 1).resolve('answer to b');
    await settle();
    answerOf(calls, 0).resolve('answer to a');
    await settle();
    expect(query.data.value).toBe('answer to b');
    expect(query.loading.value).toBe(false);
    scope.stop();
  });

  it('keeps the latest load’s error only, and clears the answer of the input that failed', async () => {
    const { calls, fetch } = controlledFetch<string>();
    const input = ref('a');
    const { made: query, scope } = inScope(() => useQuery(() => input.value, fetch));
    answerOf(calls, 0).resolve('answer to a');
    await settle();
    input.value = 'b';
    await nextTick();
    expect(query.data.value).toBeNull();
    answerOf(calls, 1).reject(new Error('b is gone'));
    await settle();
    expect([query.error.value, query.data.value, query.loaded.value]).toEqual(['b is gone', null, true]);
    input.value = 'c';
    await nextTick();
    expect(query.error.value).toBeNull();
    scope.stop();
  });

  it('does not load again for an equal input, and reload keeps the answer until the new one arrives', async () => {
    const { calls, fetch } = controlledFetch<string[]>();
    const input = ref({ id: 'a', tags: ['x'] });
    const { made: query, scope } = inScope(() =>
      useQuery(
        () => input.value,
        (value) => fetch(JSON.stringify(value)),
      ),
    );
    answerOf(calls, 0).resolve(['first']);
    await settle();
    input.value = { id: 'a', tags: ['x'] };
    await nextTick();
    expect(calls).toHaveLength(1);
    const reloading = query.reload();
    expect(calls).toHaveLength(2);
    expect(query.data.value).toEqual(['first']);
    answerOf(calls, 1).resolve(['second']);
    await reloading;
    expect(query.data.value).toEqual(['second']);
    scope.stop();
  });

  it('loads nothing for a null input, and drops answers that arrive after its scope stopped', async () => {
    const { calls, fetch } = controlledFetch<string>();
    const input = ref<string | null>(null);
    const { made: query, scope } = inScope(() => useQuery(() => input.value, fetch));
    await nextTick();
    expect(calls).toHaveLength(0);
    expect([query.loading.value, query.data.value]).toEqual([false, null]);
    input.value = 'a';
    await nextTick();
    scope.stop();
    answerOf(calls, 0).resolve('too late');
    await settle();
    expect(query.data.value).toBeNull();
    expect(query.loading.value).toBe(false);
  });
});
