import { stat } from 'node:fs/promises';
import path from 'node:path';

/** model.safetensors -> model.json beside it. */
export function configPathFor(file: string): string {
  const base = file.endsWith('.safetensors') ? file.slice(0, -'.safetensors'.length) : file;
  return `${base}.json`;
}

/** The files an export to `file` writes (the weights and the config JSON beside them) that exist already. */
export async function existingExportFiles(file: string): Promise<string[]> {
  const targets = [file, configPathFor(file)];
  const found = await Promise.all(
    targets.map((f) =>
      stat(f).then(
        () => true,
        () => false,
      ),
    ),
  );
  return targets.filter((_, i) => found[i]);
}

/** Refuse to replace any file an export to `file` would write, unless told to overwrite. */
export async function checkExportTargets(file: string, overwrite: boolean): Promise<void> {
  const existing = await existingExportFiles(file);
  if (existing.length === 0 || overwrite) return;
  throw new Error(
    `${existing.map((f) => `${f} exists`).join('; ')}: an export writes ${path.basename(file)} and ` +
      `${path.basename(configPathFor(file))} beside it. Choose another file name, or allow overwriting ` +
      `to replace ${existing.length > 1 ? 'them' : 'it'}.`,
  );
}
