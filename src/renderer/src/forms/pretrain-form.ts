import { describePreset, MODEL_PRESETS, modelConfigFromPreset, type ModelPreset } from '../../../shared/model-config';
import { PretrainConfig } from '../../../shared/pretrain-config';
import { describeSchema, type FormNode, type FormNodeOf } from './schema-walk';
import { getAt, type FieldPath } from './paths';

/**
 * The pre-training form: the shared schema read as fields, plus what a form needs that the schema
 * cannot say at run time (its doc comments are not kept by zod): labels, help and section layout.
 * A field not listed here still renders, with a label made from its key.
 */

export const PRETRAIN_FORM: FormNodeOf<'object'> = (() => {
  const node = describeSchema(PretrainConfig);
  if (node.kind !== 'object') throw new Error('The pre-training config schema is not an object.');
  return node;
})();

export interface FieldDoc {
  label?: string;
  help?: string;
  /** Shown in an empty optional/nullable field. */
  placeholder?: string;
}

/** Keys are field paths without union option names: "dataset.size", "model.width". */
export const FIELD_DOCS: Record<string, FieldDoc> = {
  mode: { label: 'Mode', help: 'mae: no attack, no MI penalty. adv-mae: attack, λ = 0. mimir: attack + MI penalty.' },
  model: { label: 'Model', help: 'A preset sized for the dataset’s images, or a full ViT-MAE configuration.' },
  epochs: { label: 'Epochs' },
  batchSize: { label: 'Batch size', help: 'MI needs pairs of samples, so at least 2.' },
  maskRatio: { label: 'Mask ratio', help: 'Share of patches hidden from the encoder (MAE: 0.75).' },
  normPixLoss: {
    label: 'Normalised pixel loss',
    help: 'Reconstruct per-patch normalised pixels (MAE’s norm_pix_loss).',
  },
  seed: { label: 'Seed', help: 'Runs with the same seed and config repeat exactly.' },
  dataset: { label: 'Dataset' },
  'dataset.kind': { label: 'Source' },
  'dataset.split': { label: 'Split' },
  'dataset.size': {
    label: 'Images',
    help: 'Number of images in the split.',
    placeholder: 'default: 5,000 (train) / 1,000 (test)',
  },
  'dataset.seed': { label: 'Dataset seed' },
  'dataset.classes': { label: 'Classes' },
  'dataset.imageSize': { label: 'Image size (px)' },
  'dataset.root': { label: 'Folder or archive', placeholder: '~/.mimir/datasets/…' },
  'dataset.testFraction': {
    label: 'Test fraction',
    help: 'Held out as the test split when the folder has no train/ and val/ (or test/) sub-folders.',
  },
  'dataset.onBadImage': { label: 'On an unreadable image' },
  augmentation: { label: 'Augmentation' },
  'augmentation.kind': { label: 'Kind' },
  'augmentation.scale': { label: 'Crop area [min, max]', help: 'Random area fraction of the crop.' },
  'augmentation.ratio': { label: 'Aspect ratio [min, max]', help: 'Log-uniform aspect ratio of the crop.' },
  'augmentation.flip': { label: 'Horizontal flip' },
  'augmentation.padding': { label: 'Padding (px)' },
  attack: { label: 'Attack' },
  'attack.steps': {
    label: 'Steps',
    help: 'Signed-gradient ascent steps on the reconstruction loss (Table IX compares 1 and 10).',
  },
  'attack.eps': { label: 'ε (/255)', help: 'Perturbation radius in 1/255 units: 8 means 8/255.' },
  'attack.alpha': { label: 'Step size α (/255)', help: 'In 1/255 units.' },
  'attack.perturb': {
    label: 'Perturb',
    help: 'visible: only the encoder’s visible patches (the paper); image: the whole image (the authors’ code).',
  },
  'attack.attackMask': {
    label: 'Attack mask',
    help: 'shared: one mask for the attack and the training pass (the paper); fresh: a new mask per pass (the code).',
  },
  mi: { label: 'Mutual information' },
  'mi.estimator': { label: 'Estimator', help: 'The paper uses HSIC (Table VIII).' },
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
  optimizer: { label: 'Optimizer (AdamW)' },
  'optimizer.baseLr': { label: 'Base learning rate', help: 'The run uses baseLr × batchSize / 256.' },
  'optimizer.minLr': { label: 'Minimum learning rate', help: 'The end of the cosine schedule.' },
  'optimizer.weightDecay': { label: 'Weight decay' },
  'optimizer.beta1': { label: 'β₁' },
  'optimizer.beta2': { label: 'β₂' },
  'optimizer.warmupEpochs': { label: 'Warm-up epochs', help: 'Linear warm-up before the cosine decay.' },
  'optimizer.clipGrad': {
    label: 'Clip gradient norm',
    help: 'Clip the global gradient norm to this value; empty: no clipping.',
    placeholder: 'none',
  },
  checkpointEvery: { label: 'Checkpoint every (epochs)', help: 'And always at the end.' },
  keepCheckpoints: { label: 'Keep checkpoints', help: 'Older ones are deleted; the final one is always kept.' },
  previewEvery: { label: 'Preview every (steps)', help: '0: at the end of each epoch only.' },
  previewCount: { label: 'Preview images' },
  logEvery: { label: 'Log metrics every (steps)' },
  'model.imageSize': { label: 'Image size (px)' },
  'model.patchSize': { label: 'Patch size (px)' },
  'model.channels': { label: 'Channels' },
  'model.width': { label: 'Encoder width' },
  'model.depth': { label: 'Encoder depth' },
  'model.heads': { label: 'Encoder heads' },
  'model.mlpRatio': { label: 'MLP ratio' },
  'model.decoderWidth': { label: 'Decoder width' },
  'model.decoderDepth': { label: 'Decoder depth' },
  'model.decoderHeads': { label: 'Decoder heads' },
  'model.normalize': {
    label: 'Normalise pixels',
    help: 'Per-channel (x − mean) / std inside the model; off: the model sees [0, 1] pixels.',
  },
  'model.normalize.mean': { label: 'Mean per channel', placeholder: '0.4914, 0.4822, 0.4465' },
  'model.normalize.std': { label: 'Std per channel', placeholder: '0.2470, 0.2435, 0.2616' },
};

export function humanize(key: string): string {
  const words = key.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** The docs key of a value path: numeric indices (tuple items) are dropped. */
export function docKey(path: FieldPath): string {
  return path.filter((part) => typeof part === 'string').join('.');
}

export function fieldDoc(path: FieldPath): FieldDoc {
  return FIELD_DOCS[docKey(path)] ?? {};
}

export function fieldLabel(path: FieldPath): string {
  const last = [...path].reverse().find((part) => typeof part === 'string');
  return fieldDoc(path).label ?? humanize(String(last ?? ''));
}

export interface FormSection {
  id: string;
  title: string;
  /** Top-level keys shown in this section, in order; an object key shows its fields. */
  keys: string[];
}

const SECTIONS: FormSection[] = [
  {
    id: 'training',
    title: 'Training',
    keys: ['mode', 'model', 'epochs', 'batchSize', 'maskRatio', 'normPixLoss', 'seed'],
  },
  { id: 'dataset', title: 'Dataset', keys: ['dataset'] },
  { id: 'augmentation', title: 'Augmentation', keys: ['augmentation'] },
  { id: 'attack', title: 'Attack', keys: ['attack'] },
  { id: 'mi', title: 'Mutual information', keys: ['mi'] },
  { id: 'optimizer', title: 'Optimizer (AdamW)', keys: ['optimizer'] },
  {
    id: 'outputs',
    title: 'Checkpoints, previews and logging',
    keys: ['checkpointEvery', 'keepCheckpoints', 'previewEvery', 'previewCount', 'logEvery'],
  },
];

/** The sections, with any schema field no section names gathered in a last one. */
export function formSections(): FormSection[] {
  const listed = new Set(SECTIONS.flatMap((section) => section.keys));
  const rest = PRETRAIN_FORM.fields.map((field) => field.key).filter((key) => !listed.has(key));
  return rest.length > 0 ? [...SECTIONS, { id: 'other', title: 'Other', keys: rest }] : SECTIONS;
}

export function topLevelNode(key: string): FormNode | undefined {
  return PRETRAIN_FORM.fields.find((field) => field.key === key)?.node;
}

/** Why a section or field does nothing with the current config, or null when it matters. */
export function inactiveReason(path: FieldPath, config: unknown): string | null {
  const mode = getAt(config, ['mode']);
  const key = docKey(path);
  if (mode === 'mae' && (key === 'attack' || key.startsWith('attack.'))) return 'not used in mode mae (no attack)';
  if (mode !== 'mimir' && key === 'mi.lambda') return 'used by mode mimir only';
  const estimator = getAt(config, ['mi', 'estimator']);
  if (key === 'mi.alpha' && estimator !== 'renyi') return 'used by estimator renyi only';
  if (key === 'mi.epsR' && estimator !== 'nhsic') return 'used by estimator nhsic only';
  if (key === 'mi.sigma' && getAt(config, ['mi', 'bandwidth']) === 'median') return 'unused with median bandwidth';
  return null;
}

/** Help for a model preset option. */
export function presetHelp(preset: string): string | null {
  return (MODEL_PRESETS as readonly string[]).includes(preset) ? describePreset(preset as ModelPreset) : null;
}

/**
 * Switching the model from a preset to a custom config starts from what the preset means for the
 * dataset's image size, so the user edits the model they had rather than a blank one.
 */
export function customModelFrom(config: unknown): Record<string, unknown> | null {
  const model = getAt(config, ['model']);
  const imageSize = getAt(config, ['dataset', 'imageSize']);
  if (typeof model !== 'string' || !(MODEL_PRESETS as readonly string[]).includes(model)) return null;
  try {
    return { ...modelConfigFromPreset(model as ModelPreset, typeof imageSize === 'number' ? imageSize : undefined) };
  } catch {
    try {
      return { ...modelConfigFromPreset(model as ModelPreset) };
    } catch {
      return null;
    }
  }
}
