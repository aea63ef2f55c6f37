import { EvaluationRequest } from '@shared/evaluation';
import { DATASET_DOCS } from './common-docs';
import { objectNode, withOtherSection, type FieldDoc, type FormSpec } from './form-spec';

/** The evaluation form (spec section 6): a fine-tuned checkpoint, the examples, the threat model, the attacks. */

const node = objectNode(EvaluationRequest, 'evaluation request');

const DOCS: Record<string, FieldDoc> = {
  checkpoint: {
    label: 'Fine-tuned checkpoint',
    help: 'A fine-tuning checkpoint folder, or a fine-tuning run’s folder (its newest good checkpoint).',
    widget: { kind: 'checkpoint', checkpointKind: 'finetune', engineLine: true },
  },
  ...DATASET_DOCS,
  examples: { label: 'Examples' },
  'examples.count': { label: 'n (examples)', help: 'How many examples of the split (capped at its size).' },
  'examples.pick': {
    label: 'Which',
    help: 'first: indices 0..n−1; random: n distinct indices drawn with the seed; ids: exactly the listed indices.',
  },
  'examples.ids': {
    label: 'Example ids',
    help: 'With Which = ids: the split indices to evaluate (a fixed subset, e.g. RobustBench’s 5,000 ImageNet images); n must equal their number.',
  },
  attacks: {
    label: 'Attacks',
    help: 'Robust accuracy under each; the worst case counts an example broken by any attack within the threat model.',
    widget: { kind: 'attacks' },
  },
  'attacks.steps': { label: 'Steps' },
  'attacks.alpha': { label: 'Step size α (/255)', placeholder: 'default: 2 (l∞) / ε ÷ 4 (l2)' },
  'attacks.restarts': { label: 'Restarts' },
  'attacks.randomStart': { label: 'Random start' },
  'attacks.keep': {
    label: 'Counts',
    help: 'best: per example, a misclassified iterate if any was visited (stronger); last: the final iterate only, as torchattacks and the paper’s tables.',
  },
  'attacks.iterations': { label: 'Iterations' },
  'attacks.targets': { label: 'Target classes' },
  'attacks.queries': { label: 'Queries' },
  'attacks.pInit': { label: 'p init' },
  'attacks.norm': { label: 'Norm', placeholder: 'l2 (+ l∞ under l∞)' },
  'attacks.c': { label: 'Constant c' },
  'attacks.learningRate': { label: 'Learning rate' },
  'attacks.lambda': { label: 'λ (MI weight)' },
  'attacks.estimator': { label: 'MI estimator' },
  'attacks.block': {
    label: 'MI at block',
    placeholder: 'last',
    help: 'PGD-MI: the block (from 1) whose output tokens the MI is taken on; empty: the last, after the final norm.',
  },
  'attacks.types': { label: 'Corruption types' },
  'attacks.severities': { label: 'Severities', placeholder: '1, 2, 3, 4, 5' },
  'attacks.table': {
    label: 'Severity table',
    help: 'auto: by image size (CIFAR-10-C up to 32 px, then Tiny, then ImageNet).',
  },
  threat: { label: 'Threat model' },
  engine: {
    label: 'Engine',
    help: 'Leave empty to let the checkpoint decide: PyTorch for ConvNeXt and Swin (natural, PGD and corruptions only), else TensorFlow.js (every attack).',
  },
  eps: { label: 'ε (/255)', help: 'Radius in 1/255 units: 8 means 8/255.' },
  seed: { label: 'Seed', help: 'Random starts, random picks and corruptions repeat with it.' },
  batchSize: { label: 'Batch size' },
  maskingChecks: {
    label: 'Gradient-masking checks',
    help: 'Zero gradients, randomness, black box stronger than white box, unbounded radius not reaching 0 %.',
  },
  flipped: { label: 'Flipped examples' },
  'flipped.list': { label: 'Listed per attack' },
  'flipped.images': { label: 'Shown as images per attack' },
};

export const EVALUATE_FORM: FormSpec = {
  kind: 'evaluate',
  title: 'New evaluation',
  schema: EvaluationRequest,
  node,
  docs: DOCS,
  sections: withOtherSection(node, [
    { id: 'model', title: 'Model', keys: ['checkpoint', 'engine'] },
    { id: 'examples', title: 'Examples', keys: ['dataset', 'examples'] },
    { id: 'threat', title: 'Threat model', keys: ['threat', 'eps', 'seed', 'batchSize'] },
    { id: 'attacks', title: 'Attacks', keys: ['attacks'] },
    { id: 'reports', title: 'Checks and examples', keys: ['maskingChecks', 'flipped'] },
  ]),
  inactiveReason: () => null,
  hidden: () => false,
  valueHelp: () => null,
  objectOptionStart: () => null,
};
