import { readFileSync } from 'node:fs';
import { errorMessage } from '@shared/unknown-value';

/** The text of the file `flag` names, or an error that says which flag's file cannot be read and why. */
export function readFlagFile(flag: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`${flag} ${file}: cannot read it (${errorMessage(error)}).`, { cause: error });
  }
}

/** The JSON object of a `--config` file, or an error that says what is wrong with the file. */
export function readConfigFile(file: string): Record<string, unknown> {
  const text = readFlagFile('--config', file);
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object');
    return value as Record<string, unknown>;
  } catch (error) {
    throw new Error(`--config ${file} is not a JSON object: ${errorMessage(error)}.`, { cause: error });
  }
}
