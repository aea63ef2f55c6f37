import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { writeFileAtomic } from '@engine/io/atomic-file';
import { RunEvent, type DoneEvent, type RunEventSink } from '@shared/run-events';
import type { TorchJob } from './job';
import { discoverTorch, pythonPackageRoot } from './python';
import { chooseLauncher, torchrunArgs } from './torchrun';

/**
 * Running a job on the PyTorch engine: the job file, then the ranks (`python3 -m mimir_torch.run`),
 * started by torchrun where it works, else one process per rank started here with the environment
 * torchrun would set (torchrun.ts decides). Rank 0's stdout carries the run events, each validated
 * with the RunEvent schema before it is passed on; stderr goes to `log`. An abort sends SIGTERM to
 * every started process (torchrun passes it on to its ranks): they stop together at the next step
 * boundary.
 */

/** The job file in the run's folder; one per node, since several nodes may share the folder. */
export function torchJobFile(nodeRank: number): string {
  return `torch-job.node${nodeRank}.json`;
}

export interface TorchLaunch {
  /** Processes on this machine (one per GPU, or CPU processes with gloo). Default 1. */
  nproc?: number;
  /** Machines in the run, this one's rank among them, and where rank 0 listens (several machines). */
  nnodes?: number;
  nodeRank?: number;
  masterAddr?: string;
  masterPort?: number;
  device?: 'auto' | 'cpu' | 'cuda';
  precision?: 'auto' | 'fp32' | 'bf16' | 'fp16';
  /** CPU threads per process (default: cores / processes, at least 1). */
  threads?: number;
}

export interface TorchRunOptions extends TorchLaunch {
  outDir: string;
  emit: RunEventSink;
  signal?: AbortSignal;
  /** Each rank's stderr, line by line (default: this process's stderr). */
  log?: (line: string, rank: number) => void;
}

export class TorchRunCancelledError extends Error {
  constructor() {
    super('The run was cancelled.');
    this.name = 'RunCancelledError';
  }
}

export class TorchRunFailedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunFailedError';
  }
}

/** A free TCP port on 127.0.0.1 for the rendezvous of one machine's ranks. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function checkLaunch(launch: TorchLaunch): Required<Pick<TorchLaunch, 'nproc' | 'nnodes' | 'nodeRank'>> {
  const nproc = launch.nproc ?? 1;
  const nnodes = launch.nnodes ?? 1;
  const nodeRank = launch.nodeRank ?? 0;
  if (!Number.isInteger(nproc) || nproc < 1) throw new Error(`--nproc must be a positive integer, got ${nproc}`);
  if (!Number.isInteger(nnodes) || nnodes < 1) throw new Error(`--nnodes must be a positive integer, got ${nnodes}`);
  if (!Number.isInteger(nodeRank) || nodeRank < 0 || nodeRank >= nnodes) {
    throw new Error(`--node-rank must be in 0..${nnodes - 1}, got ${nodeRank}`);
  }
  if (nnodes > 1 && (launch.masterAddr === undefined || launch.masterPort === undefined)) {
    throw new Error('Several machines (--nnodes > 1) need --master-addr and --master-port: where node 0 listens.');
  }
  return { nproc, nnodes, nodeRank };
}

/**
 * Run `job` to its end; resolves with the done event (null on a machine without rank 0, which prints
 * no events), rejects on failure or cancel.
 */
export async function runTorchJob(job: TorchJob, options: TorchRunOptions): Promise<DoneEvent | null> {
  const { nproc, nnodes, nodeRank } = checkLaunch(options);
  const found = discoverTorch();
  if (!found.python) throw new TorchRunFailedError(found.reason);
  const python = found.python;
  if (nproc > 1 && (options.device ?? 'auto') !== 'cpu' && python.cuda && python.devices.length < nproc) {
    throw new Error(`--nproc ${nproc} on CUDA needs ${nproc} GPUs; this machine has ${python.devices.length}.`);
  }
  await mkdir(options.outDir, { recursive: true });
  const jobFile = path.join(options.outDir, torchJobFile(nodeRank));
  await writeFileAtomic(jobFile, `${JSON.stringify(job, null, 2)}\n`);
  const masterPort = options.masterPort ?? (await freePort());
  const masterAddr = options.masterAddr ?? '127.0.0.1';
  const worldSize = nproc * nnodes;
  const cores = (await import('node:os')).availableParallelism();
  const threads = options.threads ?? Math.max(1, Math.floor(cores / nproc));
  const pythonPath = [pythonPackageRoot(), process.env.PYTHONPATH].filter(Boolean).join(path.delimiter);
  const log = options.log ?? ((line: string, rank: number) => process.stderr.write(`[torch rank ${rank}] ${line}\n`));

  const runArgs = [
    '-m',
    'mimir_torch.run',
    '--config',
    jobFile,
    '--out',
    options.outDir,
    '--device',
    options.device ?? 'auto',
    '--precision',
    options.precision ?? 'auto',
    '--threads',
    String(threads),
  ];
  const baseEnv = { ...process.env, PYTHONPATH: pythonPath, PYTHONUNBUFFERED: '1' };
  const launcher = await chooseLauncher(python, pythonPath, freePort);
  const rank0 = nodeRank * nproc;
  // Each started process: the rank it is (for the log), and whether its stdout carries rank 0's events.
  const started: { child: ChildProcess; rank: number; label: string; events: boolean }[] = [];
  if (launcher.kind === 'torchrun') {
    const [executable = '', ...prefix] = launcher.command;
    const args = [...prefix, ...torchrunArgs({ nproc, nnodes, nodeRank, masterAddr, masterPort }), ...runArgs];
    // Every rank under torchrun shares its stdout; only rank 0 prints events (events.py).
    const child = spawn(executable, args, { stdio: ['ignore', 'pipe', 'pipe'], env: baseEnv });
    started.push({ child, rank: rank0, label: 'torchrun', events: nodeRank === 0 });
  } else {
    for (let local = 0; local < nproc; local++) {
      const rank = rank0 + local;
      const child = spawn(python.executable, runArgs, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...baseEnv,
          RANK: String(rank),
          LOCAL_RANK: String(local),
          WORLD_SIZE: String(worldSize),
          LOCAL_WORLD_SIZE: String(nproc),
          MASTER_ADDR: masterAddr,
          MASTER_PORT: String(masterPort),
        },
      });
      started.push({ child, rank, label: `rank ${rank}`, events: rank === 0 });
    }
  }
  log(`ranks started by ${launcher.kind === 'torchrun' ? 'torchrun' : 'the launcher'}: ${launcher.reason}`, rank0);

  const children = started.map((s) => s.child);
  let done: DoneEvent | null = null;
  let failed: string | null = null;
  let badOutput: string | null = null;
  const exits: Promise<{ rank: number; label: string; code: number | null; signal: NodeJS.Signals | null }>[] = [];
  for (const { child, rank, label, events } of started) {
    const { stdout, stderr } = child;
    if (!stdout || !stderr) throw new Error('internal: a rank was started without pipes');
    createInterface({ input: stderr }).on('line', (line) => log(line, rank));
    if (events) {
      createInterface({ input: stdout }).on('line', (line) => {
        if (line.trim() === '') return;
        let event: RunEvent;
        try {
          event = RunEvent.parse(JSON.parse(line));
        } catch (error) {
          badOutput ??= `the PyTorch engine printed a line that is not a run event (${(error as Error).message.split('\n')[0]}): ${line.slice(0, 200)}`;
          return;
        }
        if (event.type === 'done') done = event;
        if (event.type === 'failed') failed = event.message;
        options.emit(event);
      });
    } else {
      stdout.resume();
    }
    exits.push(new Promise((resolve) => child.on('exit', (code, signal) => resolve({ rank, label, code, signal }))));
  }
  const cancel = () => children.forEach((child) => child.exitCode === null && child.kill('SIGTERM'));
  options.signal?.addEventListener('abort', cancel, { once: true });
  // Aborted while the ranks were being started: the event has come and gone.
  if (options.signal?.aborted) cancel();
  // One rank dying (killed, crashed) leaves the others waiting in a collective: stop them too.
  exits.forEach((exit) =>
    exit.then(({ code }) => {
      if (code !== 0 && code !== 130) cancel();
    }),
  );
  const results = await Promise.all(exits);
  options.signal?.removeEventListener('abort', cancel);
  const first = results.find((r) => r.rank === rank0);
  if (badOutput) throw new TorchRunFailedError(badOutput);
  if (done && first?.code === 0) return done;
  if (options.signal?.aborted || results.some((r) => r.code === 130)) throw new TorchRunCancelledError();
  if (nodeRank > 0 && results.every((r) => r.code === 0)) return null;
  const codes = results.map((r) => `${r.label}: ${r.signal ?? `exit ${r.code}`}`).join(', ');
  throw new TorchRunFailedError(failed ?? `The PyTorch engine stopped without finishing (${codes}); its log is above.`);
}
