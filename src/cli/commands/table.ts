import { Option, type Command } from 'commander';
import { TABLE_FORMATS, type TableFormat } from '@shared/paper-table';
import { positiveInt, writeOutput, commandAction } from '../output';
import { openExistingStore } from '../store-arg';

interface TableOptions {
  runs: string;
  columns: string;
  group?: boolean;
  format: TableFormat;
  digits: number;
  out?: string;
  dataDir?: string;
}

const list = (text: string): string[] =>
  text
    .split(',')
    .map((word) => word.trim())
    .filter((word) => word !== '');

export function registerTable(program: Command): void {
  program
    .command('table')
    .description("a paper table of runs' latest evaluations (and configs), mean ± std over seed groups with --group")
    .requiredOption('--runs <ids>', 'comma-separated run ids (or unique prefixes), in row order')
    .option(
      '--columns <list>',
      'natural, robust (worst case), corruptions, an attack key (pgd20, autoattack, cw-l2, ...), method, epochs, pretrain-epochs, config.<path>, pretrain.<path>, summary.<metric>',
      'natural,pgd20,autoattack',
    )
    .option('--group', 'one row per seed group (runs whose configs differ only by seed): mean ± sample std, n')
    .addOption(new Option('--format <format>', 'output format').choices(TABLE_FORMATS).default('markdown'))
    .option('--digits <n>', 'decimals of percentages', positiveInt, 2)
    .option('--out <file>', 'write the table to a file instead of stdout')
    .option('--data-dir <dir>', 'where the experiment store lives (default ~/.mimir, or $MIMIR_HOME)')
    .action(
      commandAction(async (options: TableOptions) => {
        const { paperTableFromStore } = await import('@service/paper-tables');
        const store = await openExistingStore(options.dataDir);
        try {
          const runIds = list(options.runs);
          if (runIds.length === 0) throw new Error('--runs: give at least one run id.');
          const built = paperTableFromStore(store, {
            runIds,
            columns: list(options.columns),
            group: options.group === true,
            digits: Math.min(options.digits, 4),
          });
          const text = built[options.format];
          await writeOutput(options.out, text);
        } finally {
          store.close();
        }
      }),
    );
}
