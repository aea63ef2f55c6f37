/**
 * `mimir bench`: images/s, first-step and steady step time, peak memory of a MIMIR pre-training step
 * and a PGD-AT fine-tuning step on the active tfjs backend, optionally side by side with the same
 * steps in PyTorch (scripts/bench_torch.py), and a per-kernel profile.
 */
export { BENCH_STEPS, BenchSettings, BenchStepName, benchModelConfig, type BenchSettingsInput } from './settings';
export { benchStep, pgdAtBenchStep, pretrainBenchStep, type BenchStep } from './steps';
export {
  kernelTotals,
  processMemory,
  profileStep,
  timeStep,
  type KernelProfileRow,
  type StepProfile,
  type StepTiming,
} from './measure';
export { findPythonWithTorch, findTorchScript, TorchSide, type PythonWithTorch, type TorchInfo } from './torch-side';
export {
  runBench,
  type BenchOptions,
  type BenchReport,
  type SideSummary,
  type StepReport,
  type TfjsStepReport,
} from './run';
export { formatBenchReport } from './report';
export { formatGemmTiming, parseGemmSize, timeGemm, type GemmTiming } from './gemm';
