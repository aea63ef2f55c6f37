import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// No hand-written source file over 600 lines: a room that grows past it is split (issue 15).
const MAX_LINES = 600;
const root = join(import.meta.dirname, '..', '..');
const SOURCE = /\.(ts|mts|vue|py|c|mjs)$/;

/** Generated files and data tables, which nobody edits by hand (named, not matched by pattern). */
const GENERATED = new Set([
  // The wasm kernels, built from kernels.c by scripts/build-kernels.sh.
  'src/engine/kernels/kernels-wasm.ts',
]);

function sourceFiles(folder: string): string[] {
  return readdirSync(join(root, folder), { withFileTypes: true }).flatMap((entry) => {
    const path = `${folder}/${entry.name}`;
    if (entry.isDirectory()) return entry.name === '__pycache__' ? [] : sourceFiles(path);
    return entry.isFile() && SOURCE.test(entry.name) ? [path] : [];
  });
}

function lineCount(path: string): number {
  const text = readFileSync(join(root, path), 'utf8');
  return text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
}

describe('source file size', () => {
  const files = ['src', 'python', 'scripts', 'eslint'].flatMap(sourceFiles);

  it(`finds the hand-written sources (src, python, scripts, eslint)`, () => {
    expect(files).toContain('src/renderer/src/App.vue');
    expect(files).toContain('python/mimir_torch/model.py');
    for (const path of GENERATED) expect(files, `${path} is listed as generated but does not exist`).toContain(path);
  });

  it(`has no hand-written source file over ${MAX_LINES} lines`, () => {
    const over = files
      .filter((path) => !GENERATED.has(path))
      .map((path) => ({ path, lines: lineCount(path) }))
      .filter(({ lines }) => lines > MAX_LINES)
      .map(({ path, lines }) => `${path}: ${lines} lines (split it into modules of at most ${MAX_LINES})`);
    expect(over).toEqual([]);
  });
});
