import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { activeWasmThreads } from '../wasm-threads';
import { processMemory, profileStep, timeStep, type StepProfile, type StepTiming } from './measure';
import { BenchSettings, type BenchSettingsInput, type BenchStepName } from './settings';
import { benchStep } from './steps';
import { findPythonWithTorch, TorchSide, type TorchInfo, type TorchStepReply } from './torch-side';

export interface SideSummary {
  first: StepTiming;
  steady: StepTiming[];
  /** Median wall time of the steady steps. */
  stepMs: number;
  /** Median CPU time of the steady steps (all threads of the process). */
  cpuMs: number;
  imagesPerSecond: number;
  peakRssMiB: number;
}

export interface TfjsStepReport extends SideSummary {
  /** Peak bytes in tfjs tensors during the profiled step. */
  peakTensorMiB: number | null;
  wasmHeapMiB: number | null;
  /** Tensors alive after each steady step minus before it, summed: 0 when memory is flat. */
  leakedTensors: number;
  profile: StepProfile | null;
}

export interface StepReport {
  name: BenchStepName;
  tfjs: TfjsStepReport;
  torch: SideSummary | null;
  /** tfjs steady step time / torch steady step time (wall, medians): at or below 1, tfjs is no slower. */
  ratio: number | null;
  cpuRatio: number | null;
}

export interface BenchReport {
  settings: BenchSettings;
  backend: string;
  backendDetail: string;
  torch: { info: TorchInfo; executable: string } | { unavailable: string } | null;
  steps: StepReport[];
  loadAverage: number[];
}

export interface BenchOptions {
  compareTorch?: boolean;
  /** Run one extra tfjs step under tf.profile for the per-kernel table and the peak tensor memory. */
  profile?: boolean;
  log?: (line: string) => void;
}

const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
};

function summarise(first: StepTiming, steady: StepTiming[], batch: number, peakRssMiB: number): SideSummary {
  const stepMs = median(steady.map((t) => t.wallMs));
  return {
    first,
    steady,
    stepMs,
    cpuMs: median(steady.map((t) => t.cpuMs)),
    imagesPerSecond: (1000 * batch) / stepMs,
    peakRssMiB,
  };
}

async function backendDetail(): Promise<string> {
  const name = tf.getBackend();
  if (name !== 'wasm') return name;
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const threads = activeWasmThreads() ?? 1;
  return `wasm (SIMD ${simd ? 'on' : 'off'}, ${threads > 1 ? `${threads} threads` : 'one thread'})`;
}

/**
 * Time the configured steps on the active tfjs backend and, with compareTorch, the same steps in
 * PyTorch, alternating a tfjs step and a torch step so both see the same machine load.
 */
export async function runBench(input: BenchSettingsInput, options: BenchOptions = {}): Promise<BenchReport> {
  const settings = BenchSettings.parse(input);
  const log = options.log ?? (() => {});
  let torch: TorchSide | null = null;
  let torchReport: BenchReport['torch'] = null;
  if (options.compareTorch) {
    const found = findPythonWithTorch();
    if (found.python) {
      log(`starting PyTorch ${found.python.torch} (${found.python.executable})`);
      torch = await TorchSide.start(found.python, settings);
      torchReport = { info: torch.info, executable: found.python.executable };
    } else {
      torchReport = { unavailable: found.reason };
      log(`no PyTorch comparison: ${found.reason}`);
    }
  }

  const reports: StepReport[] = [];
  try {
    for (const name of settings.steps) {
      const step = benchStep(name, settings);
      try {
        const torchTimes: TorchStepReply[] = [];
        const runTorch = async (label: string) => {
          if (!torch) return;
          const t = await torch.step(name);
          torchTimes.push(t);
          log(
            `torch ${name} ${label}: ${t.wallMs.toFixed(0)} ms (cpu ${t.cpuMs.toFixed(0)} ms), loss ${t.loss.toFixed(4)}`,
          );
        };
        const runTfjs = async (label: string): Promise<StepTiming> => {
          const t = await timeStep(step);
          log(
            `tfjs  ${name} ${label}: ${t.wallMs.toFixed(0)} ms (cpu ${t.cpuMs.toFixed(0)} ms), loss ${t.loss.toFixed(4)}`,
          );
          return t;
        };

        const first = await runTfjs('first');
        for (let i = 1; i < settings.warmup; i++) await runTfjs(`warm-up ${i + 1}`);
        for (let i = 0; i < settings.warmup; i++) await runTorch(i === 0 ? 'first' : `warm-up ${i + 1}`);
        const steady: StepTiming[] = [];
        let leaked = 0;
        for (let r = 0; r < settings.repeats; r++) {
          const before = tf.memory().numTensors;
          steady.push(await runTfjs(`step ${r + 1}`));
          leaked += tf.memory().numTensors - before;
          await runTorch(`step ${r + 1}`);
        }
        const profile = options.profile ? await profileStep(step) : null;
        const memory = processMemory();
        const tfjs: TfjsStepReport = {
          ...summarise(first, steady, settings.batch, memory.peakRssMiB),
          peakTensorMiB: profile ? profile.peakTensorBytes / 2 ** 20 : null,
          wasmHeapMiB: memory.wasmHeapMiB,
          leakedTensors: leaked,
          profile,
        };
        const torchFirst = torchTimes[0];
        const torchSummary =
          torchFirst && torchTimes.length > settings.warmup
            ? summarise(
                torchFirst,
                torchTimes.slice(settings.warmup),
                settings.batch,
                Math.max(...torchTimes.map((t) => t.peakRssMiB)),
              )
            : null;
        reports.push({
          name,
          tfjs,
          torch: torchSummary,
          ratio: torchSummary ? tfjs.stepMs / torchSummary.stepMs : null,
          cpuRatio: torchSummary ? tfjs.cpuMs / torchSummary.cpuMs : null,
        });
      } finally {
        await step.dispose();
      }
    }
  } finally {
    await torch?.close();
  }
  return {
    settings,
    backend: tf.getBackend(),
    backendDetail: await backendDetail(),
    torch: torchReport,
    steps: reports,
    loadAverage: os.loadavg(),
  };
}
