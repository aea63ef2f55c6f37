/**
 * Lets a plain `node` child process import the project's TypeScript sources: Node 24 strips the types
 * itself; this hook adds what its ESM resolver lacks, the project's path aliases (`@shared/...`, the
 * table of eslint/layers.mjs) and the `.ts` (or `/index.ts`) of its extensionless imports. Use as
 * `node --import ./test/store/ts-hooks.mjs child.ts`.
 */
import { registerHooks } from 'node:module';
import { ALIASES } from '../../eslint/layers.mjs';

const root = new URL('../../', import.meta.url);

/** `@shared/x` as the file URL of src/shared/x; any other specifier as given. */
function unaliased(specifier) {
  for (const [alias, folder] of Object.entries(ALIASES)) {
    if (specifier.startsWith(`${alias}/`)) {
      return new URL(`${folder}/${specifier.slice(alias.length + 1)}`, root).href;
    }
  }
  return specifier;
}

registerHooks({
  resolve(specifier, context, nextResolve) {
    const target = unaliased(specifier);
    try {
      return nextResolve(target, context);
    } catch (error) {
      const local = target !== specifier || specifier.startsWith('./') || specifier.startsWith('../');
      if (!local || !context.parentURL?.endsWith('.ts')) throw error;
      for (const suffix of ['.ts', '/index.ts']) {
        try {
          return nextResolve(target + suffix, context);
        } catch {
          // try the next form
        }
      }
      throw error;
    }
  },
});
