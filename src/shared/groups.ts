import { z } from 'zod';
import { SEED_PATH } from './sweep';
import { isRecord } from './unknown-value';

/**
 * Seed groups (the paper's Table II: mean ± std over three seeds): runs of one kind whose configs
 * differ only by `seed` form a group, and their numbers are summarised as mean ± sample std with n.
 */

export interface GroupableRun {
  id: string;
  kind: string;
  config: Record<string, unknown>;
  parentRunId: string | null;
}

export interface RunGroup<R extends GroupableRun> {
  key: string;
  runs: R[];
}

/** JSON with object keys sorted at every level, so equal configs give equal text. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** A run's name without the " · seed N" a sweep gives each seed: the name its group shares. */
export function seedlessName(name: string): string {
  return name.replace(/\s*·\s*seed\s+\d+$/, '');
}

/** The config without its seed, and with the checkpoint it starts from named by its parent's group. */
function setupOf(run: GroupableRun, parentKey: string | null): Record<string, unknown> {
  const { [SEED_PATH]: _seed, ...rest } = run.config;
  if (parentKey === null) return rest;
  const source = rest.source;
  if (typeof source === 'object' && source !== null && 'checkpoint' in source) {
    return { ...rest, source: { ...source, checkpoint: `group:${parentKey}` } };
  }
  if ('checkpoint' in rest) return { ...rest, checkpoint: `group:${parentKey}` };
  return rest;
}

/**
 * A run's group key: its kind and config without the seed. With `parentKeyOf`, a run made from
 * another run (a fine-tuning of a pre-training, an evaluation of a fine-tuning) counts its parent's
 * group instead of the parent's checkpoint path, so fine-tunings of three seeds' pre-trainings group.
 */
export function groupKey(run: GroupableRun, parentKeyOf?: (parentRunId: string) => string | null): string {
  const parentKey = run.parentRunId !== null && parentKeyOf ? parentKeyOf(run.parentRunId) : null;
  return `${run.kind}:${stableJson(setupOf(run, parentKey))}`;
}

/** The runs grouped by `groupKey`, groups in the order of their first run, runs in the given order. */
export function groupRuns<R extends GroupableRun>(
  runs: readonly R[],
  parentKeyOf?: (parentRunId: string) => string | null,
): RunGroup<R>[] {
  const groups = new Map<string, RunGroup<R>>();
  for (const run of runs) {
    const key = groupKey(run, parentKeyOf);
    const group = groups.get(key);
    if (group) group.runs.push(run);
    else groups.set(key, { key, runs: [run] });
  }
  return [...groups.values()];
}

/** Dotted paths of the leaves (arrays count as leaves) of a JSON object. */
function leaves(value: unknown, prefix: string, out: Map<string, string>): void {
  if (isRecord(value)) {
    for (const [key, child] of Object.entries(value)) leaves(child, prefix ? `${prefix}.${key}` : key, out);
  } else {
    out.set(prefix, stableJson(value));
  }
}

/** The config paths (seed aside) whose values are not the same in all `configs`, sorted. */
export function varyingPaths(configs: readonly Record<string, unknown>[]): string[] {
  const flat = configs.map((config) => {
    const out = new Map<string, string>();
    leaves(config, '', out);
    return out;
  });
  const paths = new Set(flat.flatMap((map) => [...map.keys()]));
  return [...paths]
    .filter((path) => path !== SEED_PATH && new Set(flat.map((map) => map.get(path) ?? 'undefined')).size > 1)
    .sort();
}

export const MeanStd = z.object({
  mean: z.number(),
  /** Sample standard deviation (n - 1 in the denominator); null for a single value. */
  std: z.number().nullable(),
  n: z.number().int().positive(),
});
export type MeanStd = z.infer<typeof MeanStd>;

/** Mean and sample std of the finite values (missing and non-finite ones are left out), or null if none. */
export function meanStd(values: readonly (number | null | undefined)[]): MeanStd | null {
  const xs = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  const n = xs.length;
  if (n === 0) return null;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, std: null, n };
  const variance = xs.reduce((a, x) => a + (x - mean) * (x - mean), 0) / (n - 1);
  return { mean, std: Math.sqrt(variance), n };
}

/** "86.6 ± 0.3" (a single value: "86.6"; none: "–"), after multiplying by `scale` (100 for percent). */
export function formatMeanStd(stat: MeanStd | null, options: { scale?: number; digits?: number } = {}): string {
  if (stat === null) return '–';
  const scale = options.scale ?? 1;
  const digits = options.digits ?? 1;
  const mean = (stat.mean * scale).toFixed(digits);
  return stat.std === null ? mean : `${mean} ± ${(stat.std * scale).toFixed(digits)}`;
}

/** Mean ± std of every final metric (`summary`) the group's runs report, by metric name. */
export function summaryStats(runs: readonly { summary: Record<string, number> | null }[]): Record<string, MeanStd> {
  const keys = [...new Set(runs.flatMap((run) => Object.keys(run.summary ?? {})))].sort();
  const out: Record<string, MeanStd> = {};
  for (const key of keys) {
    const stat = meanStd(runs.map((run) => run.summary?.[key]));
    if (stat) out[key] = stat;
  }
  return out;
}

export interface BandPoint {
  step: number;
  mean: number;
  /** Sample std over the runs that have this step; null where only one has it. */
  std: number | null;
  n: number;
}

/**
 * A group's curve: at every step any member logged, the mean ± sample std of the members' finite
 * values there (a step with no finite value is left out).
 */
export function meanStdByStep(
  series: readonly { steps: readonly number[]; values: readonly (number | null)[] }[],
): BandPoint[] {
  const byStep = new Map<number, number[]>();
  for (const one of series) {
    one.steps.forEach((step, i) => {
      const value = one.values[i];
      if (typeof value !== 'number' || !Number.isFinite(value)) return;
      const list = byStep.get(step);
      if (list) list.push(value);
      else byStep.set(step, [value]);
    });
  }
  return [...byStep.entries()]
    .sort(([a], [b]) => a - b)
    .flatMap(([step, values]) => {
      const stat = meanStd(values);
      return stat ? [{ step, ...stat }] : [];
    });
}
