import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeSafetensors } from '../../src/engine/io/safetensors';
import { ModelConfig, modelConfigFromPreset } from '../../src/shared/model-config';
import { pgdAtFinetuneArgs, runEvents } from '../helpers/cli';
import { findPythonWithTorch } from '../engine/io/python-torch';

/**
 * A ViT + ConvStem on the PyTorch engine through `mimir`: MIMIR pre-training with the stem kept from
 * initialisation (paper Table VI), then PGD-AT fine-tuning on the same engine, which trains the stem.
 */

const tmp = (): string => mkdtempSync(path.join(os.tmpdir(), 'mimir-convstem-torch-'));
const THREADS = { OMP_NUM_THREADS: '1' };
const stemKept = ModelConfig.parse({
  ...modelConfigFromPreset('convstem-micro', 16),
  encoder: { kind: 'convstem', stemChannels: [8, 16], pretrainStem: false },
});

function weights(file: string): Map<string, number[]> {
  const read = decodeSafetensors(readFileSync(file)).tensors;
  return new Map([...read].map(([name, t]) => [name, Array.from(t.data)]));
}

describe('ViT + ConvStem on the PyTorch engine (mimir pretrain / finetune --engine torch)', () => {
  const found = findPythonWithTorch();
  it('pre-trains with the stem kept from init, then PGD-AT fine-tuning trains it', () => {
    if (!found.python) throw new Error(`this test needs Python with torch: ${found.reason}`);
    const dir = tmp();
    const config = path.join(dir, 'config.input.json');
    writeFileSync(
      config,
      JSON.stringify({
        model: stemKept,
        mode: 'mimir',
        epochs: 2,
        batchSize: 8,
        dataset: { kind: 'builtin', size: 32, imageSize: 16 },
        checkpointEvery: 1,
        keepCheckpoints: 5,
        optimizer: { warmupEpochs: 1, baseLr: 2e-3 },
      }),
    );
    const pretrained = runEvents(
      ['pretrain', '--engine', 'torch', '--config', config, '--out', dir, '--json'],
      THREADS,
    );
    const done = pretrained.at(-1);
    expect(done).toMatchObject({ type: 'done', epoch: 2, step: 8 });
    const first = weights(path.join(dir, 'checkpoints', 'epoch-0001', 'model.safetensors'));
    const second = weights(path.join(dir, 'checkpoints', 'epoch-0002', 'model.safetensors'));
    const stem = [...second.keys()].filter((name) => name.startsWith('patch_embed.proj.stem.'));
    expect(stem).toHaveLength(10);
    for (const name of stem) expect(second.get(name), name).toEqual(first.get(name));
    expect(second.get('blocks.0.attn.qkv.weight')).not.toEqual(first.get('blocks.0.attn.qkv.weight'));

    const finetuned = tmp();
    const ftConfig = path.join(finetuned, 'config.input.json');
    writeFileSync(ftConfig, JSON.stringify({ attack: { steps: 2 }, heldOut: { size: 0 } }));
    const ftEvents = runEvents(
      pgdAtFinetuneArgs(done?.type === 'done' ? (done.output?.path ?? '') : '', ftConfig, finetuned, {
        engine: 'torch',
      }),
      THREADS,
    );
    expect(ftEvents[0]).toMatchObject({ type: 'started', backend: 'torch' });
    const ftDone = ftEvents.at(-1);
    expect(ftDone).toMatchObject({ type: 'done', epoch: 1 });
    const tuned = weights(path.join(ftDone?.type === 'done' ? (ftDone.output?.path ?? '') : '', 'model.safetensors'));
    for (const name of stem) expect(tuned.get(name), name).not.toEqual(second.get(name));
  }, 600_000);
});
