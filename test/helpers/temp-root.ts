import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * vitest globalSetup: every temporary folder the tests make (os.tmpdir()) goes under one root for
 * the run, removed at the end, so runs leave nothing in /tmp (child processes inherit TMPDIR too).
 */
export default function setup(): () => void {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mimir-tests-'));
  process.env.TMPDIR = root;
  return () => rmSync(root, { recursive: true, force: true });
}
