import { z } from 'zod';
import type { EvaluationReport } from './evaluation';
import { getAt } from './paths';
import { MeanStd, formatMeanStd, groupKey, groupRuns, meanStd, varyingPaths, type GroupableRun } from './groups';
import type { Run } from './store-types';

/**
 * Paper tables: runs (or seed groups of runs) against chosen columns, with mean ± std for groups,
 * written as CSV, Markdown or LaTeX. Accuracies come from each run's latest stored evaluation.
 *
 * Columns: `natural`, `robust` (the per-point worst case over the evaluation's attacks),
 * `corruptions` (mean corruption accuracy), any attack key of the evaluations (`pgd20`,
 * `autoattack`, `cw-l2`, ...), `method` (fine-tuning method or pre-training mode), `epochs`,
 * `pretrain-epochs`, `config.<path>` (the model run's config), `pretrain.<path>` (its pre-training's
 * config) and `summary.<key>` (the run's final metrics).
 */

export const TABLE_FORMATS = ['csv', 'markdown', 'latex'] as const;
export const TableFormat = z.enum(TABLE_FORMATS, { error: "format must be 'csv', 'markdown' or 'latex'" });
export type TableFormat = z.infer<typeof TableFormat>;

/** What one row of a table is built from: the run, the run whose model it is, that model's pre-training. */
export interface TableRunInput {
  run: Run;
  /** The run itself, or for an evaluation run the run it evaluated. */
  model: Run;
  pretrain: Run | null;
  /** The latest evaluation of the model, or null if it has none. */
  report: EvaluationReport | null;
}

export const TableCell = z.union([
  z.object({ kind: z.literal('number'), stat: MeanStd, percent: z.boolean() }),
  z.object({ kind: z.literal('text'), text: z.string() }),
  z.null(),
]);
export type TableCell = z.infer<typeof TableCell>;

export const PaperTable = z.object({
  grouped: z.boolean(),
  columns: z.array(z.object({ key: z.string(), label: z.string() })),
  rows: z.array(
    z.object({ label: z.string(), runIds: z.array(z.string()), n: z.number().int(), cells: z.array(TableCell) }),
  ),
});
export type PaperTable = z.infer<typeof PaperTable>;

/** The figures of an evaluation report by column key: natural, robust, corruptions and each attack's. */
export function evaluationFigures(report: EvaluationReport): Record<string, number> {
  const out: Record<string, number> = {};
  for (const outcome of report.attacks) out[outcome.key] = outcome.robustAccuracy;
  out.natural = report.naturalAccuracy;
  if (report.worstCase) out.robust = report.worstCase.robustAccuracy;
  if (report.corruptions) out.corruptions = report.corruptions.mean;
  return out;
}

const FIXED_LABELS: Record<string, string> = {
  natural: 'Natural',
  robust: 'Worst case',
  corruptions: 'Corruptions (mean)',
  method: 'Method',
  epochs: 'Epochs',
  'pretrain-epochs': 'Pre-training epochs',
};
const TEXT_COLUMNS = new Set(['method']);

type CellValue = number | string | null;

function cellValue(column: string, input: TableRunInput): CellValue {
  const { model, pretrain, report, run } = input;
  if (column === 'method') {
    const value = model.kind === 'pretrain' ? model.config.mode : model.config.method;
    return typeof value === 'string' ? value : null;
  }
  if (column === 'epochs') return asValue(model.config.epochs);
  if (column === 'pretrain-epochs') return asValue(pretrain?.config.epochs);
  if (column.startsWith('config.')) return asValue(getAt(model.config, column.slice(7).split('.')));
  if (column.startsWith('pretrain.'))
    return asValue(pretrain ? getAt(pretrain.config, column.slice(9).split('.')) : null);
  if (column.startsWith('summary.')) return asValue(run.summary?.[column.slice(8)] ?? model.summary?.[column.slice(8)]);
  return report ? (evaluationFigures(report)[column] ?? null) : null;
}

function asValue(value: unknown): CellValue {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return String(value);
  return null;
}

const EVALUATION_FIXED = new Set(['natural', 'robust', 'corruptions']);
/** Accuracies read from the evaluation (shown in percent). */
const isEvaluationColumn = (column: string): boolean =>
  EVALUATION_FIXED.has(column) || (!(column in FIXED_LABELS) && !/^(config|pretrain|summary)\./.test(column));

/** Attack keys an evaluation report may hold (a table may ask for them before any run has one). */
export const ATTACK_COLUMNS = [
  'pgd20',
  'autoattack',
  'apgd-ce',
  'apgd-t',
  'fab-t',
  'square',
  'cw-l2',
  'cw-linf',
  'pgd-mi',
  'pgd-fea',
] as const;

/** Every column key must be known, or an attack key some row's evaluation has. */
export function checkColumns(columns: readonly string[], inputs: readonly TableRunInput[]): string[] {
  const attackKeys = new Set(
    inputs.flatMap((input) => (input.report ? Object.keys(evaluationFigures(input.report)) : [])),
  );
  const issues: string[] = [];
  if (columns.length === 0) issues.push('give at least one column, e.g. natural,pgd20,autoattack');
  for (const column of columns) {
    // A standard attack is known before any picked run was evaluated with it: its cells are then empty.
    const known =
      column in FIXED_LABELS ||
      /^(config|pretrain|summary)\.[A-Za-z_][\w.-]*$/.test(column) ||
      (ATTACK_COLUMNS as readonly string[]).includes(column) ||
      attackKeys.has(column);
    if (!known) {
      const offered = [...new Set([...Object.keys(FIXED_LABELS), ...ATTACK_COLUMNS, ...attackKeys])];
      issues.push(
        `unknown column "${column}": use ${offered.join(', ')}, config.<path>, pretrain.<path> or summary.<metric>`,
      );
    }
  }
  return issues;
}

function columnLabel(column: string, inputs: readonly TableRunInput[]): string {
  const fixed = FIXED_LABELS[column];
  if (fixed) return fixed;
  if (isEvaluationColumn(column)) {
    for (const input of inputs) {
      const outcome = input.report?.attacks.find((a) => a.key === column);
      if (outcome) return outcome.label;
    }
  }
  return column;
}

function cellOf(column: string, values: CellValue[]): TableCell {
  const numbers = values.filter((v): v is number => typeof v === 'number');
  const texts = [...new Set(values.filter((v): v is string => typeof v === 'string'))];
  if (TEXT_COLUMNS.has(column) || (texts.length > 0 && numbers.length === 0)) {
    return texts.length > 0 ? { kind: 'text', text: texts.join(' / ') } : null;
  }
  const stat = meanStd(numbers);
  return stat ? { kind: 'number', stat, percent: isEvaluationColumn(column) } : null;
}

const SEED_SUFFIX = / · seed \d+$/;

/** What a group's label tells apart: the model's config (checkpoint paths aside) and its pre-training's. */
function labelConfig(input: TableRunInput): Record<string, unknown> {
  const { checkpoint: _checkpoint, source, ...config } = input.model.config;
  const out: Record<string, unknown> = { ...config };
  if (typeof source === 'object' && source !== null) {
    const { checkpoint: _path, ...rest } = source as Record<string, unknown>;
    out.source = rest;
  }
  if (input.pretrain && input.pretrain.id !== input.model.id) {
    const { seed: _seed, ...pretrain } = input.pretrain.config;
    out.pretrain = pretrain;
  }
  return out;
}

/**
 * The table: one row per run, or with `group` one row per seed group (configs equal but for the
 * seed; fine-tunings of one group's pre-trainings count as one group), rows in the runs' order.
 */
export function buildPaperTable(
  inputs: readonly TableRunInput[],
  columns: readonly string[],
  group: boolean,
): PaperTable {
  const issues = checkColumns(columns, inputs);
  if (issues.length > 0) throw new Error(issues.join('; '));
  const byId = new Map(inputs.map((input) => [input.run.id, input]));
  const asGroupable = (input: TableRunInput): GroupableRun & { id: string } => ({
    id: input.run.id,
    kind: input.model.kind,
    config: input.model.config,
    parentRunId: input.model.parentRunId,
  });
  const parents = new Map(inputs.flatMap((input) => (input.pretrain ? [[input.pretrain.id, input.pretrain]] : [])));
  const parentKeyOf = (id: string): string | null => {
    const parent = parents.get(id);
    return parent ? groupKey(parent) : null;
  };
  const groups = group
    ? groupRuns(inputs.map(asGroupable), parentKeyOf).map((g) => g.runs.map((r) => byId.get(r.id) as TableRunInput))
    : inputs.map((input) => [input]);

  const varying = group ? varyingPaths(groups.map((members) => labelConfig(members[0] as TableRunInput))) : [];
  const label = (members: TableRunInput[]): string => {
    const first = members[0] as TableRunInput;
    if (!group) return first.run.name;
    if (groups.length > 1 && varying.length > 0 && varying.length <= 4) {
      const config = labelConfig(first);
      return varying.map((path) => `${path}=${String(getAt(config, path.split('.')))}`).join(' ');
    }
    return first.run.name.replace(SEED_SUFFIX, '');
  };

  return PaperTable.parse({
    grouped: group,
    columns: columns.map((key) => ({ key, label: columnLabel(key, inputs) })),
    rows: groups.map((members) => ({
      label: label(members),
      runIds: members.map((m) => m.run.id),
      n: members.length,
      cells: columns.map((column) =>
        cellOf(
          column,
          members.map((m) => cellValue(column, m)),
        ),
      ),
    })),
  });
}

// ---- writing ---------------------------------------------------------------------------------------

/** An accuracy in percent with `digits` decimals; another number with 4 significant digits. */
function formatNumber(value: number, percent: boolean, digits: number): string {
  return percent ? (value * 100).toFixed(digits) : String(Number(value.toPrecision(4)));
}

/** "86.60 ± 0.30" for a group, "86.60" for one run, text as is, "–" for nothing. */
export function formatCell(cell: TableCell, digits: number): string {
  if (cell === null) return '–';
  if (cell.kind === 'text') return cell.text;
  if (cell.percent) return formatMeanStd(cell.stat, { scale: 100, digits });
  const { mean, std } = cell.stat;
  const number = (x: number) => formatNumber(x, false, digits);
  return std === null ? number(mean) : `${number(mean)} ± ${number(std)}`;
}

/** One CSV field (RFC 4180): quoted when it holds a quote, comma or line break. */
export function csvField(text: string): string {
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const latexEscape = (text: string): string =>
  text
    .replace(/\\/g, '\\textbackslash{}')
    .replace(/([&%$#_{}])/g, '\\$1')
    .replace(/~/g, '\\textasciitilde{}')
    .replace(/\^/g, '\\textasciicircum{}')
    .replace(/±/g, '$\\pm$')
    .replace(/–/g, '--');

/**
 * The table as text. CSV has one column per figure and, for groups, its std beside it (`natural_std`)
 * and n; Markdown and LaTeX (booktabs) write "mean ± std".
 */
export function renderPaperTable(table: PaperTable, format: TableFormat, digits = 2): string {
  const withN = table.grouped;
  if (format === 'csv') {
    const header = ['run', ...(withN ? ['n'] : [])];
    for (const column of table.columns) header.push(column.key, ...(withN ? [`${column.key}_std`] : []));
    const lines = [header.join(',')];
    for (const row of table.rows) {
      const fields = [row.label, ...(withN ? [String(row.n)] : [])];
      row.cells.forEach((cell) => {
        if (cell?.kind === 'number') {
          const { mean, std } = cell.stat;
          fields.push(formatNumber(mean, cell.percent, digits));
          if (withN) fields.push(std === null ? '' : formatNumber(std, cell.percent, digits));
        } else {
          fields.push(cell === null ? '' : cell.text, ...(withN ? [''] : []));
        }
      });
      lines.push(fields.map(csvField).join(','));
    }
    return `${lines.join('\n')}\n`;
  }
  const header = ['Run', ...(withN ? ['n'] : []), ...table.columns.map((c) => c.label)];
  const body = table.rows.map((row) => [
    row.label,
    ...(withN ? [String(row.n)] : []),
    ...row.cells.map((cell) => formatCell(cell, digits)),
  ]);
  if (format === 'markdown') {
    const cell = (text: string) => text.replace(/\|/g, '\\|');
    const line = (cells: string[]) => `| ${cells.map(cell).join(' | ')} |`;
    const rule = `|${header.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`;
    return `${[line(header), rule, ...body.map(line)].join('\n')}\n`;
  }
  const line = (cells: string[]) => `${cells.map(latexEscape).join(' & ')} \\\\`;
  return `${[
    '% needs \\usepackage{booktabs}',
    `\\begin{tabular}{l${'r'.repeat(header.length - 1)}}`,
    '\\toprule',
    line(header),
    '\\midrule',
    ...body.map(line),
    '\\bottomrule',
    '\\end{tabular}',
  ].join('\n')}\n`;
}
