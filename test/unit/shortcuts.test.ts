import { describe, expect, it } from 'vitest';
import { shortcutFor, type KeyLike } from '../../src/renderer/src/shortcuts';

const key = (k: string, extra: Partial<KeyLike> = {}): KeyLike => ({
  key: k,
  ctrlKey: false,
  metaKey: false,
  altKey: false,
  target: { tagName: 'BODY' },
  ...extra,
});

describe('keyboard shortcuts', () => {
  it('/ searches, n starts a new run, ? lists the shortcuts', () => {
    expect([shortcutFor(key('/')), shortcutFor(key('n')), shortcutFor(key('?')), shortcutFor(key('x'))]).toEqual([
      'search',
      'new-run',
      'help',
      null,
    ]);
  });

  it('leaves keys typed into a field or with a modifier alone', () => {
    expect(shortcutFor(key('n', { target: { tagName: 'INPUT' } }))).toBeNull();
    expect(shortcutFor(key('/', { target: { tagName: 'TEXTAREA' } }))).toBeNull();
    expect(shortcutFor(key('n', { target: { tagName: 'DIV', isContentEditable: true } }))).toBeNull();
    expect(shortcutFor(key('n', { ctrlKey: true }))).toBeNull();
    expect(shortcutFor(key('n', { metaKey: true }))).toBeNull();
  });
});
