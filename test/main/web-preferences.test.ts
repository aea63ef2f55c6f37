import { describe, expect, it } from 'vitest';
import { secureWebPreferences } from '../../src/main/web-preferences';

describe('the Electron window', () => {
  it('runs its renderer sandboxed, context-isolated, without Node, with the built preload', () => {
    expect(secureWebPreferences('/app/out/main')).toEqual({
      preload: '/app/out/preload/index.cjs',
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
    });
  });
});
