import { describe, expect, it } from 'vitest';
import { finetuneJob, pretrainJob } from '../../src/torch/job';

/** What the PyTorch engine does not do yet is refused when its job is built, with the reason. */
describe('PyTorch engine jobs', () => {
  const builtin = { kind: 'builtin', size: 32, imageSize: 16 };

  it('refuses extra generated data (tfjs only so far), on pre-training and fine-tuning', async () => {
    const extraData = { path: '/data/edm.npz', ratio: 0.7 };
    const message =
      'extraData (/data/edm.npz) is mixed in by the tfjs engine only so far: leave extraData out or use --engine tfjs.';
    await expect(pretrainJob({ model: 'micro', dataset: builtin, extraData })).rejects.toThrow(message);
    await expect(
      finetuneJob({ method: 'pgd-at', source: { kind: 'scratch', model: 'micro' }, dataset: builtin, extraData }),
    ).rejects.toThrow(message);
  });

  it('passes the decoder setting and the MI layer on to the engine', async () => {
    const job = await pretrainJob({
      model: 'micro',
      dataset: builtin,
      decoder: { depth: 3, width: 64 },
      mi: { layer: { block: 1, finalNorm: false } },
    });
    expect(job.config.model).toMatchObject({ depth: 2, decoderDepth: 3, decoderWidth: 64, decoderHeads: 2 });
    expect(job.config.mi.layer).toEqual({ block: 1, finalNorm: false });
  });

  it('takes a PyTorch-only encoder on the torch engine when the config names no engine (mimir ... --engine torch)', async () => {
    const model = {
      imageSize: 16,
      patchSize: 4,
      width: 32,
      depth: 2,
      heads: 2,
      decoderWidth: 32,
      decoderDepth: 1,
      decoderHeads: 2,
      encoder: { kind: 'convnext', depths: [1, 1, 1, 1], dims: [8, 16, 32, 64] },
    };
    const job = await pretrainJob({ model, dataset: builtin });
    expect(job.config.model).toMatchObject({ encoder: { kind: 'convnext' } });
    expect('engine' in job.config).toBe(false);
    const scratch = await finetuneJob({ method: 'pgd-at', source: { kind: 'scratch', model }, dataset: builtin });
    expect(scratch.config).toMatchObject({ model: { encoder: { kind: 'convnext' } } });
  });
});
