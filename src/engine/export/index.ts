/** Export checkpoints as safetensors with timm's / MAE's names and PyTorch layouts (or native), and import them back. */
export {
  exportCheckpoint,
  importCheckpoint,
  importToCheckpoint,
  configPathFor,
  type ExportOptions,
  type ExportResult,
  type ImportedModel,
} from './export';
export { ExportConfig, EXPORT_NAMINGS, type ExportNaming, type TimmModelArgs } from './config';
export { classifierRecord, placeholderRecord } from './checkpoint-source';
export {
  HierExportConfig,
  isHierarchicalEncoder,
  type HierExporter,
  type HierExportJob,
  type HierExportFields,
} from './hier-encoders';
export {
  toTorchLayout,
  fromTorchLayout,
  patchWeightToConv,
  convToPatchWeight,
  hwioToTorch,
  torchToHwio,
  transpose2d,
  posEmbedTensor,
  type Weights,
  type WeightArray,
  type ExportKind,
} from './layout';
