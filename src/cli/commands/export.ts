import { Option, type Command } from 'commander';
import { commandAction } from '../output';

interface ExportOptions {
  model: string;
  to: string;
  naming: 'timm' | 'native';
  decoder?: boolean;
  overwrite?: boolean;
  json?: boolean;
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description("write a checkpoint's model as safetensors with timm's names and PyTorch layouts, plus a config JSON")
    .requiredOption('--model <checkpoint>', 'a checkpoint, its checkpoints/ folder or its run folder')
    .requiredOption('--to <file.safetensors>', 'the weights file; the config goes beside it as <file>.json')
    .addOption(
      new Option('--naming <naming>', "timm: timm's / MAE's names and layouts; native: the workbench's own")
        .choices(['timm', 'native'])
        .default('timm'),
    )
    .option('--decoder', "pre-training checkpoints: also write MAE's decoder (default: the encoder only)")
    .option('--overwrite', 'replace the weights file and its config JSON where they exist (default: refuse)')
    .option('--json', 'print one JSON object')
    .action(
      commandAction(async (options: ExportOptions, json) => {
        // Layout conversion only: no backend needed (ConvNeXt and Swin: the PyTorch engine writes them).
        const { exportCheckpoint } = await import('@engine/export');
        const { torchHierExporter } = await import('@torch/export');
        const result = await exportCheckpoint(options.model, options.to, {
          naming: options.naming,
          decoder: options.decoder === true,
          overwrite: options.overwrite === true,
          hierarchical: torchHierExporter,
        });
        const [module = '', name = ''] = result.config.architecture.split('.');
        const summary = {
          file: result.file,
          config: result.configFile,
          kind: result.kind,
          naming: result.naming,
          tensors: result.tensors.length,
          modelArgs: result.config.model_args,
        };
        process.stdout.write(
          json
            ? `${JSON.stringify(summary)}\n`
            : `wrote ${result.file} (${result.tensors.length} tensors, ${result.naming} names, ${result.kind})\n` +
                `wrote ${result.configFile}\n` +
                (result.naming === 'timm' && result.kind === 'finetune' && !module.startsWith('mimir_')
                  ? `PyTorch: timm.models.${module}.${name}(**config["model_args"]).load_state_dict(safetensors.torch.load_file(file))\n`
                  : ''),
        );
      }),
    );
}
