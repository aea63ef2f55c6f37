import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crossEntropyPlusMi, featureDistance, runAttack } from '../../../src/engine/attacks';
import { BuiltinDataset } from '../../../src/engine/data';
import { EvaluatedClassifier, planEvaluation } from '../../../src/engine/evaluate';
import { mutualInformation } from '../../../src/engine/mi/mutual-information';
import { classifierForward, disposeParams } from '../../../src/engine/model';
import { BuiltinSource } from '../../../src/shared/dataset-config';
import { attacksFromWords, EvaluationRequest } from '../../../src/shared/evaluation';
import { useBackend } from '../../helpers/backend';
import { MICRO, trainedClassifierCheckpoint } from '../export/fixtures';
import { hsicRef } from '../mi/reference';
import { toRefParams } from '../model/fixtures';
import * as ref from '../model/reference';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'mimir-eval-model-'));

function request(words: string, extra: object = {}) {
  return EvaluationRequest.parse({
    checkpoint: 'x',
    dataset: { kind: 'builtin' },
    examples: { count: 4 },
    attacks: attacksFromWords(words),
    ...extra,
  });
}

describe('evaluation plan', () => {
  it('resolves request words into exact specs for each threat model', () => {
    const linf = planEvaluation(request('natural,pgd20,pgd:7,cw,pgd-mi,pgd-fea,autoattack,corruptions'), 32);
    expect(linf.attacks.map((a) => a.key)).toEqual([
      'natural',
      'pgd20',
      'pgd7',
      'cw-l2',
      'cw-linf',
      'pgd-mi',
      'pgd-fea',
      'autoattack',
    ]);
    const spec = (key: string) => {
      const a = linf.attacks.find((p) => p.key === key);
      return a && a.kind !== 'natural' ? a.spec : null;
    };
    expect(spec('pgd20')).toMatchObject({ attack: 'pgd', steps: 20, alpha: 2 / 255, eps: 8 / 255, randomStart: true });
    expect(spec('cw-linf')).toMatchObject({ attack: 'pgd', loss: 'margin', steps: 20 });
    expect(spec('cw-l2')).toMatchObject({ attack: 'cw-l2', c: 1, steps: 100 });
    expect(spec('cw-l2')).not.toHaveProperty('eps');
    expect(spec('pgd-mi')).toMatchObject({ steps: 100, lambda: 1e-5, estimator: 'nhsic' });
    expect(spec('autoattack')).toMatchObject({ version: 'standard', threat: 'linf' });
    expect(linf.corruptions).toMatchObject({ table: 'cifar10', severities: [1, 2, 3, 4, 5] });
    expect(linf.corruptions?.types).toHaveLength(9);
    expect(planEvaluation(request('corruptions'), 64).corruptions?.table).toBe('tiny-imagenet');
    expect(planEvaluation(request('corruptions'), 224).corruptions?.table).toBe('imagenet');

    const l2 = planEvaluation(request('pgd20,cw,pgd20', { threat: 'l2', eps: 128 }), 32);
    expect(l2.attacks.map((a) => a.key)).toEqual(['pgd20', 'cw-l2', 'pgd20-2']);
    const cw = l2.attacks[1];
    expect(cw?.kind === 'single' && cw.inWorstCase && cw.withinEps).toBe(true);
    expect(cw?.kind === 'single' ? cw.spec : null).toMatchObject({ attack: 'cw-l2', eps: 128 / 255 });
    expect(l2.attacks[0]?.kind === 'single' ? l2.attacks[0].spec : null).toMatchObject({ alpha: 128 / 255 / 4 });
    expect(() => planEvaluation(request('cw-linf', { threat: 'l2' }), 32)).toThrow(/l_inf threat model/);
    expect(() => attacksFromWords('natural,fgsm')).toThrow(/unknown attack "fgsm"/);
  });
});

describe('the evaluated classifier', () => {
  let made: Awaited<ReturnType<typeof trainedClassifierCheckpoint>>;
  let model: EvaluatedClassifier;
  let x: tf.Tensor4D;
  let labels: Int32Array;

  beforeAll(async () => {
    await useBackend('wasm');
    made = await trainedClassifierCheckpoint(tmp(), { classes: 4, steps: 0, headInitStd: 1 });
    model = await EvaluatedClassifier.load(made.path);
    const data = await new BuiltinDataset(
      BuiltinSource.parse({ kind: 'builtin', split: 'test', imageSize: 16, classes: 4 }),
    ).get([0, 1, 2, 3, 4, 5]);
    x = tf.tensor4d(data.images, [6, 16, 16, 3]);
    labels = data.labels;
  });
  afterAll(() => {
    model.dispose();
    disposeParams(made.params);
    x.dispose();
  });

  it("reuses the classifier's features inside one gradient, with the gradient of two separate forward passes", async () => {
    const f = (xv: tf.Tensor4D, tapped: boolean) => {
      if (tapped) {
        const logits = model.classify(xv);
        return tf.add(tf.sum(tf.square(logits)), tf.sum(tf.square(model.features(xv))));
      }
      const out = classifierForward(made.params, MICRO, xv, { trainParams: false });
      const again = classifierForward(made.params, MICRO, xv, { trainParams: false });
      return tf.add(tf.sum(tf.square(out.logits)), tf.sum(tf.square(again.tokens)));
    };
    const g1 = tf.grad((xv: tf.Tensor) => f(xv as tf.Tensor4D, true))(x);
    const g2 = tf.grad((xv: tf.Tensor) => f(xv as tf.Tensor4D, false))(x);
    const [a, b] = [await g1.data(), await g2.data()];
    const worst = Math.max(...Array.from(a, (v, i) => Math.abs(v - (b[i] ?? 0))));
    const scale = Math.max(...Array.from(b, Math.abs));
    expect(scale).toBeGreaterThan(0);
    expect(worst).toBeLessThan(1e-5 * scale);
    tf.dispose([g1, g2]);
    // Outside a scope the remembered features are gone: a fresh forward pass answers.
    const logits = tf.tidy(() => model.classify(x));
    const features = tf.tidy(() => model.features(x));
    const direct = classifierForward(made.params, MICRO, x, { trainParams: false });
    expect(Array.from(await features.data())).toEqual(Array.from(await direct.tokens.data()));
    tf.dispose([logits, features, direct.logits, direct.tokens, direct.pooled]);
  });

  it('PGD-fea and PGD-MI see forward_features [N, 1 + L, D]; their objectives match a float64 reference', async () => {
    const refParams = toRefParams(made.params);
    const l = (MICRO.imageSize / MICRO.patchSize) ** 2;
    const ids = Array.from({ length: l }, (_, i) => i);
    const n = x.shape[0];
    const xa = tf.tidy(
      () => tf.clipByValue(tf.add(x, tf.randomUniform(x.shape, -8 / 255, 8 / 255, 'float32', 3)), 0, 1) as tf.Tensor4D,
    );
    const rows = (t: tf.Tensor4D) => {
      const v = t.dataSync();
      const size = v.length / n;
      return Array.from({ length: n }, (_, i) => Float64Array.from(v.subarray(i * size, (i + 1) * size)));
    };
    const refTokens = (images: Float64Array[]) =>
      images.map((image) =>
        ref.encoder(refParams, MICRO, ref.patchify(image, MICRO), ids, false).flatMap((r) => Array.from(r)),
      );
    const [tokensAdv, tokensClean] = [refTokens(rows(xa)), refTokens(rows(x))];

    const seen = tf.tidy(() => model.features(xa));
    expect(seen.shape).toEqual([n, 1 + l, MICRO.width]);
    seen.dispose();

    // PGD-fea: ||f(x) - f(x + delta)||^2 over every token value, per example.
    const distance = featureDistance(model.features);
    const yTensor = tf.tensor1d(labels, 'int32');
    const yOneHot = tf.cast(tf.oneHot(yTensor, 4), 'float32') as tf.Tensor2D;
    const fea = tf.tidy(() => distance.objective(xa, x, yTensor, { logits: model.classify(xa), yOneHot }));
    const feaRef = tokensAdv.map((t, i) => t.reduce((acc, v, k) => acc + (v - (tokensClean[i]?.[k] ?? 0)) ** 2, 0));
    Array.from(await fea.data()).forEach((v, i) =>
      expect(Math.abs(v - (feaRef[i] ?? 0))).toBeLessThan(1e-4 * (feaRef[i] ?? 0) + 1e-6),
    );
    expect(Math.min(...feaRef)).toBeGreaterThan(0);
    distance.dispose();

    // PGD-MI: CE(x + delta, y) + lambda * HSIC(x + delta, forward_features), both flattened per sample.
    const miRef = hsicRef(
      rows(xa).map((r) => Array.from(r)),
      tokensAdv,
      { sigma: 5, bandwidth: 'fixed', alpha: 1.01, epsR: 1e-5 },
    );
    const lambda = 1 / miRef; // the MI term weighs about as much as CE
    const objective = crossEntropyPlusMi(lambda, model.featureMi('hsic', { sigma: 5 }));
    const value = tf.tidy(() => objective(xa, x, yTensor, { logits: model.classify(xa), yOneHot }));
    const logitsRef = ref.classifierLogits(refParams, MICRO, rows(xa));
    const ceRef = logitsRef.map((z, i) => {
      const max = Math.max(...z);
      const lse = max + Math.log(Array.from(z).reduce((acc, v) => acc + Math.exp(v - max), 0));
      return lse - (z[labels[i] ?? 0] ?? 0);
    });
    Array.from(await value.data()).forEach((v, i) => expect(v).toBeCloseTo((ceRef[i] ?? 0) + lambda * miRef, 3));
    tf.dispose([xa, fea, value, yTensor, yOneHot]);
  });

  it("PGD-MI at block k takes MI on the tokens after block k (float64 reference), in the classifier's own pass", async () => {
    const refParams = toRefParams(made.params);
    const l = (MICRO.imageSize / MICRO.patchSize) ** 2;
    const ids = Array.from({ length: l }, (_, i) => i);
    const n = x.shape[0];
    const v = x.dataSync();
    const size = v.length / n;
    const images = Array.from({ length: n }, (_, i) => Float64Array.from(v.subarray(i * size, (i + 1) * size)));
    const tokensAt = (depth: number) =>
      images.map((image) =>
        ref
          .encoder(refParams, { ...MICRO, depth }, ref.patchify(image, MICRO), ids, false)
          .flatMap((r) => Array.from(r)),
      );
    const pixels = images.map((image) => Array.from(image));
    const options = { sigma: 5, bandwidth: 'fixed' as const, alpha: 1.01, epsR: 1e-5 };
    const [atBlock1, atLast] = [hsicRef(pixels, tokensAt(1), options), hsicRef(pixels, tokensAt(MICRO.depth), options)];
    const estimate = async (block?: number) => {
      const mi = model.featureMi('hsic', { sigma: 5 }, block);
      // As an attack calls it: classify, then the MI term on the same input inside one scope.
      const value = tf.tidy(() => {
        model.classify(x);
        return mi(x);
      });
      const out = (await value.data())[0] ?? NaN;
      value.dispose();
      return out;
    };
    const relative = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
    expect(relative(await estimate(1), atBlock1)).toBeLessThan(1e-4);
    expect(relative(await estimate(), atLast)).toBeLessThan(1e-4);
    expect(relative(await estimate(MICRO.depth), atLast)).toBeLessThan(1e-4);
    expect(relative(atBlock1, atLast)).toBeGreaterThan(1e-3);
    expect(() => model.featureMi('hsic', {}, 3)).toThrow(
      "PGD-MI block 3 is past the encoder's 2 blocks: give 1..2 or 'last'.",
    );
    const planned = planEvaluation(request('natural', { attacks: [{ attack: 'pgd-mi', block: 1 }] }), 16);
    expect(planned.attacks[0]?.kind === 'single' ? planned.attacks[0].spec : null).toMatchObject({ block: 1 });
  });

  it('PGD-MI with lambda 0 is PGD-100 on CE; a large lambda changes the attack; PGD-fea ascends the feature distance', async () => {
    const eps = 8 / 255;
    const pgdBase = { threat: 'linf' as const, eps, steps: 100, alpha: 2 / 255, seed: 4 };
    const mi = (xa: tf.Tensor4D) => mutualInformation('hsic', xa, model.features(xa));
    const extras = { features: model.features, mi };
    const plain = await runAttack(model.classify, x, labels, { attack: 'pgd', ...pgdBase }, extras);
    const zero = await runAttack(
      model.classify,
      x,
      labels,
      { attack: 'pgd-mi', lambda: 0, estimator: 'hsic', ...pgdBase },
      extras,
    );
    const big = await runAttack(
      model.classify,
      x,
      labels,
      { attack: 'pgd-mi', lambda: 1e4, estimator: 'hsic', ...pgdBase },
      extras,
    );
    expect(Array.from(await zero.xAdv.data())).toEqual(Array.from(await plain.xAdv.data()));
    const maxAbsDiff = async (a: tf.Tensor, b: tf.Tensor) => {
      const d = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))));
      const v = (await d.data())[0] ?? 0;
      d.dispose();
      return v;
    };
    const moved = await maxAbsDiff(big.xAdv, zero.xAdv);
    expect(moved).toBeGreaterThan(1e-3);

    const fea = await runAttack(model.classify, x, labels, { attack: 'pgd-fea', ...pgdBase, steps: 10 }, extras);
    const distance = async (xa: tf.Tensor4D) => {
      const d = tf.tidy(() => tf.sum(tf.square(tf.sub(model.features(xa), model.features(x)))));
      const v = (await d.data())[0] ?? 0;
      d.dispose();
      return v;
    };
    const start = await distance(plain.xAdv);
    const reached = await distance(fea.xAdv);
    console.log(`feature distance: PGD-CE point ${start.toFixed(4)}, PGD-fea point ${reached.toFixed(4)}`);
    expect(reached).toBeGreaterThan(start);
    expect(await maxAbsDiff(fea.xAdv, x)).toBeLessThanOrEqual(eps + 1e-6);
    tf.dispose([plain.xAdv, zero.xAdv, big.xAdv, fea.xAdv]);
  });
});

describe('a DBAT classifier', () => {
  it('is attacked and evaluated on its merged 2C outputs', async () => {
    await useBackend('wasm');
    const made = await trainedClassifierCheckpoint(tmp(), { classes: 4, steps: 0, headInitStd: 1, method: 'dbat' });
    const model = await EvaluatedClassifier.load(made.path);
    expect(model.checkpoint.outputs).toBe(8);
    const x = tf.randomUniform([3, 16, 16, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
    const scores = tf.tidy(() => model.classify(x));
    const expected = model.checkpoint.predict(x);
    expect(scores.shape).toEqual([3, 4]);
    expect(Array.from(await scores.data())).toEqual(Array.from(await expected.data()));
    tf.dispose([x, scores, expected]);
    model.dispose();
    disposeParams(made.params);
    const { evaluate } = await import('../../../src/engine/evaluate');
    const report = await evaluate(
      {
        checkpoint: made.path,
        dataset: { kind: 'builtin', split: 'test', imageSize: 16, classes: 4 },
        examples: { count: 4 },
        attacks: [{ attack: 'natural' }, { attack: 'pgd20' }],
        maskingChecks: false,
      },
      { outDir: tmp() },
    );
    expect(report.model).toMatchObject({ method: 'dbat', numClasses: 4 });
    expect(report.attacks[1]?.robustAccuracy).toBeLessThanOrEqual(report.naturalAccuracy);
  });
});
