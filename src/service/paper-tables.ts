import { EvaluationReport } from '../shared/evaluation';
import {
  buildPaperTable,
  renderPaperTable,
  type PaperTable,
  type TableFormat,
  type TableRunInput,
} from '../shared/paper-table';
import type { Run } from '../shared/store-types';
import { StoreError } from '../store/errors';
import type { RunStore } from '../store/run-store';

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
    const evaluations = run.kind === 'evaluate' ? store.listEvaluations(run.id) : store.listEvaluationsOfModel(run.id);
    const reports = evaluations.flatMap((evaluation) => {
      const parsed = EvaluationReport.safeParse(evaluation.results);
      return parsed.success ? [parsed.data] : [];
    });
    return { run, model, pretrain, report: reports.at(-1) ?? null };
  });
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
    throw new StoreError('invalid-input', error instanceof Error ? error.message : String(error));
  }
  return {
    table,
    csv: renderPaperTable(table, 'csv', request.digits),
    markdown: renderPaperTable(table, 'markdown', request.digits),
    latex: renderPaperTable(table, 'latex', request.digits),
  };
}
