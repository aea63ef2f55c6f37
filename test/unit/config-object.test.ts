import { describe, expect, it } from 'vitest';
import { closestKey, describeIssues } from '../../src/shared/config-object';
import { FinetuneConfig } from '../../src/shared/finetune-config';
import { PretrainConfig } from '../../src/shared/pretrain-config';

const problems = (result: { success: boolean; error?: import('zod').ZodError }): string =>
  result.success || !result.error ? 'valid' : describeIssues(result.error);

describe('run configs refuse unknown keys', () => {
  it('names a misspelt key and the key it was meant to be, at any depth', () => {
    const message = problems(
      PretrainConfig.safeParse({
        batchsize: 4,
        optimizer: { baseLR: 1e-3 },
        mi: { lamda: 1 },
        dataset: { kind: 'builtin', sise: 64 },
      }),
    );
    expect(message).toContain('(config): unknown key "batchsize" (did you mean "batchSize"?)');
    expect(message).toContain('optimizer: unknown key "baseLR" (did you mean "baseLr"?)');
    // mi extends the estimator settings: the suggestion knows the extended keys.
    expect(message).toContain('mi: unknown key "lamda" (did you mean "lambda"?)');
    expect(message).toContain('dataset: unknown key "sise" (did you mean "size"?)');
  });

  it('lists the known keys when none is close, and still accepts a valid config', () => {
    const message = problems(FinetuneConfig.safeParse({ source: { kind: 'scratch' }, frobnicate: true }));
    expect(message).toMatch(/^\(config\): unknown key "frobnicate"; known keys: method, source, dataset, /);
    expect(PretrainConfig.safeParse({ batchSize: 4, optimizer: { baseLr: 1e-3 } }).success).toBe(true);
  });

  it('suggests only close keys', () => {
    expect(closestKey('epoch', ['epochs', 'seed'])).toBe('epochs');
    expect(closestKey('learningRate', ['epochs', 'seed'])).toBeNull();
  });
});
