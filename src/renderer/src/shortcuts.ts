/**
 * Keyboard shortcuts, as web apps of the kind have them: `/` search runs, `n` new run, `?` this list.
 * Keys typed into a field, or with Ctrl, Alt or Meta, are left alone.
 */
export type ShortcutAction = 'search' | 'new-run' | 'help';

export const SHORTCUTS: { key: string; action: ShortcutAction; label: string }[] = [
  { key: '/', action: 'search', label: 'Search and filter runs' },
  { key: 'n', action: 'new-run', label: 'New run' },
  { key: '?', action: 'help', label: 'Show these shortcuts' },
];

export interface KeyLike {
  key: string;
  ctrlKey: boolean;
  metaKey: boolean;
  altKey: boolean;
  target: { tagName?: string; isContentEditable?: boolean } | null;
}

const TYPING = new Set(['INPUT', 'TEXTAREA', 'SELECT']);

export function shortcutFor(event: KeyLike): ShortcutAction | null {
  if (event.ctrlKey || event.metaKey || event.altKey) return null;
  const target = event.target;
  if (target && (TYPING.has(target.tagName ?? '') || target.isContentEditable === true)) return null;
  return SHORTCUTS.find((shortcut) => shortcut.key === event.key)?.action ?? null;
}
