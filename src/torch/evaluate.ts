import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PgdSpec } from '@shared/attack-config';
import { describeIssues } from '@shared/config-object';
import {
  EVALUATION_REPORT_FILE,
  EVALUATION_VERSIONS,
  EvaluationReport,
  EvaluationRequest,
  type EvaluationRequestInput,
} from '@shared/evaluation';
import {
  TORCH_EVALUATION_ATTACKS,
  encoderKindOf,
  evaluationEngineFor,
  type EvaluationEngine,
} from '@shared/evaluation-engine';
import { writeFileAtomic } from '@engine/io/atomic-file';
import type { RunEvent } from '@shared/run-events';
import { errorMessage } from '@shared/unknown-value';
import { feedCorruptions } from './corruption-feed';
import { torchDataset, type TorchPlannedAttack } from './job';
import { runTorchJob, type TorchLaunch, type TorchRunOptions } from './launch';

/**
 * An evaluation on the PyTorch engine, for checkpoints the tfjs engine cannot run (ConvNeXt, Swin) or a
 * request that names engine torch: the request validated and planned here as the tfjs evaluator plans it
 * (plan.ts: defaults, keys, labels), the examples picked as it picks them, what the PyTorch engine does not
 * run refused by name before Python starts; evaluate_run.py measures (with the gradient-masking checks other
 * than the black-box one, which needs Square) and writes report.json and the flipped PNG strips, which is
 * validated here against the report schema and given its no-evidence flags. Corrupted images are made here,
 * by the one implementation of the corruptions, and fed to Python while it runs (corruption-feed.ts).
 */
export async function evaluateOnTorch(
  input: EvaluationRequestInput,
  options: Omit<TorchRunOptions, keyof TorchLaunch> & TorchLaunch,
): Promise<EvaluationReport> {
  const parsed = EvaluationRequest.safeParse(input);
  if (!parsed.success) throw new Error(`Invalid evaluation request: ${describeIssues(parsed.error, '(request)')}`);
  const request = parsed.data;
  const refused = request.attacks.filter((a) => !(TORCH_EVALUATION_ATTACKS as readonly string[]).includes(a.attack));
  if (refused.length > 0) {
    const names = [...new Set(refused.map((a) => a.attack))].join(', ');
    throw new Error(
      `The PyTorch engine evaluates ${TORCH_EVALUATION_ATTACKS.join(', ')} so far; ${names} ${refused.length > 1 ? 'run' : 'runs'} ` +
        `on the TensorFlow.js engine only, which cannot run this checkpoint's encoder: leave ${names} out of the attacks.`,
    );
  }
  const { openDataset } = await import('@engine/data');
  const { requestedExamples } = await import('@engine/evaluate/evaluate');
  const { planEvaluation, implementationOf } = await import('@engine/evaluate/plan');
  const { noEvidenceFlags } = await import('@engine/evaluate/evidence');
  const dataset = await openDataset(request.dataset);
  const ids = requestedExamples(request, dataset.length);
  const plan = planEvaluation(request, dataset.imageSize);
  const attacks: TorchPlannedAttack[] = plan.attacks.map((planned) => {
    if (planned.kind === 'natural') {
      return { ...planned, implementation: EVALUATION_VERSIONS.natural, inWorstCase: false };
    }
    const spec = planned.kind === 'single' && planned.spec.attack === 'pgd' ? PgdSpec.parse(planned.spec) : null;
    if (planned.kind !== 'single' || spec === null || spec.loss !== 'ce') {
      throw new Error(
        `internal: ${planned.label} was planned for the PyTorch engine, which runs natural accuracy, PGD and corruptions only`,
      );
    }
    return {
      kind: 'pgd',
      key: planned.key,
      label: planned.label,
      implementation: implementationOf(spec),
      inWorstCase: planned.inWorstCase,
      spec,
    };
  });
  const { dataset: resolved } = await torchDataset(request.dataset);
  // `done` waits until the report is checked and flagged, as the tfjs evaluator emits it last.
  const held: RunEvent[] = [];
  // The corrupted images are made here (corruption-feed.ts), on the machine of rank 0, which evaluates them.
  const folder =
    plan.corruptions && (options.nodeRank ?? 0) === 0
      ? await mkdtemp(path.join(os.tmpdir(), 'mimir-corrupted-'))
      : null;
  // Python is stopped by the caller's signal or by a feed that fails.
  const run = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, run.signal]) : run.signal;
  const feedStop = new AbortController();
  let feedError: Error | null = null;
  const feeding =
    plan.corruptions && folder
      ? feedCorruptions({
          folder,
          dataset,
          ids,
          batchSize: request.batchSize,
          plan: plan.corruptions,
          seed: request.seed,
          signal: feedStop.signal,
        }).catch((error: unknown) => {
          if (feedStop.signal.aborted) return;
          feedError = new Error(`Corrupting the images for the PyTorch engine failed: ${errorMessage(error)}`, {
            cause: error,
          });
          run.abort();
        })
      : null;
  try {
    await runTorchJob(
      {
        kind: 'evaluate',
        config: {
          request: { ...request, dataset: resolved },
          ids,
          description: dataset.description,
          attacks,
          worstCaseImplementation: EVALUATION_VERSIONS.worstCase,
          corruptions: plan.corruptions
            ? { ...plan.corruptions, implementation: EVALUATION_VERSIONS.corruptions, folder }
            : null,
        },
      },
      {
        ...options,
        signal,
        emit: (event) => (event.type === 'done' ? held.push(event) : options.emit(event)),
      },
    );
  } catch (error) {
    if (feedError !== null && !options.signal?.aborted) throw feedError;
    throw error;
  } finally {
    feedStop.abort();
    await feeding;
    if (folder) await rm(folder, { recursive: true, force: true });
  }
  const file = path.join(options.outDir, EVALUATION_REPORT_FILE);
  const written = EvaluationReport.safeParse(JSON.parse(await readFile(file, 'utf8')));
  if (!written.success) {
    throw new Error(
      `The PyTorch engine wrote a report that does not fit the schema (${describeIssues(written.error)}): ${file}`,
    );
  }
  const report = written.data;
  const noEvidence = noEvidenceFlags({
    naturalAccuracy: report.naturalAccuracy,
    numClasses: report.model.numClasses,
    attacks: report.attacks,
    worstCase: report.worstCase,
  });
  for (const flag of noEvidence) options.emit({ type: 'log', level: 'warn', message: flag.message });
  const final = { ...report, noEvidence };
  await writeFileAtomic(file, `${JSON.stringify(final, null, 2)}\n`);
  for (const event of held) options.emit(event);
  return final;
}

/** The engine that evaluates a request (evaluation-engine.ts): its own choice, else its checkpoint's encoder's. */
export async function engineForRequest(input: EvaluationRequestInput): Promise<EvaluationEngine> {
  if (input.engine) return input.engine;
  const { resolveCheckpointPath } = await import('@engine/finetune/checkpoint-path');
  const { readManifest } = await import('@engine/checkpoint');
  const manifest = await readManifest(await resolveCheckpointPath(input.checkpoint));
  return evaluationEngineFor(encoderKindOf(manifest.modelConfig)).engine;
}
