import { getAt } from './paths';
import type { Run } from './store-types';

/**
 * The runs table's structured filter, as W&B and MLflow users type it: `mode=mimir lambda<1e-3
 * robust>0.4 tag=paper`. Each `field op value` term must hold; other words are searched as text.
 * Ops: = != < <= > >=. Fields: kind, status, tag, mode, method, lambda (mi.lambda), steps
 * (attack.steps), epochs, seed, natural and robust (the latest evaluation, 0.4 or 40%), loss, mi,
 * summary.<metric>, config.<path>, or any other name as a config path (batchSize, maskRatio).
 */

export type QueryOp = '=' | '!=' | '<' | '<=' | '>' | '>=';

export interface QueryTerm {
  field: string;
  op: QueryOp;
  value: string | number;
  /** As typed, for messages. */
  text: string;
}

export interface RunQuery {
  terms: QueryTerm[];
  /** The words that are not terms, joined: a text search. */
  text: string;
  errors: string[];
}

/** The latest evaluation's accuracies of a run, where it has one. */
export interface RunFigures {
  natural: number | null;
  robust: number | null;
}

const ALIASES: Record<string, string> = {
  lambda: 'config.mi.lambda',
  steps: 'config.attack.steps',
  epochs: 'config.epochs',
  seed: 'config.seed',
  mode: 'config.mode',
  method: 'config.method',
  loss: 'summary.loss',
  mi: 'summary.mi',
};
const TERM = /^([A-Za-z_][\w.-]*)(<=|>=|!=|=|<|>)(.*)$/;

function readValue(raw: string): string | number {
  const percent = /^(-?\d+(?:\.\d+)?)%$/.exec(raw);
  if (percent) return Number(percent[1]) / 100;
  const number = Number(raw);
  return raw.trim() !== '' && Number.isFinite(number) ? number : raw;
}

export function parseRunQuery(input: string): RunQuery {
  const terms: QueryTerm[] = [];
  const words: string[] = [];
  const errors: string[] = [];
  for (const token of input.trim().split(/\s+/).filter(Boolean)) {
    const match = TERM.exec(token);
    if (!match) {
      words.push(token);
      continue;
    }
    const [, name = '', op = '=', raw = ''] = match;
    if (raw === '') {
      errors.push(`"${token}": give a value after ${op}, e.g. ${name}${op}0.5`);
      continue;
    }
    const value = readValue(raw);
    if (op !== '=' && op !== '!=' && typeof value !== 'number') {
      errors.push(`"${token}": ${op} compares numbers; "${raw}" is not one`);
      continue;
    }
    terms.push({ field: ALIASES[name] ?? name, op: op as QueryOp, value, text: token });
  }
  return { terms, text: words.join(' '), errors };
}

function fieldValue(run: Run, field: string, figures: RunFigures | null): unknown {
  switch (field) {
    case 'kind':
      return run.kind;
    case 'status':
      return run.status;
    case 'name':
      return run.name;
    case 'natural':
      return figures?.natural ?? null;
    case 'robust':
      return figures?.robust ?? null;
  }
  if (field.startsWith('summary.')) return run.summary?.[field.slice(8)] ?? null;
  const path = field.startsWith('config.') ? field.slice(7) : field;
  return getAt(run.config, path.split('.')) ?? null;
}

function holds(term: QueryTerm, actual: unknown): boolean {
  if (term.op === '=' || term.op === '!=') {
    const equal =
      typeof term.value === 'number'
        ? typeof actual === 'number' && actual === term.value
        : actual !== null && String(actual).toLowerCase() === term.value.toLowerCase();
    return term.op === '=' ? equal : !equal;
  }
  if (typeof actual !== 'number' || typeof term.value !== 'number') return false;
  switch (term.op) {
    case '<':
      return actual < term.value;
    case '<=':
      return actual <= term.value;
    case '>':
      return actual > term.value;
    default:
      return actual >= term.value;
  }
}

/** Whether a run meets every term (`tag=x`: carries tag x). Text words are left to the caller. */
export function matchesRunQuery(run: Run, query: RunQuery, figures: RunFigures | null): boolean {
  return query.terms.every((term) => {
    if (term.field === 'tag') {
      const has = run.tags.some((tag) => tag.toLowerCase() === String(term.value).toLowerCase());
      return term.op === '!=' ? !has : term.op === '=' && has;
    }
    return holds(term, fieldValue(run, term.field, figures));
  });
}

/** Whether the query needs evaluation figures (natural, robust). */
export function queryNeedsFigures(query: RunQuery): boolean {
  return query.terms.some((term) => term.field === 'natural' || term.field === 'robust');
}
