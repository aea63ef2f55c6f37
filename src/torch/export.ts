import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { HierExporter } from '@engine/export/hier-encoders';
import { runTorchJob } from './launch';

/**
 * The PyTorch engine's exporter of ConvNeXt and Swin checkpoints (src/engine/export routes them here):
 * one CPU process runs python/mimir_torch/export_run.py on the job, whose job file lives in a temporary
 * folder removed afterwards.
 */
export const torchHierExporter: HierExporter = async (job) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mimir-export-'));
  const stderr: string[] = [];
  try {
    await runTorchJob(
      { kind: 'export', config: job },
      {
        outDir: dir,
        device: 'cpu',
        threads: Math.min(4, os.availableParallelism()),
        // A failed event's message is the reason; the log lines say more only when Python died without one.
        emit: () => undefined,
        log: (line) => stderr.push(line),
      },
    );
  } catch (error) {
    if (error instanceof Error && error.message.includes('its log is above')) {
      error.message = error.message.replace('its log is above', `its log ends: ${stderr.slice(-5).join(' | ')}`);
    }
    throw error;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
};
