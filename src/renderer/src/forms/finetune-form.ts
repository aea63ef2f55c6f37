import { FinetuneConfig } from '@shared/finetune-config';
import { MODEL_DOCS, modelFieldHooks, TRAINING_RUN_DOCS } from './common-docs';
import { docKey, objectNode, prefixDocs, withOtherSection, type FieldDoc, type FormSpec } from './form-spec';
import { getAt } from './paths';

/** The fine-tuning form (spec section 5). */

const node = objectNode(FinetuneConfig, 'fine-tuning config');

/** Each method's own settings block, shown only with that method. */
const METHOD_SETTINGS: Record<string, string> = {
  fastAt: 'fast-at',
  trades: 'trades',
  mart: 'mart',
  generalist: 'generalist',
  dbat: 'dbat',
  apgdAt: 'apgd-at',
};

const DOCS: Record<string, FieldDoc> = {
  method: {
    label: 'Method',
    help: 'natural: clean examples only. pgd-at (Madry), fast-at (FGSM with random start), trades, mart, generalist, dbat, apgd-at.',
  },
  source: { label: 'Start from' },
  'source.kind': {
    label: 'Encoder',
    help: 'pretrained: a MIMIR / MAE pre-training checkpoint’s encoder. scratch: random weights (the End2End baseline).',
  },
  'source.checkpoint': {
    label: 'Pre-training checkpoint',
    help: 'A checkpoint folder, or a pre-training run’s folder (its newest good checkpoint).',
    widget: { kind: 'checkpoint', checkpointKind: 'pretrain' },
  },
  ...prefixDocs('source.model', MODEL_DOCS, 'model'),
  'source.model': { ...MODEL_DOCS.model, optionNames: ['Preset', 'Custom'] },
  ...TRAINING_RUN_DOCS,
  engine: {
    label: 'Engine',
    help: 'Empty or TensorFlow.js: this machine’s engine process. PyTorch (python3 with torch; see mimir doctor) fine-tunes with every method and augmentation.',
  },
  randAugment: { label: 'RandAugment', help: 'torchvision’s RandAugment on top of the augmentation above.' },
  'randAugment.numOps': { label: 'Operations per image' },
  'randAugment.magnitude': { label: 'Magnitude (bin)' },
  'randAugment.bins': { label: 'Magnitude bins' },
  mixup: { label: 'MixUp / CutMix', help: 'timm’s Mixup in batch mode, with soft labels.' },
  'mixup.mixupAlpha': { label: 'MixUp α', help: '0 turns MixUp off.' },
  'mixup.cutmixAlpha': { label: 'CutMix α', help: '0 turns CutMix off.' },
  'mixup.prob': { label: 'Probability' },
  'mixup.switchProb': { label: 'CutMix share' },
  threat: { label: 'Threat model' },
  'threat.norm': { label: 'Norm' },
  'threat.eps': {
    label: 'ε (/255)',
    help: 'Radius in 1/255 units (8 = 8/255); l2 too (0.5 is 127.5).',
    placeholder: 'default: 8 (4 at ≥ 160 px)',
  },
  attack: { label: 'Training attack' },
  'attack.steps': { label: 'Steps' },
  'attack.alpha': { label: 'Step size α (/255)' },
  'attack.randomStart': { label: 'Random start' },
  fastAt: { label: 'Fast-AT' },
  'fastAt.alphaFactor': { label: 'Step = factor × ε', help: 'Wong et al.: 1.25.' },
  trades: { label: 'TRADES' },
  'trades.beta': { label: 'β (KL weight)' },
  mart: { label: 'MART' },
  'mart.beta': { label: 'β' },
  generalist: { label: 'Generalist' },
  'generalist.emaDecay': { label: 'EMA decay' },
  'generalist.robustWeightStart': { label: 'Robust weight at start' },
  'generalist.robustWeightEnd': { label: 'Robust weight at end' },
  'generalist.mixRampStart': { label: 'Ramp starts (share of epochs)' },
  'generalist.syncStart': { label: 'Sync starts (share of epochs)' },
  'generalist.syncEvery': { label: 'Sync every (epochs)' },
  dbat: { label: 'DBAT' },
  'dbat.attack': { label: 'Attack' },
  'dbat.realTargetEpochs': { label: 'Real-class targets (share of epochs)' },
  'dbat.merge': { label: 'Score merge' },
  'dbat.labelSmoothing': {
    label: 'Label smoothing',
    help: 'DBAT’s own: 0.5 as its authors’ code, whatever the run’s label smoothing; empty: the run’s.',
    placeholder: 'the run’s',
  },
  apgdAt: { label: 'APGD-AT' },
  'apgdAt.steps': { label: 'APGD steps' },
  'apgdAt.rho': { label: 'ρ' },
  epochs: { label: 'Epochs' },
  batchSize: { label: 'Batch size' },
  'optimizer.baseLr': {
    label: 'Base learning rate',
    help: 'The run uses baseLr × batchSize / 256; default 5e-3 (CIFAR-10, built-in), else 1e-3.',
    placeholder: 'default by dataset',
  },
  'optimizer.layerDecay': { label: 'Layer-wise lr decay' },
  dropPath: { label: 'Drop path' },
  labelSmoothing: { label: 'Label smoothing' },
  headInitStd: { label: 'Head init std', help: '2e-5 (MAE fine-tuning) or 2e-2 (the authors’ CIFAR code).' },
  heldOut: { label: 'Held-out checks' },
  'heldOut.size': { label: 'Test images', help: 'The first images of the test split; 0 turns the checks off.' },
  'heldOut.pgdSteps': { label: 'PGD steps' },
  'heldOut.alpha': { label: 'PGD step size (/255)', placeholder: 'default: ε ÷ 4' },
  'heldOut.every': { label: 'Every (epochs)' },
  seed: { label: 'Seed' },
  checkpointEvery: { label: 'Checkpoint every (epochs)', help: 'And always at the end.' },
  keepCheckpoints: { label: 'Keep checkpoints' },
  logEvery: { label: 'Log metrics every (steps)' },
  metricsEvery: {
    label: 'Read metrics every (steps)',
    help: 'Metrics stay on the device and are read in one batch every N steps (and before previews, epoch ends and checkpoints); every step is still reported. Empty: 1, or 8 on webgpu, where a read waits for the GPU.',
  },
};

export const FINETUNE_FORM: FormSpec = {
  kind: 'finetune',
  title: 'New fine-tuning run',
  schema: FinetuneConfig,
  node,
  docs: DOCS,
  sections: withOtherSection(node, [
    { id: 'source', title: 'Start from', keys: ['source'] },
    {
      id: 'training',
      title: 'Training',
      keys: ['method', 'epochs', 'batchSize', 'dropPath', 'labelSmoothing', 'headInitStd', 'seed'],
    },
    { id: 'dataset', title: 'Dataset', keys: ['dataset', 'trainFraction', 'extraData'] },
    { id: 'augmentation', title: 'Augmentation', keys: ['augmentation', 'randAugment', 'mixup'] },
    {
      id: 'threat',
      title: 'Threat model and training attack',
      keys: ['threat', 'attack', 'fastAt', 'trades', 'mart', 'generalist', 'dbat', 'apgdAt'],
    },
    { id: 'optimizer', title: 'Optimizer (AdamW)', keys: ['optimizer'] },
    { id: 'engine', title: 'Compute engine', keys: ['engine'] },
    { id: 'held-out', title: 'Held-out checks', keys: ['heldOut'] },
    {
      id: 'outputs',
      title: 'Checkpoints and logging',
      keys: ['checkpointEvery', 'keepCheckpoints', 'logEvery', 'metricsEvery'],
    },
  ]),
  inactiveReason(path, config) {
    const method = getAt(config, ['method']);
    const key = docKey(path);
    if (method === 'natural' && (key === 'attack' || key.startsWith('attack.')))
      return 'not used by natural training (the held-out PGD check uses α)';
    if (method === 'fast-at' && (key === 'attack.steps' || key === 'attack.randomStart'))
      return 'fast-at takes one step from a random start';
    return null;
  },
  hidden(path, config) {
    const owner = METHOD_SETTINGS[String(path[0])];
    return path.length === 1 && owner !== undefined && getAt(config, ['method']) !== owner;
  },
  ...modelFieldHooks('source.model'),
};
