import { describe, expect, it } from 'vitest';
import { formatEvaluationTable } from '../../src/cli/commands/eval';
import { accuracyRows, reportOf } from '../../src/renderer/src/evaluation-info';
import { EvaluationReport } from '../../src/shared/evaluation';
import { storedReport } from '../helpers/evaluation-report';

const OLD_SENTENCE = 'CW-l2 is unbounded here: it counts every flip at any l_2 distance (see the norms in its record).';
const OLD_MASKING = '3 of 8 examples have an all-zero input gradient: gradient-based attacks cannot move them.';

/** A report as stored before warnings had kinds: every warning a bare string. */
function oldReportJson(): Record<string, unknown> {
  const report = JSON.parse(JSON.stringify(storedReport({ natural: 0.9, attacks: { pgd20: 0.4, 'cw-l2': 0.3 } })));
  report.attacks[1].warnings = [OLD_SENTENCE];
  report.masking = {
    zeroGradient: { count: 3, total: 8, fraction: 0.375, flagged: true },
    warnings: [OLD_MASKING],
    examples: { count: 8, ids: [0, 1, 2, 3, 4, 5, 6, 7], source: 'builtin/test' },
  };
  return report;
}

describe('evaluation report warnings', () => {
  it('reads a stored report whose warnings are strings as warnings of kind other', () => {
    const report = EvaluationReport.parse(oldReportJson());
    expect(report.attacks[1]?.warnings).toEqual([{ kind: 'other', message: OLD_SENTENCE }]);
    expect(report.masking?.warnings).toEqual([{ kind: 'other', message: OLD_MASKING }]);
  });

  it('shows an old report in the app (the evaluations table row) and in the CLI table', () => {
    const report = reportOf({
      id: 1,
      runId: 'r1',
      modelCheckpoint: '/runs/x/checkpoints/final',
      protocol: {},
      results: oldReportJson(),
      createdAt: 0,
    });
    if (!report) throw new Error('the old report did not parse');
    expect(accuracyRows(report).find((row) => row.key === 'cw-l2')?.warnings).toEqual([
      { kind: 'other', message: OLD_SENTENCE },
    ]);
    const table = formatEvaluationTable(report, '/runs/x/report.json');
    expect(table).toContain(`! ${OLD_SENTENCE}`);
    expect(table).toContain(`Gradient-masking warnings:\n  ! ${OLD_MASKING}`);
  });

  it('keeps the kind of a new warning, and refuses an unknown kind naming it', () => {
    const json = oldReportJson();
    const attacks = json.attacks as { warnings: unknown[] }[];
    attacks[1] = { ...attacks[1], warnings: [{ kind: 'cw-unbounded', message: OLD_SENTENCE }] };
    expect(EvaluationReport.parse(json).attacks[1]?.warnings[0]?.kind).toBe('cw-unbounded');
    attacks[1] = { ...attacks[1], warnings: [{ kind: 'made-up', message: 'x' }] };
    const parsed = EvaluationReport.safeParse(json);
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path).toEqual(['attacks', 1, 'warnings', 0, 'kind']);
  });
});
