import { stat } from 'node:fs/promises';

/** True when something (a file or a folder) is at `p`. */
export async function pathExists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
