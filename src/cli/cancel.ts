// Ctrl-C in the commands that run the engine in the CLI's process: the engine stops at its next check,
// says what it kept, and the command ends with 130 (128 + SIGINT), as a shell expects of an interrupt.

/** A signal that Ctrl-C (SIGINT) aborts, for the engine call of one command. */
export function ctrlCSignal(): AbortSignal {
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  return controller.signal;
}

/** Ends a command that Ctrl-C stopped: `mimir: <what>` on stderr, exit status 130. */
export function exitInterrupted(what: string): never {
  process.stderr.write(`mimir: ${what}\n`);
  process.exit(130);
}
