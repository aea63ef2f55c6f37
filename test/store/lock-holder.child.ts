/**
 * Child process of data-folder-lock.test.ts: takes a data folder's lock, prints "locked", then waits
 * (the test kills it, or it exits after a minute so that it never outlives a broken test).
 * Run as: node --import ./test/store/ts-hooks.mjs lock-holder.child.ts <data folder>
 */
import { writeSync } from 'node:fs';
import { lockDataFolder } from '../../src/store/data-folder-lock';

const [dataDir] = process.argv.slice(2);
if (dataDir === undefined) throw new Error('usage: lock-holder.child.ts <data folder>');
lockDataFolder(dataDir, 'lock-holder.child.ts');
writeSync(1, 'locked\n');
setTimeout(() => process.exit(0), 60_000);
