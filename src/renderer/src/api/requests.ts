import type { ApiOutput } from '@shared/api';
import type { RunFigures } from '@shared/run-query';
import type { Run } from '@shared/store-types';
import type { Sweep } from '@shared/sweep';
import { api } from './client';

/**
 * Loads that take more than one API call, for views to pass to useQuery (one-call loads use
 * useApiQuery in use-api.ts). Components never import the client.
 */

export interface SweepPage {
  sweep: Sweep;
  runs: Run[];
  figures: Record<string, RunFigures | null>;
}

/** A sweep, its runs and their final figures. */
export async function fetchSweepPage(experimentId: number): Promise<SweepPage> {
  const { sweep, runs } = await api.call('sweeps.get', { experimentId });
  const figures = await api.call('runs.figures', { ids: runs.map((run) => run.id) });
  return { sweep, runs, figures };
}

/** A file of a run's folder as a data: URL (an image to show). */
export async function runFileDataUrl(runId: string, path: string): Promise<string> {
  const read: ApiOutput<'files.read'> = await api.call('files.read', { runId, path });
  return `data:${read.mime};base64,${read.base64}`;
}

/** A text file of a run's folder (UTF-8). */
export async function runFileText(runId: string, path: string): Promise<string> {
  const read = await api.call('files.read', { runId, path });
  return new TextDecoder().decode(Uint8Array.from(atob(read.base64), (c) => c.charCodeAt(0)));
}
