import { EvaluationReport, type AttackOutcome, type PgdIterate, type Protocol } from '@shared/evaluation';
import type { Evaluation } from '@shared/store-types';
import type { ReportWarning } from '@shared/attack-config';

/** Reading stored evaluations for the screens: their reports, percentages and protocols in words. */

export interface StoredReport {
  evaluation: Evaluation;
  report: EvaluationReport;
}

/** The report an evaluation stored, or null when it does not match the current schema. */
export function reportOf(evaluation: Evaluation): EvaluationReport | null {
  const parsed = EvaluationReport.safeParse(evaluation.results);
  return parsed.success ? parsed.data : null;
}

export function percent(value: number | null | undefined, digits = 2): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  return `${(value * 100).toFixed(digits)}%`;
}

const NORMS: Record<string, string> = { linf: 'l∞', l2: 'l2' };

export function normLabel(threat: string | null | undefined): string {
  return threat ? (NORMS[threat] ?? threat) : '';
}

/** PGD-k's counting rule in words. */
export function iterateWords(iterate: PgdIterate): string {
  return iterate === 'best' ? 'best iterate per example' : 'last iterate (torchattacks)';
}

/** "l∞ ε 8/255 · 20 steps · 1 restart · best iterate per example · seed 0 · n 16 · pgd/1 · wasm". */
export function protocolLine(protocol: Protocol): string {
  const parts: string[] = [];
  if (protocol.threat) parts.push(normLabel(protocol.threat));
  if (protocol.eps255 !== null) parts.push(`ε ${Number(protocol.eps255.toFixed(3))}/255`);
  if (protocol.steps !== null) parts.push(`${protocol.steps} step${protocol.steps === 1 ? '' : 's'}`);
  if (protocol.restarts !== null) parts.push(`${protocol.restarts} restart${protocol.restarts === 1 ? '' : 's'}`);
  if (protocol.iterate) parts.push(iterateWords(protocol.iterate));
  parts.push(`seed ${protocol.seed}`);
  parts.push(`n ${protocol.examples.count}${protocol.examples.source ? ` of ${protocol.examples.source}` : ''}`);
  parts.push(protocol.implementation);
  parts.push(protocol.backend);
  return parts.join(' · ');
}

/** The full protocol, one "field: value" per line (tooltips). */
export function protocolDetails(protocol: Protocol): string {
  return [
    `attack: ${protocol.attack} (${protocol.implementation})`,
    `threat model: ${protocol.threat ? normLabel(protocol.threat) : 'none'}`,
    `eps: ${protocol.eps255 === null ? 'none' : `${protocol.eps255}/255 (${protocol.eps})`}`,
    `steps: ${protocol.steps ?? '–'}, restarts: ${protocol.restarts ?? '–'}`,
    ...(protocol.iterate ? [`counts: ${iterateWords(protocol.iterate)}`] : []),
    `seed: ${protocol.seed}`,
    `examples: ${protocol.examples.count}${protocol.examples.source ? ` of ${protocol.examples.source}` : ''}`,
    `backend: ${protocol.backend}`,
    `in the worst case: ${protocol.inWorstCase ? 'yes' : 'no'}`,
  ].join('\n');
}

/** The rows a robust-accuracy table shows: natural accuracy, each attack, the worst case. */
export interface AccuracyRow {
  key: string;
  label: string;
  accuracy: number;
  protocol: string;
  details: string;
  warnings: ReportWarning[];
}

export function accuracyRows(report: EvaluationReport): AccuracyRow[] {
  const rows: AccuracyRow[] = [];
  const hasNatural = report.attacks.some((outcome) => outcome.key === 'natural');
  if (!hasNatural) {
    rows.push({
      key: 'natural',
      label: 'Natural',
      accuracy: report.naturalAccuracy,
      protocol: `n ${report.examples.count} · seed ${report.examples.seed} · ${report.backend}`,
      details: `clean accuracy on ${report.examples.count} examples`,
      warnings: [],
    });
  }
  for (const outcome of report.attacks) rows.push(outcomeRow(outcome));
  if (report.worstCase) {
    rows.push({
      key: 'worst-case',
      label: 'Worst case',
      accuracy: report.worstCase.robustAccuracy,
      protocol: `per example over ${report.worstCase.attacks.join(', ')} · ${report.worstCase.implementation}`,
      details: `An example counts as robust only if every attack within ${normLabel(report.threat)} ε ${report.eps255}/255 left it correct.`,
      warnings: [],
    });
  }
  return rows;
}

function outcomeRow(outcome: AttackOutcome): AccuracyRow {
  return {
    key: outcome.key,
    label: outcome.label,
    accuracy: outcome.robustAccuracy,
    protocol: protocolLine(outcome.protocol),
    details: protocolDetails(outcome.protocol),
    warnings: outcome.warnings,
  };
}
