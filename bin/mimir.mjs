#!/usr/bin/env node
// The `mimir` command. Checks the Node version first, so an old Node gets a message, not a crash.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

await import('../scripts/check-node.mjs');
const cli = new URL('../out/main/cli.js', import.meta.url);
if (!existsSync(cli)) {
  console.error(
    `mimir: the command line is not built (${fileURLToPath(cli)} is missing); run \`npm run build\` in the project.`,
  );
  process.exit(1);
}
await import(cli.href);
