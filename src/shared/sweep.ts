import { z } from 'zod';
import { JobKind } from './engine-protocol';
import { getAt, setAt } from './paths';
import { RUN_CONFIG_SCHEMAS, parseRunConfig } from './run-configs';
import { JsonObject } from './store-types';
import { isRecord } from './unknown-value';

/**
 * A sweep (W&B's word; an experiment of the store): one base config, a grid of dotted config paths
 * with the values each takes, and seeds. Its runs are the grid's cross product, each once per seed,
 * with the seed written to the config's `seed` (every run kind has one).
 */

export const SEED_PATH = 'seed';

export const GridValue = z.union([z.number(), z.string(), z.boolean(), z.null()]);
export type GridValue = z.infer<typeof GridValue>;

export const GridAxis = z.object({
  /** A dotted config path, e.g. `mi.lambda`. */
  path: z
    .string()
    .regex(/^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$/, 'a grid path is dotted field names, e.g. mi.lambda or attack.steps'),
  values: z.array(GridValue).min(1, 'give at least one value for each grid path'),
});
export type GridAxis = z.infer<typeof GridAxis>;

export const Seed = z.number().int('seeds are whole numbers').min(0, 'seeds are >= 0').max(0xffffffff);

export const SweepSpec = z
  .object({
    name: z.string().trim().min(1, 'give the sweep a name').max(200),
    kind: JobKind.default('pretrain'),
    base: JsonObject,
    grid: z.array(GridAxis).default([]),
    seeds: z.array(Seed).min(1, 'give at least one seed').default([0]),
    /**
     * Runs to start from, each in turn (fine-tune or evaluate a whole sweep): every grid point once per
     * run, from that run's checkpoint folder and with that run's seed (`seeds` is then not used).
     */
    fromRuns: z.array(z.string().min(1)).default([]),
  })
  .superRefine((spec, ctx) => {
    const seen = new Set<string>();
    spec.grid.forEach((axis, i) => {
      if (axis.path === SEED_PATH) {
        ctx.addIssue({ code: 'custom', path: ['grid', i, 'path'], message: 'sweep seeds with seeds, not the grid' });
      }
      if (seen.has(axis.path)) {
        ctx.addIssue({ code: 'custom', path: ['grid', i, 'path'], message: `${axis.path} is in the grid twice` });
      }
      seen.add(axis.path);
    });
    if (spec.fromRuns.length > 0 && spec.kind === 'pretrain') {
      ctx.addIssue({ code: 'custom', path: ['fromRuns'], message: 'a pre-training starts from no run' });
    }
    if (new Set(spec.seeds).size !== spec.seeds.length) {
      ctx.addIssue({ code: 'custom', path: ['seeds'], message: 'a seed is listed twice' });
    }
  });
export type SweepSpec = z.output<typeof SweepSpec>;
export type SweepSpecInput = z.input<typeof SweepSpec>;

/** One run of a sweep: its grid values, its seed and its full config (defaults filled in). */
export interface SweepRun {
  index: number;
  name: string;
  assignment: Record<string, GridValue>;
  seed: number;
  config: Record<string, unknown>;
  /** The run it starts from (fromRuns), else null: shown in a dry run; the store derives each run's parent itself. */
  parentRunId: string | null;
}

/** A run a sweep starts from (`fromRuns`), as the expansion needs it. */
export interface SweepParent {
  id: string;
  name: string;
  outDir: string;
  seed: number;
}

/** A config that starts from `folder`: a fine-tuning's source, an evaluation's or landscape's checkpoint. */
function startingFrom(kind: JobKind, config: unknown, folder: string): unknown {
  return kind === 'finetune'
    ? setAt(config, ['source'], { kind: 'pretrained', checkpoint: folder })
    : setAt(config, ['checkpoint'], folder);
}

export type SweepExpansion = { ok: true; runs: SweepRun[] } | { ok: false; issues: string[] };

/** Runs beyond this are refused: a typo in a grid should not queue a million runs. */
export const MAX_SWEEP_RUNS = 1000;

const show = (value: unknown): string => JSON.stringify(value);

/** The schema of the field at `path` (as declared: optional, nullable), or what went wrong on the way. */
function fieldSchema(root: z.ZodType, path: string[]): { ok: true; schema: z.ZodType } | { ok: false; why: string } {
  let declared: z.ZodType = root;
  let current: z.ZodType = root;
  for (let i = 0; i <= path.length; i++) {
    for (;;) {
      if (
        current instanceof z.ZodDefault ||
        current instanceof z.ZodPrefault ||
        current instanceof z.ZodOptional ||
        current instanceof z.ZodNullable
      ) {
        current = current.def.innerType as z.ZodType;
      } else break;
    }
    if (i === path.length) return { ok: true, schema: declared };
    const key = path[i] as string;
    const at = path.slice(0, i).join('.') || 'the config';
    const objects: z.ZodObject[] =
      current instanceof z.ZodObject
        ? [current]
        : current instanceof z.ZodUnion
          ? (current.def.options as z.ZodType[]).filter((o): o is z.ZodObject => o instanceof z.ZodObject)
          : [];
    if (objects.length === 0) return { ok: false, why: `${at} has no fields` };
    const holder = objects.find((o) => key in o.shape);
    if (!holder) {
      const keys = [...new Set(objects.flatMap((o) => Object.keys(o.shape)))];
      return { ok: false, why: `${at} has no field "${key}" (its fields: ${keys.join(', ')})` };
    }
    declared = holder.shape[key] as z.ZodType;
    current = declared;
  }
  return { ok: true, schema: declared };
}

/**
 * Check a grid path against the kind's schema and the base config: the field must exist, and the
 * base must hold an object (not, say, a model preset's name) at each level above it.
 */
function checkPath(kind: JobKind, base: Record<string, unknown>, path: string): string | null {
  const keys = path.split('.');
  const field = fieldSchema(RUN_CONFIG_SCHEMAS[kind], keys);
  if (!field.ok) return `--grid ${path}: unknown path: ${field.why}.`;
  for (let i = 1; i < keys.length; i++) {
    const prefix = keys.slice(0, i);
    const value = getAt(base, prefix);
    if (value !== undefined && !isRecord(value)) {
      return `--grid ${path}: ${prefix.join('.')} is ${show(value)} in the base config, not an object: write it out in full (e.g. the model's fields instead of a preset name) to sweep ${path}.`;
    }
  }
  return null;
}

const issueText = (issue: z.core.$ZodIssue): string =>
  `${issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''}${issue.message}`;

/** Every combination of the grid's values, the first axis varying slowest. */
function crossProduct(grid: GridAxis[]): Record<string, GridValue>[] {
  let combos: Record<string, GridValue>[] = [{}];
  for (const axis of grid) combos = combos.flatMap((combo) => axis.values.map((v) => ({ ...combo, [axis.path]: v })));
  return combos;
}

/** "lambda=1e-5 steps=1 · seed 0": a run's name within its sweep. */
export function sweepRunName(sweepName: string, assignment: Record<string, GridValue>, seed: number): string {
  const values = Object.entries(assignment).map(([path, value]) => `${path}=${String(value)}`);
  return [sweepName, ...(values.length > 0 ? [values.join(' ')] : []), `seed ${seed}`].join(' · ');
}

/**
 * The runs of a sweep, each config validated by its kind's schema, or every problem found: unknown
 * paths, values the field does not take, combinations the schema refuses, too many runs.
 */
export function expandSweep(input: SweepSpecInput, parents: readonly SweepParent[] = []): SweepExpansion {
  const parsedSpec = SweepSpec.safeParse(input);
  if (!parsedSpec.success) return { ok: false, issues: parsedSpec.error.issues.map(issueText) };
  const spec = parsedSpec.data;
  const byId = new Map(parents.map((parent) => [parent.id, parent]));
  const missing = spec.fromRuns.filter((id) => !byId.has(id));
  if (missing.length > 0) {
    return { ok: false, issues: [`fromRuns: no finished run with a folder: ${missing.join(', ')}.`] };
  }
  // Each run starts from a parent with the parent's seed, or from the spec's base once per seed.
  const starts: { seed: number; parent: SweepParent | null }[] =
    spec.fromRuns.length > 0
      ? spec.fromRuns.map((id) => {
          const parent = byId.get(id) as SweepParent;
          return { seed: parent.seed, parent };
        })
      : spec.seeds.map((seed) => ({ seed, parent: null }));
  const base = parseRunConfig(spec.kind, spec.base);
  if (!base.ok) return { ok: false, issues: base.issues.map((issue) => `base config: ${issue}`) };

  const issues: string[] = [];
  for (const axis of spec.grid) {
    const problem = checkPath(spec.kind, spec.base, axis.path);
    if (problem) {
      issues.push(problem);
      continue;
    }
    // The field's own schema judges each value; rules across fields are checked per combination below.
    const field = fieldSchema(RUN_CONFIG_SCHEMAS[spec.kind], axis.path.split('.'));
    if (!field.ok) continue;
    for (const value of axis.values) {
      const own = field.schema.safeParse(value);
      if (!own.success) {
        const messages = own.error.issues.map(issueText).join('; ');
        issues.push(`--grid ${axis.path}: the value ${show(value)} is refused: ${messages}.`);
      }
    }
  }
  if (issues.length > 0) return { ok: false, issues };

  const combos = crossProduct(spec.grid);
  const total = combos.length * starts.length;
  if (total > MAX_SWEEP_RUNS) {
    return {
      ok: false,
      issues: [`the sweep has ${total} runs, over the limit of ${MAX_SWEEP_RUNS}: shrink the grid.`],
    };
  }
  const runs: SweepRun[] = [];
  for (const assignment of combos) {
    for (const { seed, parent } of starts) {
      let config: unknown = parent ? startingFrom(spec.kind, spec.base, parent.outDir) : spec.base;
      for (const [path, value] of Object.entries(assignment)) config = setAt(config, path.split('.'), value);
      config = setAt(config, [SEED_PATH], seed);
      const parsed = parseRunConfig(spec.kind, config);
      if (!parsed.ok) {
        const where = Object.entries(assignment)
          .map(([p, v]) => `${p}=${String(v)}`)
          .join(' ');
        issues.push(`the combination ${where || '(base)'} seed ${seed} is refused: ${parsed.issues.join('; ')}.`);
        continue;
      }
      runs.push({
        index: runs.length,
        name: parent
          ? [spec.name, ...Object.entries(assignment).map(([p, v]) => `${p}=${String(v)}`), parent.name].join(' · ')
          : sweepRunName(spec.name, assignment, seed),
        assignment,
        seed,
        config: parsed.config,
        parentRunId: parent?.id ?? null,
      });
    }
  }
  return issues.length > 0 ? { ok: false, issues } : { ok: true, runs };
}

/**
 * A command line's grid (`mi.lambda=1e-5,1e-3`): the path, then comma-separated values, each a JSON
 * number, true, false, null or "quoted text", else taken as text (`mode=mae,mimir`).
 */
export function parseGridArg(text: string): GridAxis {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new Error(`--grid "${text}": write path=value,value,... (e.g. mi.lambda=1e-5,1e-3).`);
  const path = text.slice(0, eq).trim();
  const values = text
    .slice(eq + 1)
    .split(',')
    .map((word) => word.trim());
  if (values.some((word) => word === '')) {
    throw new Error(`--grid "${text}": a value is empty; separate values with single commas.`);
  }
  const axis = GridAxis.safeParse({ path, values: values.map(parseGridValue) });
  if (!axis.success) throw new Error(`--grid "${text}": ${axis.error.issues.map((i) => i.message).join('; ')}.`);
  return axis.data;
}

function parseGridValue(word: string): GridValue {
  if (/^(true|false|null|-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|".*")$/.test(word)) return JSON.parse(word) as GridValue;
  return word;
}

/** `--seeds 0,1,2`. */
export function parseSeedsArg(text: string): number[] {
  const seeds = text.split(',').map((word) => Number(word.trim()));
  const parsed = z.array(Seed).safeParse(seeds);
  if (text.trim() === '' || !parsed.success || seeds.some((s) => Number.isNaN(s))) {
    throw new Error(`--seeds "${text}": give whole numbers >= 0 separated by commas, e.g. 0,1,2.`);
  }
  return parsed.data;
}

/** A sweep as the store keeps it: its experiment and the spec its runs were expanded from. */
export const Sweep = z.object({
  experimentId: z.number().int().positive(),
  name: z.string(),
  spec: SweepSpec,
  createdAt: z.number(),
});
export type Sweep = z.infer<typeof Sweep>;
