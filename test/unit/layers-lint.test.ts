import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';
import { ALIASES } from '../../eslint/layers.mjs';

// The import rules of docs/architecture.md are the ESLint rule `mimir/layers` (eslint/layers-rule.mjs),
// run by `npm run lint`. These tests lint through eslint.config.js itself, as `npm run lint` does.
const root = join(import.meta.dirname, '..', '..');
const LAYERS_RULE = 'mimir/layers';

function layersLinter(): ESLint {
  return new ESLint({ cwd: root, ruleFilter: ({ ruleId }) => ruleId === LAYERS_RULE });
}

/** The layer rule's messages for `code` placed at `filePath` (the file need not exist). */
async function layerErrors(filePath: string, code: string): Promise<string[]> {
  const [result] = await layersLinter().lintText(code, { filePath: join(root, filePath) });
  if (result === undefined) throw new Error(`ESLint returned no result for ${filePath}`);
  const fatal = result.messages.filter((message) => message.fatal);
  if (fatal.length > 0) throw new Error(`${filePath} did not parse: ${fatal[0]?.message}`);
  return result.messages.filter((message) => message.ruleId === LAYERS_RULE).map((message) => message.message);
}

describe('the layers lint rule', () => {
  it('fails a renderer file that imports src/engine or src/store, by relative path or alias', async () => {
    const errors = await layerErrors(
      'src/renderer/src/views/LayersFixture.ts',
      [
        "import { selectBackend } from '../../../engine/backend';",
        "import { RunStore } from '../../../store/run-store';",
        "import { evaluate } from '@engine/evaluate';",
        "import { ApiRequest } from '../../../shared/api';",
        "import { pathKey } from '@shared/paths';",
        "import { ref } from 'vue';",
        'export const all = [selectBackend, RunStore, evaluate, ApiRequest, pathKey, ref];',
      ].join('\n'),
    );
    expect(errors).toHaveLength(3);
    expect(errors[0]).toContain("src/renderer may not import src/engine ('../../../engine/backend')");
    expect(errors[0]).toContain('src/renderer may import src/shared');
    expect(errors[1]).toContain("src/renderer may not import src/store ('../../../store/run-store')");
    expect(errors[2]).toContain("src/renderer may not import src/engine ('@engine/evaluate')");
  });

  it('fails a renderer .vue component that imports src/store', async () => {
    const errors = await layerErrors(
      'src/renderer/src/components/form/LayersFixture.vue',
      [
        '<script setup lang="ts">',
        "import { RunStore } from '../../../../store/run-store';",
        'const store = RunStore;',
        '</script>',
        '<template><p>{{ store }}</p></template>',
      ].join('\n'),
    );
    expect(errors).toEqual([expect.stringContaining('src/renderer may not import src/store')]);
  });

  it('fails an engine file that imports src/store, statically, dynamically or by re-export', async () => {
    const errors = await layerErrors(
      'src/engine/pretrain/layers-fixture.ts',
      [
        "import { RunStore } from '../../store/run-store';",
        "export { openDatabase } from '@store/database';",
        "export const load = () => import('../../store/sweeps');",
        "import { Rng } from '../rng';",
        "import { PretrainConfig } from '../../shared/pretrain-config';",
        'export const used = [RunStore, Rng, PretrainConfig];',
      ].join('\n'),
    );
    expect(errors).toHaveLength(3);
    for (const error of errors) expect(error).toContain('src/engine may not import src/store');
  });

  it('fails src/shared importing another layer or a Node module, and src/store importing the engine', async () => {
    const shared = await layerErrors(
      'src/shared/layers-fixture.ts',
      "import { readFile } from 'node:fs/promises';\nimport { Rng } from '../engine/rng';\nexport const used = [readFile, Rng];",
    );
    expect(shared).toEqual([
      expect.stringContaining("may not import the Node module 'node:fs/promises'"),
      expect.stringContaining('src/shared may not import src/engine'),
    ]);
    const store = await layerErrors(
      'src/store/layers-fixture.ts',
      "import { Rng } from '@engine/rng';\nexport const used = Rng;",
    );
    expect(store).toEqual([expect.stringContaining('src/store may not import src/engine')]);
  });

  it('passes the CLI importing the engine (it runs the engine in its own process)', async () => {
    const errors = await layerErrors(
      'src/cli/commands/layers-fixture.ts',
      "import { evaluate } from '../../engine/evaluate';\nexport const used = evaluate;",
    );
    expect(errors).toEqual([]);
  });

  it("finds no layer violation in the repository's src/", async () => {
    const results = await layersLinter().lintFiles(['src']);
    expect(results.length).toBeGreaterThan(200);
    const violations = results.flatMap((result) =>
      result.messages.map((message) => `${result.filePath}:${message.line} ${message.message}`),
    );
    expect(violations).toEqual([]);
  });

  it('has the same aliases in tsconfig.base.json as in eslint/layers.mjs', () => {
    const tsconfig = JSON.parse(readFileSync(join(root, 'tsconfig.base.json'), 'utf8')) as {
      compilerOptions: { paths: Record<string, string[]> };
    };
    const expected = Object.fromEntries(
      Object.entries(ALIASES).map(([alias, folder]) => [`${alias}/*`, [`./${folder}/*`]]),
    );
    expect(tsconfig.compilerOptions.paths).toEqual(expected);
  });

  it('refuses an inline copy of errorMessage anywhere in src/, formerly exempt files included', async () => {
    const linter = new ESLint({ cwd: root, ruleFilter: ({ ruleId }) => ruleId === 'no-restricted-syntax' });
    const code =
      'export const text = (error: unknown): string => (error instanceof Error ? error.message : String(error));\n';
    // src/store/database.ts was on the exemption list until its copies were folded.
    for (const filePath of ['src/cli/error-copy-fixture.ts', 'src/store/database.ts']) {
      const [result] = await linter.lintText(code, { filePath: join(root, filePath) });
      expect(result?.messages.map((message) => message.message)).toEqual([
        expect.stringContaining("Use errorMessage(error) from '@shared/unknown-value'"),
      ]);
    }
  });
});
