/**
 * Entry point of an engine process (Electron utilityProcess, or a Node fork from the CLI and web
 * mode). It loads TensorFlow.js, so the parent never blocks on tensor work. It either probes the
 * backends and reports, or runs one job and streams its events; the parent stops it afterwards.
 */
import { selectBackend } from '../engine/backend';
import { ParentMessage, type EngineMessage, type JobSpec } from '../shared/engine-protocol';
import type { ForcedBackend } from '../shared/system';
import { connectToParent } from './parent-port';

const parent = connectToParent();
const post = (message: EngineMessage): void => parent.post(message);
const cancel = new AbortController();
let busy = false;

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));

async function runJob(job: JobSpec, forced: ForcedBackend | null): Promise<void> {
  const report = await selectBackend(forced, 'engine-process');
  post({ type: 'ready', report });
  const { runPretraining, RunCancelledError, RunFailedError } = await import('../engine/pretrain/trainer');
  try {
    await runPretraining(job.config, {
      outDir: job.outDir,
      resume: 'if-any',
      signal: cancel.signal,
      emit: (event) => post({ type: 'event', event }),
    });
    post({ type: 'finished', outcome: 'done' });
  } catch (error) {
    if (error instanceof RunCancelledError) post({ type: 'finished', outcome: 'cancelled' });
    else if (error instanceof RunFailedError) post({ type: 'finished', outcome: 'failed' });
    else {
      post({ type: 'event', event: { type: 'failed', message: errorText(error), step: null, lastCheckpoint: null } });
      post({ type: 'finished', outcome: 'failed' });
    }
  }
}

parent.onMessage((raw) => {
  const parsed = ParentMessage.safeParse(raw);
  if (!parsed.success) {
    post({ type: 'failed', message: `Engine process got a malformed message: ${parsed.error.message}` });
    return;
  }
  const message = parsed.data;
  switch (message.type) {
    case 'probe':
      selectBackend(message.forced, 'engine-process')
        .then((report) => post({ type: 'ready', report }))
        .catch((error: unknown) => post({ type: 'failed', message: errorText(error) }));
      break;
    case 'run':
      if (busy) {
        post({ type: 'failed', message: 'This engine process is already running a job.' });
        break;
      }
      busy = true;
      runJob(message.job, message.forced).catch((error: unknown) =>
        post({ type: 'failed', message: errorText(error) }),
      );
      break;
    case 'cancel':
      cancel.abort();
      break;
  }
});

// A forked process whose parent went away has no one to report to: stop (its checkpoints are on disk).
process.on('disconnect', () => process.exit(0));
