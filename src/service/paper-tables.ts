import { EvaluationReport } from '@shared/evaluation';
import {
  buildPaperTable,
  renderPaperTable,
  type PaperTable,
  type TableFormat,
  type TableRunInput,
} from '@shared/paper-table';
import type { RunFigures } from '@shared/run-query';
import type { Run } from '@shared/store-types';
import { StoreError } from '@store/errors';
import type { RunStore } from '@store/run-store';
import { errorMessage } from '@shared/unknown-value';

/**
 * What a paper table is built from, read from the store: each run, the run whose model it is (an
 * evaluation run's parent), that model's pre-training run and the model's latest evaluation report.
 */
export function tableInputs(store: RunStore, runIds: readonly string[]): TableRunInput[] {
  const get = (id: string): Run => {
    const run = store.getRun(store.resolveRunId(id));
    if (!run) throw new StoreError('not-found', `There is no run ${id} in the store.`);
    return run;
  };
  return runIds.map((id) => {
    const run = get(id);
    const model = run.kind === 'evaluate' && run.parentRunId !== null ? get(run.parentRunId) : run;
    const pretrain =
      model.kind === 'pretrain'
        ? model
        : model.parentRunId !== null
          ? ((candidate) => (candidate.kind === 'pretrain' ? candidate : null))(get(model.parentRunId))
          : null;
    return { run, model, pretrain, report: latestReport(store, run) };
  });
}

/** The latest evaluation report of a run's model (for an evaluation run: its own), or null. */
export function latestReport(store: RunStore, run: Run): EvaluationReport | null {
  const evaluations = run.kind === 'evaluate' ? store.listEvaluations(run.id) : store.listEvaluationsOfModel(run.id);
  for (let i = evaluations.length - 1; i >= 0; i--) {
    const parsed = EvaluationReport.safeParse(evaluations[i]?.results);
    if (parsed.success) return parsed.data;
  }
  return null;
}

/** Natural and worst-case robust accuracy of each run's latest evaluation (null: none). */
export function runFigures(store: RunStore, runIds: readonly string[]): Record<string, RunFigures | null> {
  const out: Record<string, RunFigures | null> = {};
  for (const id of runIds) {
    const run = store.getRun(id);
    const report = run ? latestReport(store, run) : null;
    out[id] = report ? { natural: report.naturalAccuracy, robust: report.worstCase?.robustAccuracy ?? null } : null;
  }
  return out;
}

export interface TableRequest {
  runIds: readonly string[];
  columns: readonly string[];
  group: boolean;
  digits: number;
}

/** The table and its three written forms. Unknown columns are refused with the columns that exist. */
export function paperTableFromStore(
  store: RunStore,
  request: TableRequest,
): { table: PaperTable } & Record<TableFormat, string> {
  const inputs = tableInputs(store, request.runIds);
  let table: PaperTable;
  try {
    table = buildPaperTable(inputs, request.columns, request.group);
  } catch (error) {
    throw new StoreError('invalid-input', errorMessage(error));
  }
  return {
    table,
    csv: renderPaperTable(table, 'csv', request.digits),
    markdown: renderPaperTable(table, 'markdown', request.digits),
    latex: renderPaperTable(table, 'latex', request.digits),
  };
}
