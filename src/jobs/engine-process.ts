import { errorMessage } from '@shared/unknown-value';
/**
 * Entry point of an engine process (Electron utilityProcess, or a Node fork from the CLI and web
 * mode). It loads TensorFlow.js, so the parent never blocks on tensor work. It either probes the
 * backends and reports, or runs one job and streams its events; the parent stops it afterwards.
 */
import { selectBackend } from '@engine/backend';
import { RunEngine } from '@shared/engine-choice';
import { ParentMessage, type EngineMessage, type JobKind, type JobSpec } from '@shared/engine-protocol';
import type { EvaluationRequestInput } from '@shared/evaluation';
import type { RunEvent, RunEventSink } from '@shared/run-events';
import type { ForcedBackend } from '@shared/system';
import { connectToParent } from './parent-port';

const parent = connectToParent();
const post = (message: EngineMessage): void => parent.post(message);
const cancel = new AbortController();
let busy = false;

interface JobContext {
  outDir: string;
  emit: RunEventSink;
  signal: AbortSignal;
}

/**
 * A run whose config names the PyTorch engine: its Python ranks started from here, their events
 * (validated) passed on as this process's own; they resume from the run's checkpoints by themselves.
 */
async function runOnTorch(kind: 'pretrain' | 'finetune', config: unknown, context: JobContext): Promise<unknown> {
  const engine = RunEngine.parse((config as { engine?: unknown }).engine);
  if (engine.name !== 'torch') throw new Error('internal: not a PyTorch run');
  const { finetuneJob, pretrainJob } = await import('@torch/job');
  const { runTorchJob } = await import('@torch/launch');
  const job = kind === 'pretrain' ? await pretrainJob(config) : await finetuneJob(config);
  return runTorchJob(job, { ...context, nproc: engine.nproc, device: engine.device, precision: engine.precision });
}

const onTorch = (config: unknown): boolean =>
  typeof config === 'object' && config !== null && (config as { engine?: { name?: unknown } }).engine?.name === 'torch';

/** Each kind's engine entry point; a new run and a resumed one are the same call ('if-any'). */
const JOBS: Record<JobKind, (config: unknown, context: JobContext) => Promise<unknown>> = {
  pretrain: async (config, context) =>
    onTorch(config)
      ? runOnTorch('pretrain', config, context)
      : (await import('@engine/pretrain/trainer')).runPretraining(config, { ...context, resume: 'if-any' }),
  finetune: async (config, context) =>
    onTorch(config)
      ? runOnTorch('finetune', config, context)
      : (await import('@engine/finetune/trainer')).runFinetuning(config, { ...context, resume: 'if-any' }),
  evaluate: async (config, context) => {
    // evaluate() and evaluateOnTorch() validate their request themselves (zod), as every kind here does.
    const request = config as EvaluationRequestInput;
    const { engineForRequest, evaluateOnTorch } = await import('@torch/evaluate');
    const { evaluate } = await import('@engine/evaluate');
    // The report goes to the parent before `done`, so it stores both without reading report.json.
    const held: RunEvent[] = [];
    const options = {
      ...context,
      emit: (event: RunEvent) => (event.type === 'done' ? held.push(event) : context.emit(event)),
    };
    const report =
      (await engineForRequest(request)) === 'torch'
        ? await evaluateOnTorch(request, options)
        : await evaluate(request, options);
    post({ type: 'evaluation', report });
    for (const event of held) context.emit(event);
  },
  landscape: async (config, context) => (await import('@engine/landscape')).computeLandscape(config, context),
};

async function runJob(job: JobSpec, forced: ForcedBackend | null): Promise<void> {
  const report = await selectBackend(forced, 'engine-process');
  post({ type: 'ready', report });
  let reportedFailure = false;
  const emit: RunEventSink = (event) => {
    if (event.type === 'failed') reportedFailure = true;
    post({ type: 'event', event });
  };
  try {
    await JOBS[job.kind](job.config, { outDir: job.outDir, emit, signal: cancel.signal });
    post({ type: 'finished', outcome: 'done' });
  } catch (error) {
    if (cancel.signal.aborted) {
      post({ type: 'finished', outcome: 'cancelled' });
      return;
    }
    if (!reportedFailure) emit({ type: 'failed', message: errorMessage(error), step: null, lastCheckpoint: null });
    post({ type: 'finished', outcome: 'failed' });
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
        .catch((error: unknown) => post({ type: 'failed', message: errorMessage(error) }));
      break;
    case 'run':
      if (busy) {
        post({ type: 'failed', message: 'This engine process is already running a job.' });
        break;
      }
      busy = true;
      runJob(message.job, message.forced).catch((error: unknown) =>
        post({ type: 'failed', message: errorMessage(error) }),
      );
      break;
    case 'cancel':
      cancel.abort();
      break;
  }
});

// A forked process whose parent went away has no one to report to: stop (its checkpoints are on disk).
process.on('disconnect', () => process.exit(0));
