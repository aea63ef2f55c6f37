import { InvalidArgumentError, Option } from 'commander';
import { z } from 'zod';
import { describeIssues } from '@shared/config-object';
import type { FailedEvent } from '@shared/run-events';
import { BACKEND_NAMES } from '@shared/system';
import { errorMessage } from '@shared/unknown-value';
import { writeFileAtomic } from '@engine/io/atomic-file';

/** The --backend option every command that runs tensor work takes. */
export const backendOption = (): Option =>
  new Option('--backend <name>', 'force a TensorFlow.js backend (or set MIMIR_BACKEND)').choices(BACKEND_NAMES);

/**
 * Report a failure the way the command's output mode expects and exit non-zero: with --json, one
 * `failed` run event on stdout (no step, no checkpoint); otherwise `mimir: message` on stderr.
 */
export function fail(error: unknown, json: boolean): never {
  // A zod error's own message is its issues as JSON: say them in one line instead.
  const message = error instanceof z.ZodError ? describeIssues(error, '(input)') : errorMessage(error);
  if (json) {
    const event: FailedEvent = { type: 'failed', message, step: null, lastCheckpoint: null };
    process.stdout.write(`${JSON.stringify(event)}\n`);
  } else process.stderr.write(`mimir: ${message}\n`);
  process.exit(1);
}

/**
 * A command's action: `body` gets the parsed options and whether --json was given, and any error it
 * throws is reported by fail() in that output mode (no --json option: text).
 */
export function commandAction<O extends object>(
  body: (options: O, json: boolean) => Promise<void>,
): (options: O) => Promise<void> {
  return async (options) => {
    const json = 'json' in options && options.json === true;
    try {
      await body(options, json);
    } catch (error) {
      fail(error, json);
    }
  };
}

/** A command's text output: to the --out file (written atomically) when given, else to stdout. */
export async function writeOutput(out: string | undefined, text: string): Promise<void> {
  if (out) await writeFileAtomic(out, text);
  else process.stdout.write(text);
}

/** commander parser for a whole number >= 0 (`--epochs 3`). */
export function positiveInt(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 0)
    throw new InvalidArgumentError(`expected a whole number, got "${value}"`);
  return number;
}

/** commander parser for a number > 0 (`--eps 8`, `--eps 127.5`). */
export function positiveNumber(value: string): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) throw new InvalidArgumentError(`expected a number > 0, got "${value}"`);
  return number;
}

export { defaultHome } from '@engine/io/home';
