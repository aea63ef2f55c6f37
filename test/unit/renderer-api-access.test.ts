import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Components and views reach the API through Pinia stores or the composables of api/use-api.ts and
 * api/requests.ts (whose loads go through useQuery), never through the client itself.
 */
const RENDERER = path.join(import.meta.dirname, '../../src/renderer/src');

function vueFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return vueFiles(full);
    return entry.name.endsWith('.vue') ? [full] : [];
  });
}

describe('renderer API access', () => {
  it('no component or view imports the API client or calls it', () => {
    const files = vueFiles(RENDERER);
    expect(files.length).toBeGreaterThan(40);
    const offenders = files.flatMap((file) => {
      const source = readFileSync(file, 'utf8');
      const importsClient = /import\s*\{[^}]*\bapi\b[^}]*\}\s*from\s*'[./]*api\/client'/.test(source);
      const calls = /\bapi\.(call|onPush)\(/.test(source);
      return importsClient || calls ? [path.relative(RENDERER, file)] : [];
    });
    expect(offenders).toEqual([]);
  });
});
