export { CheckpointError, readCheckpoint, readManifest, type CheckpointContents } from './checkpoint-files';
export {
  describeLatest,
  findLatestCheckpoint,
  findResumeCheckpoint,
  resumeTarget,
  type FindOptions,
  type GoodCheckpoint,
  type LatestCheckpoint,
} from './find';
export {
  compareShapes,
  loadCheckpoint,
  restoreCheckpoint,
  shapesOf,
  type LoadedCheckpoint,
  type LoadOptions,
} from './load';
export {
  checkpointName,
  readLatestPointer,
  saveCheckpoint,
  type CheckpointInput,
  type SavedCheckpoint,
  type SaveOptions,
} from './save';
