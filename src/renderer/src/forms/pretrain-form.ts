import { MiEstimator } from '@shared/mi-config';
import { expectedPenaltyShare, negligiblePenaltyWarning } from '@shared/mi-penalty';
import { PretrainConfig } from '@shared/pretrain-config';
import { MODEL_DOCS, modelFieldHooks, TRAINING_RUN_DOCS } from './common-docs';
import { docKey, objectNode, withOtherSection, type FieldDoc, type FormSpec } from './form-spec';
import { getAt } from './paths';

/** The pre-training form (spec section 3). */

const node = objectNode(PretrainConfig, 'pre-training config');

const DOCS: Record<string, FieldDoc> = {
  mode: { label: 'Mode', help: 'mae: no attack, no MI penalty. adv-mae: attack, λ = 0. mimir: attack + MI penalty.' },
  epochs: { label: 'Epochs' },
  batchSize: { label: 'Batch size', help: 'MI needs pairs of samples, so at least 2.' },
  maskRatio: { label: 'Mask ratio', help: 'Share of patches hidden from the encoder (MAE: 0.75).' },
  normPixLoss: {
    label: 'Normalised pixel loss',
    help: 'Reconstruct per-patch normalised pixels (MAE’s norm_pix_loss).',
  },
  seed: { label: 'Seed', help: 'Runs with the same seed and config repeat exactly.' },
  ...TRAINING_RUN_DOCS,
  ...MODEL_DOCS,
  model: { ...MODEL_DOCS.model, optionNames: ['Preset', 'Custom'] },
  attack: { label: 'Attack' },
  'attack.steps': {
    label: 'Steps',
    help: 'Signed-gradient ascent steps on the reconstruction loss (Table IX compares 1 and 10).',
  },
  'attack.eps': { label: 'ε (/255)', help: 'Perturbation radius in 1/255 units: 8 means 8/255.' },
  'attack.alpha': { label: 'Step size α (/255)', help: 'In 1/255 units.' },
  'attack.perturb': {
    label: 'Perturb',
    help: 'visible: only the encoder’s visible patches (the paper; a ConvStem reads every pixel, so the whole image); image: the whole image, its own target (the authors’ code).',
  },
  'attack.attackMask': {
    label: 'Attack mask',
    help: 'shared: one mask for the attack and the training pass (the paper); fresh: a new mask per pass (the code).',
  },
  mi: { label: 'Mutual information' },
  'mi.estimator': {
    label: 'Estimator',
    help:
      'nhsic: the authors’ code (hsic_normalized_cca), which trained the paper’s models; about 20 on images. ' +
      'hsic: Eq. 29, about 1e-6 on images, so negligible at λ 1e-5. renyi: Eqs. 25-27.',
  },
  'mi.lambda': {
    label: 'λ (MI weight)',
    help: 'Weight of MI(x + δ, z) in the loss; used by mode mimir only (the estimate is recorded for every mode).',
  },
  'mi.tokenOrder': {
    label: 'Token order',
    help: 'Order of z’s visible tokens when flattened: spatial (the paper) or shuffled (the code).',
  },
  'mi.sigma': { label: 'Kernel σ', help: 'Gaussian kernel width for bandwidth “fixed”.' },
  'mi.bandwidth': {
    label: 'Bandwidth',
    help: 'fixed: σ above. median: the median heuristic over the batch (σ unused).',
  },
  'mi.alpha': { label: 'Rényi order α', help: 'Order of the matrix-based Rényi entropy (estimator renyi); above 1.' },
  'mi.epsR': { label: 'nHSIC ridge ε', help: 'Ridge of nhsic: R = Kc (Kc + ε N I)⁻¹.' },
  'mi.layer': { label: 'MI layer (Table XXI)' },
  'mi.layer.block': {
    label: 'Block',
    help: 'The encoder block whose output z MI takes, counted from 1 (ViT-S: 1..12); last: the paper’s choice.',
    optionNames: ['Last', 'Block number'],
  },
  'mi.layer.finalNorm': {
    label: 'Through the final norm',
    help: 'Apply the encoder’s final LayerNorm to that output first (the paper: on; off makes MI oscillate in early blocks).',
  },
  decoder: {
    label: 'Decoder size (Table XIX)',
    help: 'The MAE decoder’s depth, width and heads over the model’s (a preset’s included); off: the model’s own.',
  },
  'decoder.depth': {
    label: 'Decoder depth',
    help: 'Transformer blocks in the decoder (the paper: 2; Table XIX: 2, 4, 6).',
  },
  'decoder.width': {
    label: 'Decoder width',
    help: 'Hidden size (the paper: 128; Table XIX: 128, 256, 512); divisible by 4 and by the heads.',
  },
  'decoder.heads': { label: 'Decoder heads', help: 'Attention heads (the paper: 16); empty: the model’s own.' },
  'mi.penaltyGradEvery': {
    label: 'Penalty gradient ratio every (steps)',
    help: 'Record ‖∇ λ·MI‖ / ‖∇ recon‖ on the encoder at step 1 and every N steps (an extra backward pass); 0: never.',
  },
  'optimizer.baseLr': { label: 'Base learning rate', help: 'The run uses baseLr × batchSize / 256.' },
  checkpointEvery: { label: 'Checkpoint every (epochs)', help: 'And always at the end.' },
  keepCheckpoints: { label: 'Keep checkpoints', help: 'Older ones are deleted; the final one is always kept.' },
  previewEvery: { label: 'Preview every (steps)', help: '0: at the end of each epoch only.' },
  previewCount: { label: 'Preview images' },
  logEvery: { label: 'Log metrics every (steps)' },
  metricsEvery: {
    label: 'Read metrics every (steps)',
    help: 'Metrics stay on the device and are read in one batch every N steps (and before previews, epoch ends and checkpoints); every step is still reported. Empty: 1, or 8 on webgpu, where a read waits for the GPU.',
  },
};

/**
 * The negligible-penalty warning, from the estimator's typical MI (src/shared/mi-penalty.ts), which
 * holds at the default kernel only; the run itself measures the first batch and says so in its log.
 */
function penaltyWarnings(config: unknown): string[] {
  const estimator = MiEstimator.safeParse(getAt(config, ['mi', 'estimator']));
  const lambda = getAt(config, ['mi', 'lambda']);
  const mode = getAt(config, ['mode']);
  const defaultKernel = getAt(config, ['mi', 'bandwidth']) === 'fixed' && getAt(config, ['mi', 'sigma']) === 5;
  if (!estimator.success || typeof lambda !== 'number' || typeof mode !== 'string' || !defaultKernel) return [];
  const settings = { mode, estimator: estimator.data, lambda };
  const share = expectedPenaltyShare(settings);
  const warning = share === null ? null : negligiblePenaltyWarning(settings, share, false);
  return warning ? [warning] : [];
}

export const PRETRAIN_FORM: FormSpec = {
  kind: 'pretrain',
  title: 'New pre-training run',
  schema: PretrainConfig,
  node,
  docs: DOCS,
  sections: withOtherSection(node, [
    {
      id: 'training',
      title: 'Training',
      keys: ['mode', 'model', 'decoder', 'epochs', 'batchSize', 'maskRatio', 'normPixLoss', 'seed'],
    },
    { id: 'dataset', title: 'Dataset', keys: ['dataset', 'trainFraction', 'extraData'] },
    { id: 'augmentation', title: 'Augmentation', keys: ['augmentation'] },
    { id: 'attack', title: 'Attack', keys: ['attack'] },
    { id: 'mi', title: 'Mutual information', keys: ['mi'] },
    { id: 'optimizer', title: 'Optimizer (AdamW)', keys: ['optimizer'] },
    { id: 'engine', title: 'Compute engine', keys: ['engine'] },
    {
      id: 'outputs',
      title: 'Checkpoints, previews and logging',
      keys: ['checkpointEvery', 'keepCheckpoints', 'previewEvery', 'previewCount', 'logEvery', 'metricsEvery'],
    },
  ]),
  inactiveReason(path, config) {
    const mode = getAt(config, ['mode']);
    const key = docKey(path);
    if (mode === 'mae' && (key === 'attack' || key.startsWith('attack.'))) return 'not used in mode mae (no attack)';
    if (mode !== 'mimir' && key === 'mi.lambda') return 'used by mode mimir only';
    const estimator = getAt(config, ['mi', 'estimator']);
    if (key === 'mi.alpha' && estimator !== 'renyi') return 'used by estimator renyi only';
    if (key === 'mi.epsR' && estimator !== 'nhsic') return 'used by estimator nhsic only';
    if (key === 'mi.sigma' && getAt(config, ['mi', 'bandwidth']) === 'median') return 'unused with median bandwidth';
    return null;
  },
  /** A plain MAE run hides the attack it does not make and the MI weight it does not use (adv-mae: the weight). */
  hidden(path, config) {
    const mode = getAt(config, ['mode']);
    const key = docKey(path);
    if (mode === 'mae' && (key === 'attack' || key.startsWith('attack.'))) return true;
    return (mode === 'mae' || mode === 'adv-mae') && key === 'mi.lambda';
  },
  warnings: penaltyWarnings,
  ...modelFieldHooks('model'),
};
