import type { CorruptionType } from '@shared/evaluation';
import { corruptImages } from '../corruptions';
import type { CorruptionPlan } from './plan';

/** One cell of the corruption table. */
export interface CorruptionCellKey {
  type: CorruptionType;
  severity: number;
}

/** A plan's cells in the order both evaluators go through them within a batch: by type, then severity. */
export function corruptionCells(plan: CorruptionPlan): CorruptionCellKey[] {
  return plan.types.flatMap((type) => plan.severities.map((severity) => ({ type, severity })));
}

/**
 * One batch's images [n, size, size, 3] under one cell, as both evaluators evaluate them (the tfjs one in
 * evaluate.ts, the PyTorch one through src/torch/corruption-feed.ts): each example's noise from its own
 * stream keyed by the request's seed and its split index, so the same example gets the same image.
 */
export function corruptBatch(
  images: Float32Array,
  ids: readonly number[],
  size: number,
  cell: CorruptionCellKey,
  plan: CorruptionPlan,
  seed: number,
): Promise<Float32Array> {
  return corruptImages(images, ids.length, size, cell.type, cell.severity, { table: plan.table, seed, ids });
}
