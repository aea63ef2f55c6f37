/**
 * Loss landscapes (paper Fig. 7, Li et al. 2018): computeLandscape(request, {outDir, emit, signal})
 * loads a checkpoint, draws two seeded filter-normalised directions, sweeps a grid assigning the
 * perturbed weights in place, and writes landscape.json. The pieces (directions, sweepPlane, the
 * loss evaluators) are exported for tests and for other callers with a model already in memory.
 */
export { computeLandscape, landscapeFile, LandscapeFailedError, type LandscapeRunOptions } from './compute';
export { loadCheckpointModel, type CheckpointModel } from './checkpoint-model';
export {
  filterIndices,
  filterNormalizedDirection,
  filterNorms,
  planeDirections,
  type Direction,
  type DirectionOptions,
  type WeightValues,
} from './directions';
export {
  cleanCrossEntropy,
  fixedMasks,
  loadExamples,
  pgdCrossEntropy,
  reconstructionLoss,
  type ExampleBatch,
  type ExampleSet,
} from './objectives';
export {
  LandscapeCancelledError,
  sweepPlane,
  type PointEvaluator,
  type PointReport,
  type PointValue,
  type SweepOptions,
} from './sweep';
