import type { Run } from '@shared/store-types';

/** A run in a comparison, with the colour its lines, swatches and previews carry. */
export interface ComparedRun {
  run: Run;
  color: string;
}
