/**
 * Lets a plain `node` child process import the project's TypeScript sources: Node 24 strips the types
 * itself; this hook adds what its ESM resolver lacks, the `.ts` (or `/index.ts`) of the project's
 * extensionless relative imports. Use as `node --import ./test/store/ts-hooks.mjs child.ts`.
 */
import { registerHooks } from 'node:module';

registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context);
    } catch (error) {
      const relative = specifier.startsWith('./') || specifier.startsWith('../');
      if (!relative || !context.parentURL?.endsWith('.ts')) throw error;
      for (const suffix of ['.ts', '/index.ts']) {
        try {
          return nextResolve(specifier + suffix, context);
        } catch {
          // try the next form
        }
      }
      throw error;
    }
  },
});
