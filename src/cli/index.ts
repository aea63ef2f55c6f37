/**
 * The `mimir` command line: the engine and the store without a window. bin/mimir.mjs loads the
 * build of this file after checking the Node version. Each command lives in commands/ and is
 * registered here; commands import their heavy modules (TensorFlow.js, the store) lazily.
 */
import { Command } from 'commander';
import { registerBench } from './commands/bench';
import { registerDatasets } from './commands/datasets';
import { registerDoctor } from './commands/doctor';
import { registerEval } from './commands/eval';
import { registerExport } from './commands/export';
import { registerFinetune } from './commands/finetune';
import { registerImport } from './commands/import';
import { registerLaunch } from './commands/launch';
import { registerLandscape } from './commands/landscape';
import { registerMi } from './commands/mi';
import { registerPredict } from './commands/predict';
import { registerPretrain } from './commands/pretrain';
import { registerServe } from './commands/serve';
import { registerSweep } from './commands/sweep';
import { registerMetrics } from './commands/metrics';
import { registerTable } from './commands/table';

const program = new Command()
  .name('mimir')
  .description('MIMIR Workbench: adversarial MAE pre-training, adversarial fine-tuning and robust evaluation of ViTs.')
  .showHelpAfterError();

registerBench(program);
registerDatasets(program);
registerDoctor(program);
registerEval(program);
registerExport(program);
registerFinetune(program);
registerImport(program);
registerLaunch(program);
registerLandscape(program);
registerMi(program);
registerPredict(program);
registerPretrain(program);
registerServe(program);
registerSweep(program);
registerTable(program);
registerMetrics(program);

await program.parseAsync(process.argv);
