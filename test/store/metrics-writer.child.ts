/**
 * Child process of durability.test.ts: records metrics events through the real RunStore as fast as
 * it can, and after each recordEvent has returned (its transaction committed) writes the step to
 * stdout. The test kills it with SIGKILL and checks that every step it printed is in the database.
 * Run as: node --import ./test/store/ts-hooks.mjs metrics-writer.child.ts <db file> <run id>
 */
import { writeSync } from 'node:fs';
import { RunStore } from '../../src/store/run-store';

const [file, runId] = process.argv.slice(2);
if (file === undefined || runId === undefined) throw new Error('usage: metrics-writer.child.ts <db file> <run id>');

const store = RunStore.open(file);
store.recordEvent(runId, {
  type: 'started',
  runKind: 'pretrain',
  backend: 'cpu',
  outDir: '/tmp/out',
  step: 0,
  epoch: 0,
  totalSteps: 1_000_000,
  stepsPerEpoch: 1000,
  resumedFrom: null,
});
writeSync(1, 'started\n');

for (let step = 0; ; step += 1) {
  const epoch = Math.floor(step / 1000);
  store.recordEvent(runId, {
    type: 'metrics',
    step,
    epoch,
    values: { loss: 1 / (step + 1), recon_loss: step % 7, mi: Math.sin(step), lr: 1e-3, images_per_s: 100 + step },
  });
  if (step % 50 === 49) {
    // A batch of mixed events: all of them or none must survive.
    store.recordEvents(runId, [
      {
        type: 'progress',
        epoch: epoch + 1,
        epochs: 1000,
        step,
        totalSteps: 1_000_000,
        imagesPerSecond: 1,
        etaSeconds: 1,
      },
      { type: 'checkpoint', step, epoch, path: `/tmp/out/ckpt-${step}` },
      { type: 'log', level: 'info', message: `checkpoint ${step}` },
    ]);
  }
  // Synchronous write: the line leaves this process before the next event starts.
  writeSync(1, `${step}\n`);
}
