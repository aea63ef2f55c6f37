import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeFileAtomic } from '@engine/io/atomic-file';
import { encodeNpy } from '@engine/io/npy';
import type { Dataset } from '@engine/data';
import { corruptBatch, corruptionCells } from '@engine/evaluate/corrupted-batch';
import type { CorruptionPlan } from '@engine/evaluate/plan';
import { pathExists } from '@engine/io/exists';

/**
 * The corrupted images of a PyTorch evaluation, made here by the engine's one implementation of the
 * corruptions (src/engine/corruptions, sharp's JPEG included) and handed to evaluate_run.py as .npy files in
 * a folder: file k is batch floor(k / cells)'s images [n, size, size, 3] float32 under cell k mod cells (the
 * cells by type, then severity), the batches as the evaluators cut `ids`. Python reads each file in turn and
 * deletes it; at most `budgetBytes` of files (and at least one) wait unread, so memory and disk stay bounded
 * whatever n and the image size are.
 */

/** Unread files' bytes the feed lets pile up ahead of the reader. */
export const CORRUPTION_FEED_BYTES = 256 * 1024 * 1024;
const POLL_MS = 20;

/** The name of the feed's k-th file (evaluate_run.py names it alike). */
export function feedFileName(index: number): string {
  return `${String(index).padStart(6, '0')}.npy`;
}

export interface CorruptionFeed {
  folder: string;
  dataset: Dataset;
  ids: readonly number[];
  batchSize: number;
  plan: CorruptionPlan;
  seed: number;
  /** Ends the feed (its promise rejects with the abort reason). */
  signal: AbortSignal;
  budgetBytes?: number;
}

/** Write every file of the feed, waiting while the reader is `budgetBytes` behind. */
export async function feedCorruptions(feed: CorruptionFeed): Promise<void> {
  const { folder, dataset, ids, batchSize, plan, seed, signal } = feed;
  const size = dataset.imageSize;
  const cells = corruptionCells(plan);
  const fullBatchBytes = Math.min(batchSize, ids.length) * size * size * 3 * 4;
  const ahead = Math.max(1, Math.floor((feed.budgetBytes ?? CORRUPTION_FEED_BYTES) / Math.max(fullBatchBytes, 1)));
  let index = 0;
  for (let start = 0; start < ids.length; start += batchSize) {
    const batchIds = ids.slice(start, start + batchSize);
    const data = await dataset.get(batchIds);
    for (const cell of cells) {
      signal.throwIfAborted();
      const waitFor = path.join(folder, feedFileName(index - ahead));
      while (index >= ahead && (await pathExists(waitFor))) await sleep(POLL_MS, undefined, { signal });
      const images = await corruptBatch(data.images, batchIds, size, cell, plan, seed);
      const shape = [batchIds.length, size, size, 3];
      await writeFileAtomic(
        path.join(folder, feedFileName(index)),
        encodeNpy({ dtype: 'float32', shape, data: images }),
      );
      index++;
    }
  }
}
