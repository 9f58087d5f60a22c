import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanupStale } from '../../../src/agent/stale';
import { ProcReader } from '../../../src/host/proc-reader';

test('stale alias directories of dead soloads are removed; live ones and foreign names are kept', () => {
  const tracefs = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-tfs-'));
  fs.writeFileSync(path.join(tracefs, 'uprobe_events'), '');
  fs.mkdirSync(path.join(tracefs, 'instances'));
  const aliases = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-alias-'));
  const dead = 2 ** 22 + 17; // above pid_max: never a live process
  for (const d of [`soload_${dead}`, `soload_${process.pid}`, 'other_1']) fs.mkdirSync(path.join(aliases, d));
  const warnings: string[] = [];
  const log = { debug: () => undefined, info: () => undefined, warn: (m: string) => void warnings.push(m), error: () => undefined };
  cleanupStale({ root: tracefs, groupPrefix: 'soload', instancePrefix: 'soload', aliasRoot: aliases, selfPid: process.pid, proc: new ProcReader('/proc'), log });
  assert.deepEqual(fs.readdirSync(aliases).sort(), ['other_1', `soload_${process.pid}`]);
  assert.ok(warnings.some((w) => w.includes(`soload_${dead}`)), 'the next start says what it cleaned up');
});
