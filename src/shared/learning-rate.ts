/**
 * The linear scaling rule of MAE (and MIMIR): absolute lr = base lr * effective batch size / 256. The
 * engines train with it and the forms show it, from this one definition.
 */
export function scaledLearningRate(baseLr: number, batchSize: number): number {
  return (baseLr * batchSize) / 256;
}
