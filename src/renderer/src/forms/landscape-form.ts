import { LandscapeRequest } from '@shared/landscape';
import { DATASET_DOCS } from './common-docs';
import { docKey, objectNode, withOtherSection, type FieldDoc, type FormSpec } from './form-spec';
import { getAt } from './paths';

/** The loss-landscape form (paper Fig. 7; Li et al. 2018). */

const node = objectNode(LandscapeRequest, 'loss landscape request');

const DOCS: Record<string, FieldDoc> = {
  checkpoint: {
    label: 'Checkpoint',
    help: 'A fine-tuning checkpoint (classification loss) or a pre-training one (reconstruction loss).',
    widget: { kind: 'checkpoint', checkpointKind: null },
  },
  loss: {
    label: 'Loss',
    help: 'ce: clean cross-entropy; pgd-ce: cross-entropy at PGD examples; recon: the MAE reconstruction loss.',
    placeholder: 'by checkpoint: ce / recon',
  },
  ...DATASET_DOCS,
  examples: { label: 'Examples', help: 'The first images of the dataset, in index order.' },
  batchSize: { label: 'Batch size' },
  grid: {
    label: 'Grid points',
    help: 'Points per axis (square), or [α points, β points].',
    optionNames: ['Square', 'α × β'],
  },
  span: { label: 'Span [min, max]', help: 'Range of α and β in units of the filter-normalised directions.' },
  seed: { label: 'Seed', help: 'Seeds the two directions, the masks and PGD’s random starts.' },
  ignoreBiasNorm: {
    label: 'Ignore biases and norms',
    help: 'Zero direction for biases and LayerNorm parameters (Li et al.’s usual setting).',
  },
  pgd: { label: 'PGD adversary' },
  'pgd.threat': { label: 'Norm' },
  'pgd.eps': { label: 'ε (pixel units)', help: 'In [0, 1] pixel units here: 8/255 ≈ 0.0314.' },
  'pgd.steps': { label: 'Steps' },
  'pgd.alpha': { label: 'Step size (pixel units)' },
  'pgd.randomStart': { label: 'Random start' },
  maskRatio: { label: 'Mask ratio', placeholder: 'the checkpoint’s (0.75)' },
  normPixLoss: { label: 'Normalised pixel loss', placeholder: 'the checkpoint’s' },
};

export const LANDSCAPE_FORM: FormSpec = {
  kind: 'landscape',
  title: 'New loss landscape',
  schema: LandscapeRequest,
  node,
  docs: DOCS,
  sections: withOtherSection(node, [
    { id: 'model', title: 'Model and loss', keys: ['checkpoint', 'loss'] },
    { id: 'examples', title: 'Examples', keys: ['dataset', 'examples', 'batchSize'] },
    { id: 'grid', title: 'Grid and directions', keys: ['grid', 'span', 'seed', 'ignoreBiasNorm'] },
    { id: 'pgd', title: 'PGD adversary (loss pgd-ce)', keys: ['pgd'] },
    { id: 'recon', title: 'Reconstruction (loss recon)', keys: ['maskRatio', 'normPixLoss'] },
  ]),
  inactiveReason(path, config) {
    const key = docKey(path);
    const loss = getAt(config, ['loss']);
    if ((key === 'pgd' || key.startsWith('pgd.')) && loss !== 'pgd-ce') return 'used by loss pgd-ce only';
    if ((key === 'maskRatio' || key === 'normPixLoss') && loss !== undefined && loss !== 'recon')
      return 'used by loss recon only';
    return null;
  },
  hidden: () => false,
  valueHelp: () => null,
  objectOptionStart: () => null,
};
