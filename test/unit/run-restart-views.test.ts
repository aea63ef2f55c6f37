import { createPinia, setActivePinia } from 'pinia';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { PushMessage } from '../../src/shared/push';
import { Run } from '../../src/shared/store-types';

/** The run page's stores over a fake app API: a run whose first attempt stored steps 1..37. */
const RUN_ID = 'run1';
const steps = Array.from({ length: 37 }, (_, i) => i + 1);
const run = Run.parse({
  ...{ id: RUN_ID, experimentId: 1, name: 'r', kind: 'pretrain', status: 'running', config: {} },
  ...{ parentRunId: null, outDir: '/runs/r', backend: 'wasm', pid: 1, createdAt: 0, startedAt: 0, endedAt: null },
  ...{ lastEventAt: 0, step: 37, totalSteps: 186, epoch: 4, epochs: 19, imagesPerSecond: 1, etaSeconds: 1 },
  ...{ error: null, errorCause: null, lastCheckpoint: null, output: null, summary: null, tags: [], note: null },
});
const answers: Record<string, unknown> = {
  'runs.get': run,
  'runs.metricKeys': ['loss'],
  'runs.metrics': [
    {
      runId: RUN_ID,
      key: 'loss',
      steps,
      values: steps.map((s) => 100 + s),
      wallTimes: steps,
      total: 37,
      downsampled: false,
    },
  ],
  'runs.logs': [],
  'runs.artifacts': [10, 20, 30].map((step, id) => ({
    ...{ id, runId: RUN_ID, kind: 'preview', path: `/runs/r/previews/${step}`, step, createdAt: 0 },
    metadata: {
      epoch: step / 10,
      files: { clean: `previews/${step}/clean.png` },
      count: 4,
      imageSize: 16,
      perturbationScale: 4,
    },
  })),
};
vi.mock('../../src/renderer/src/api/client', () => ({
  api: { call: (method: string) => Promise.resolve(answers[method]) },
}));

// Loaded by a computed name: a literal one would pull the renderer's browser-only client (window) into
// the Node typecheck of the tests. The types below are the parts this test reads.
interface DetailsStore {
  series: Record<string, { steps: number[]; values: (number | null)[] } | undefined>;
  revision: number;
  open(id: string): Promise<void>;
  applyPush(message: PushMessage): void;
}
interface PreviewsStore {
  byRun: Record<string, { step: number }[] | undefined>;
  load(id: string): Promise<void>;
  applyPush(message: PushMessage): void;
}
const stores = '../../src/renderer/src/stores/';
const { useRunDetailsStore } = (await import(/* @vite-ignore */ `${stores}run-details`)) as {
  useRunDetailsStore: () => DetailsStore;
};
const { usePreviewsStore } = (await import(/* @vite-ignore */ `${stores}previews`)) as {
  usePreviewsStore: () => PreviewsStore;
};

const started = (step: number, resumedFrom: string | null): PushMessage => ({
  type: 'run-event',
  runId: RUN_ID,
  event: {
    type: 'started',
    runKind: 'pretrain',
    backend: 'wasm',
    outDir: '/runs/r',
    step,
    epoch: 0,
    totalSteps: 186,
    stepsPerEpoch: 10,
    resumedFrom,
  },
});

beforeEach(() => {
  setActivePinia(createPinia());
});

async function opened() {
  const details = useRunDetailsStore();
  const previews = usePreviewsStore();
  await details.open(RUN_ID);
  await previews.load(RUN_ID);
  expect(details.series.loss?.steps).toEqual(steps);
  expect(previews.byRun[RUN_ID]?.map((p) => p.step)).toEqual([10, 20, 30]);
  return { details, previews };
}

describe('the run page when the run restarts', () => {
  it('starting over drops the charts’ points and the previews of the earlier attempt', async () => {
    const { details, previews } = await opened();
    const revision = details.revision;
    details.applyPush(started(0, null));
    previews.applyPush(started(0, null));
    expect(details.series.loss?.steps).toEqual([]);
    expect(details.revision).toBeGreaterThan(revision);
    expect(previews.byRun[RUN_ID]).toEqual([]);
  });

  it('resuming from step 20 keeps points and previews up to 20', async () => {
    const { details, previews } = await opened();
    details.applyPush(started(20, '/runs/r/checkpoints/epoch-0002'));
    previews.applyPush(started(20, '/runs/r/checkpoints/epoch-0002'));
    expect(details.series.loss?.steps).toEqual(steps.slice(0, 20));
    expect(details.series.loss?.values.at(-1)).toBe(120);
    expect(previews.byRun[RUN_ID]?.map((p) => p.step)).toEqual([10, 20]);
  });
});
