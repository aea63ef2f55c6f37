import { EngineMessage, JobKind, type JobSpec, type ParentMessage } from '@shared/engine-protocol';
import type { EvaluationReport } from '@shared/evaluation';
import type { PushMessage } from '@shared/push';
import type { Run } from '@shared/store-types';
import type { ForcedBackend } from '@shared/system';
import type { RunStore } from '@store/run-store';
import { builtFile, packageRoot } from './build-output';
import type { ProcessChannel, ProcessLauncher } from './channel';

/**
 * Runs queued runs, each in its own engine process, at most `maxConcurrent` at a time (one by
 * default: one GPU). Every event a job sends is written to the store as it arrives and then pushed
 * to listeners, so a crash of the job, the app or the machine loses nothing that was reported.
 */
export interface JobRunnerOptions {
  store: RunStore;
  launch: ProcessLauncher;
  forced: ForcedBackend | null;
  maxConcurrent?: number;
  /** How long a cancelled job may take to stop at a step boundary before it is killed. */
  cancelGraceMs?: number;
}

interface ActiveJob {
  runId: string;
  channel: ProcessChannel;
  /** The run's own last word: done, failed or cancelled. */
  outcome: 'done' | 'failed' | 'cancelled' | null;
  cancelRequested: boolean;
  killTimer: NodeJS.Timeout | null;
}

const SURVIVOR_POLL_MS = 1000;

/** Whether process `pid` exists (EPERM: it does, owned by another user). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false; // 0 and negatives address process groups
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class JobRunner {
  private readonly queue: string[] = [];
  private readonly active = new Map<string, ActiveJob>();
  private readonly listeners = new Set<(message: PushMessage) => void>();
  private readonly survivorTimers = new Set<NodeJS.Timeout>();
  private readonly maxConcurrent: number;
  private readonly cancelGraceMs: number;
  private closed = false;

  constructor(private readonly options: JobRunnerOptions) {
    this.maxConcurrent = options.maxConcurrent ?? 1;
    this.cancelGraceMs = options.cancelGraceMs ?? 15_000;
    // Found at start-up (it reads package.json files), so launching a job later reads no file on the main process.
    packageRoot();
  }

  onPush(listener: (message: PushMessage) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * At start-up: runs a previous app left running (it crashed or was killed) become interrupted,
   * and queued ones are queued again. Returns the interrupted ones (they can be resumed). A run whose
   * recorded engine process still lives (it outlived its app) is left running until that process ends.
   */
  recover(): Run[] {
    const survivors: Run[] = [];
    const interrupted = this.options.store.markInterruptedRuns((run) => {
      const alive = run.pid !== null && processAlive(run.pid);
      if (alive) survivors.push(run);
      return alive;
    });
    for (const run of survivors) this.watchSurvivor(run);
    for (const run of interrupted) this.pushRun(run);
    for (const run of this.options.store.listRuns({ status: 'queued', sort: 'createdAt', direction: 'asc' })) {
      this.enqueue(run.id);
    }
    return interrupted;
  }

  /** Queue a run the store holds as queued. */
  enqueue(runId: string): void {
    if (this.closed) throw new Error('The job runner is shut down.');
    if (!this.queue.includes(runId) && !this.active.has(runId)) this.queue.push(runId);
    this.pump();
  }

  /** Queue an interrupted, failed or cancelled run again; it continues from its newest checkpoint. */
  resume(runId: string): Run {
    const run = this.options.store.updateRunStatus(runId, 'queued', { reason: 'resumed' });
    this.pushRun(run);
    this.enqueue(runId);
    return this.options.store.getRun(runId) ?? run;
  }

  cancel(runId: string): Run {
    const { store } = this.options;
    const job = this.active.get(runId);
    if (job) {
      job.cancelRequested = true;
      job.channel.send({ type: 'cancel' } satisfies ParentMessage);
      job.killTimer ??= setTimeout(() => job.channel.kill(), this.cancelGraceMs);
      return store.getRun(runId) ?? this.missing(runId);
    }
    const index = this.queue.indexOf(runId);
    if (index >= 0) this.queue.splice(index, 1);
    const run = store.updateRunStatus(runId, 'cancelled', { reason: 'cancelled before it started' });
    this.pushRun(run);
    return run;
  }

  isActive(runId: string): boolean {
    return this.active.has(runId);
  }

  /** Stop every job (their runs become interrupted and can be resumed) and accept no more. */
  shutdown(): void {
    this.closed = true;
    this.queue.length = 0;
    for (const timer of this.survivorTimers) clearInterval(timer);
    this.survivorTimers.clear();
    for (const job of this.active.values()) {
      if (job.killTimer) clearTimeout(job.killTimer);
      if (this.options.store.getRun(job.runId)?.status === 'running') {
        this.options.store.updateRunStatus(job.runId, 'interrupted', {
          reason: 'the app was closed; resume continues from the last checkpoint',
        });
      }
      job.channel.kill();
    }
    this.active.clear();
  }

  /**
   * A run an earlier app left with a live engine: nobody records its events now, so once that engine
   * ends, the run becomes interrupted (resumable from its last checkpoint), as if found at start-up.
   */
  private watchSurvivor(run: Run): void {
    const timer = setInterval(() => {
      if (run.pid !== null && processAlive(run.pid)) return;
      clearInterval(timer);
      this.survivorTimers.delete(timer);
      if (this.options.store.getRun(run.id)?.status !== 'running') return;
      this.pushRun(
        this.options.store.updateRunStatus(run.id, 'interrupted', {
          reason: `its engine process ${run.pid}, started by an earlier MIMIR that stopped, has ended; it can be resumed from its last checkpoint`,
        }),
      );
    }, SURVIVOR_POLL_MS);
    timer.unref();
    this.survivorTimers.add(timer);
  }

  private missing(runId: string): never {
    throw new Error(`No run ${runId}.`);
  }

  private pushRun(run: Run): void {
    this.push({ type: 'run-updated', run });
  }

  private push(message: PushMessage): void {
    for (const listener of this.listeners) listener(message);
  }

  private pump(): void {
    while (!this.closed && this.active.size < this.maxConcurrent && this.queue.length > 0) {
      const runId = this.queue.shift();
      if (runId !== undefined) this.start(runId);
    }
  }

  private start(runId: string): void {
    const { store, launch, forced } = this.options;
    const run = store.getRun(runId);
    if (!run || run.status !== 'queued') return;
    if (!run.outDir) {
      this.pushRun(store.updateRunStatus(runId, 'failed', { error: 'The run has no output folder.' }));
      return;
    }
    const job: JobSpec = {
      kind: JobKind.parse(run.kind),
      config: run.config,
      outDir: run.outDir,
    };
    const channel = launch(builtFile('main/engine-process.js'), []);
    const active: ActiveJob = { runId, channel, outcome: null, cancelRequested: false, killTimer: null };
    this.active.set(runId, active);
    this.pushRun(store.updateRunStatus(runId, 'running', { pid: channel.pid ?? 0 }));

    let stderr = '';
    channel.onStderr((text) => {
      stderr = (stderr + text).slice(-4000);
    });
    channel.onMessage((raw) => this.receive(active, raw));
    channel.onExit((code) => this.exited(active, code, stderr));
    channel.send({ type: 'run', job, forced } satisfies ParentMessage);
  }

  private receive(job: ActiveJob, raw: unknown): void {
    if (this.closed) return;
    const { store } = this.options;
    const parsed = EngineMessage.safeParse(raw);
    if (!parsed.success) {
      store.recordEvent(job.runId, {
        type: 'log',
        level: 'error',
        message: `Malformed message from the engine: ${parsed.error.message}`,
      });
      return;
    }
    const message = parsed.data;
    switch (message.type) {
      case 'event': {
        try {
          store.recordEvent(job.runId, message.event);
        } catch (error) {
          store.recordEvent(job.runId, {
            type: 'log',
            level: 'error',
            message: `Could not store a ${message.event.type} event: ${String(error)}`,
          });
        }
        this.push({ type: 'run-event', runId: job.runId, event: message.event });
        if (['started', 'done', 'failed', 'checkpoint'].includes(message.event.type)) {
          const run = store.getRun(job.runId);
          if (run) this.pushRun(run);
        }
        break;
      }
      case 'ready':
        // The engine's own pid (a utilityProcess has none until it runs): what recovery checks.
        store.setEnginePid(job.runId, message.report.pid);
        store.recordEvent(job.runId, {
          type: 'log',
          level: 'info',
          message: `Engine process ${message.report.pid} on ${message.report.chosen} (${message.report.chosenModule}).`,
        });
        break;
      case 'evaluation':
        this.recordEvaluation(job.runId, message.report);
        break;
      case 'finished':
        job.outcome = message.outcome;
        job.channel.kill();
        break;
      case 'failed':
        store.recordEvent(job.runId, { type: 'failed', message: message.message, step: null, lastCheckpoint: null });
        job.outcome = 'failed';
        job.channel.kill();
        break;
    }
  }

  /** An evaluation's report (sent just before its `done`): its numbers and protocol go into the store's evaluations. */
  private recordEvaluation(runId: string, report: EvaluationReport): void {
    const { store } = this.options;
    if (store.getRun(runId)?.kind !== 'evaluate') return;
    try {
      store.addEvaluation(runId, {
        modelCheckpoint: report.model.checkpoint,
        protocol: { threat: report.threat, eps255: report.eps255, examples: report.examples, request: report.request },
        results: report,
      });
    } catch (error) {
      store.recordEvent(runId, {
        type: 'log',
        level: 'error',
        message: `Could not store the evaluation report: ${String(error)}`,
      });
    }
  }

  private exited(job: ActiveJob, code: number | null, stderr: string): void {
    if (this.closed) return; // shutdown() already recorded the run as interrupted
    const { store } = this.options;
    if (job.killTimer) clearTimeout(job.killTimer);
    this.active.delete(job.runId);
    const run = store.getRun(job.runId);
    if (run?.status === 'running') {
      let next: Run;
      if (job.cancelRequested)
        next = store.updateRunStatus(job.runId, 'cancelled', { reason: 'cancelled by the user' });
      else if (job.outcome === 'failed')
        next = store.updateRunStatus(job.runId, 'failed', { error: 'The run failed.' });
      else {
        const detail = stderr.trim().split('\n').slice(-3).join(' | ');
        next = store.updateRunStatus(job.runId, 'interrupted', {
          error: `The engine process stopped unexpectedly (${code === null ? 'killed' : `exit code ${code}`})${detail ? `: ${detail}` : ''}. Resume continues from the last checkpoint.`,
        });
      }
      this.pushRun(next);
    }
    this.pump();
  }
}
