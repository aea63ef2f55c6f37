import { readFileSync } from 'node:fs';
import { errorMessage } from '@shared/unknown-value';

/** The JSON object of a `--config` file, or an error that says what is wrong with the file. */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`--config ${file}: cannot read it (${errorMessage(error)}).`, {
      cause: error,
    });
  }
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object');
    return value as Record<string, unknown>;
  } catch (error) {
    throw new Error(`--config ${file} is not a JSON object: ${errorMessage(error)}.`, { cause: error });
  }
}
