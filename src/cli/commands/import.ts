import type { Command } from 'commander';
import { BACKEND_ENV, readForcedBackend } from '@shared/system';
import { backendOption, commandAction } from '../output';

interface ImportOptions {
  from: string;
  config?: string;
  out: string;
  json?: boolean;
  backend?: string;
}

export function registerImport(program: Command): void {
  program
    .command('import')
    .description('read a safetensors file with timm (or native) names and its config JSON into a checkpoint')
    .requiredOption('--from <file.safetensors>', 'the weights file')
    .option('--config <file.json>', 'its config (default: <file>.json beside it)')
    .requiredOption('--out <dir>', 'a folder for the checkpoint (it gets imported/ and a latest pointer)')
    .option('--json', 'print one JSON object')
    .addOption(backendOption())
    .action(
      commandAction(async (options: ImportOptions, json) => {
        const { selectBackend } = await import('@engine/backend');
        const { importToCheckpoint } = await import('@engine/export');
        await selectBackend(readForcedBackend(options.backend, process.env[BACKEND_ENV]), 'cli');
        const { saved, model } = await importToCheckpoint(
          options.from,
          options.out,
          options.config ? { config: options.config } : {},
        );
        const summary = {
          checkpoint: saved.path,
          kind: model.kind,
          naming: model.naming,
          numClasses: model.numClasses,
          method: model.method,
          modelConfig: model.modelConfig,
        };
        process.stdout.write(
          json
            ? `${JSON.stringify(summary)}\n`
            : `imported ${options.from} (${model.naming} names, ${model.kind}${model.kind === 'finetune' ? `, ${model.numClasses} classes` : ''}) into ${saved.path}\n`,
        );
      }),
    );
}
