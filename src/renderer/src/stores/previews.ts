import { defineStore } from 'pinia';
import { ref, shallowRef } from 'vue';
import { z } from 'zod';
import type { PushMessage } from '@shared/push';
import { lastKeptStep, PreviewKind } from '@shared/run-events';
import type { Artifact } from '@shared/store-types';
import { api } from '../api/client';
import { latestOnly, type LatestOnly } from '../latest';
import { errorMessage } from '../format';

/** One stored preview snapshot of a run: the fixed preview batch at one step, one PNG strip per kind. */
export interface PreviewMeta {
  step: number;
  epoch: number;
  count: number;
  imageSize: number;
  /** The perturbation strip shows 0.5 + scale * delta, clipped. */
  perturbationScale: number;
  files: Partial<Record<PreviewKind, string>>;
}

const PreviewMetadata = z.object({
  epoch: z.number().default(0),
  files: z.partialRecord(PreviewKind, z.string()),
  count: z.number().int().positive(),
  imageSize: z.number().int().positive(),
  perturbationScale: z.number().positive(),
});

export function previewOf(artifact: Artifact): PreviewMeta | null {
  const metadata = PreviewMetadata.safeParse(artifact.metadata);
  return metadata.success ? { step: artifact.step ?? 0, ...metadata.data } : null;
}

/** The snapshot shown for `step`: the last one at or before it (the first one if all are later). */
export function snapshotAt(snapshots: readonly PreviewMeta[], step: number): PreviewMeta | null {
  let chosen: PreviewMeta | null = null;
  for (const snapshot of snapshots) {
    if (snapshot.step <= step) chosen = snapshot;
    else break;
  }
  return chosen ?? snapshots[0] ?? null;
}

/**
 * Every preview snapshot of the runs on screen (the run page's step slider, the comparison's), kept
 * live from pushes; their images are read once each and cached as data URLs.
 */
export const usePreviewsStore = defineStore('previews', () => {
  /** Snapshots by run, in step order. */
  const byRun = shallowRef<Record<string, PreviewMeta[]>>({});
  const images = ref<Record<string, string>>({});
  const errors = ref<Record<string, string>>({});
  const pendingImages = new Map<string, Promise<void>>();

  function put(runId: string, list: PreviewMeta[]): void {
    byRun.value = { ...byRun.value, [runId]: list };
  }

  /** Per run: a later load's answer wins over an earlier one still on its way. */
  const loads = new Map<string, LatestOnly>();

  async function load(runId: string): Promise<void> {
    let tokens = loads.get(runId);
    if (!tokens) loads.set(runId, (tokens = latestOnly()));
    const token = tokens.begin();
    try {
      const artifacts = await api.call('runs.artifacts', { id: runId, kind: 'preview' });
      if (!token.current) return;
      const list = artifacts.flatMap((artifact) => {
        const meta = previewOf(artifact);
        return meta ? [meta] : [];
      });
      // One snapshot per step (a resumed run may write a step again: the newest wins).
      const byStep = new Map(list.map((meta) => [meta.step, meta]));
      put(
        runId,
        [...byStep.values()].sort((a, b) => a.step - b.step),
      );
      const { [runId]: _, ...rest } = errors.value;
      errors.value = rest;
    } catch (failure) {
      if (token.current) errors.value = { ...errors.value, [runId]: errorMessage(failure) };
    }
  }

  function imageKey(runId: string, file: string): string {
    return `${runId}\n${file}`;
  }

  /** The data URL of a preview strip, or undefined until it is read. */
  function image(runId: string, file: string | undefined): string | undefined {
    return file === undefined ? undefined : images.value[imageKey(runId, file)];
  }

  async function fetchImages(runId: string, snapshot: PreviewMeta): Promise<void> {
    await Promise.all(
      Object.values(snapshot.files).map((file) => {
        const key = imageKey(runId, file);
        if (images.value[key]) return Promise.resolve();
        let pending = pendingImages.get(key);
        if (!pending) {
          pending = api
            .call('files.read', { runId, path: file })
            .then((read) => {
              images.value = { ...images.value, [key]: `data:${read.mime};base64,${read.base64}` };
            })
            .catch((failure: unknown) => {
              errors.value = { ...errors.value, [runId]: `Could not read ${file}: ${errorMessage(failure)}` };
            })
            .finally(() => pendingImages.delete(key));
          pendingImages.set(key, pending);
        }
        return pending;
      }),
    );
  }

  function applyPush(message: PushMessage): void {
    if (message.type !== 'run-event') return;
    const list = byRun.value[message.runId];
    if (!list) return; // not on screen: loaded when it is
    const { event } = message;
    if (event.type === 'started') {
      // A restart: the store dropped an earlier attempt's later snapshots; their files will be rewritten.
      const keep = lastKeptStep(event);
      const dropped = list.filter((snapshot) => snapshot.step > keep);
      if (dropped.length === 0) return;
      const stale = new Set(
        dropped.flatMap((snapshot) => Object.values(snapshot.files).map((f) => imageKey(message.runId, f))),
      );
      images.value = Object.fromEntries(Object.entries(images.value).filter(([key]) => !stale.has(key)));
      put(
        message.runId,
        list.filter((snapshot) => snapshot.step <= keep),
      );
      return;
    }
    if (event.type !== 'preview') return;
    const meta: PreviewMeta = {
      step: event.step,
      epoch: event.epoch,
      count: event.count,
      imageSize: event.imageSize,
      perturbationScale: event.perturbationScale,
      files: event.files,
    };
    put(
      message.runId,
      [...list.filter((other) => other.step !== meta.step), meta].sort((a, b) => a.step - b.step),
    );
  }

  return { byRun, images, errors, load, image, fetchImages, applyPush };
});
