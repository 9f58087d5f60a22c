import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseProbeListing } from '../../../src/tracefs/probe-line';
import { findStaleState, probeCapabilities } from '../../../src/tracefs/session';

test('findStaleState picks only dead soload_<pid> groups and instances', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-tfs-'));
  fs.writeFileSync(
    path.join(root, 'uprobe_events'),
    ['p:soload_100/dlopen_entry /lib/libc.so.6:0x1', 'r:soload_100/dlopen_return /lib/libc.so.6:0x1', 'p:soload_200/dlopen_entry /lib/libc.so.6:0x1', 'p:soloadx_300/e /l:0x1', 'p:other/soload_400 /l:0x1', 'p:uprobes/p_bash_0x1 /bin/bash:0x1', ''].join('\n'),
  );
  fs.mkdirSync(path.join(root, 'instances', 'soload_100'), { recursive: true });
  fs.mkdirSync(path.join(root, 'instances', 'soload_200'));
  fs.mkdirSync(path.join(root, 'instances', 'soload_foo'));
  fs.mkdirSync(path.join(root, 'instances', 'perf_soload_100'));
  const alive = new Set([200]);
  const stale = findStaleState(root, 'soload', 'soload', (pid) => alive.has(pid));
  assert.deepEqual(stale, { groups: ['soload_100'], instances: ['soload_100'] });
  assert.equal(parseProbeListing(fs.readFileSync(path.join(root, 'uprobe_events'), 'utf8')).length, 6);
});

test('probeCapabilities reads a tracefs tree (kprobes optional, README features)', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-caps-'));
  fs.writeFileSync(path.join(root, 'uprobe_events'), '');
  fs.mkdirSync(path.join(root, 'instances'));
  fs.writeFileSync(path.join(root, 'trace_clock'), '[local] global mono boot\n');
  fs.writeFileSync(path.join(root, 'README'), 'place (uprobe): <path>:<offset>[%return]\n fetcharg: (%<register>|$<efield>), @<address>, $comm\n type: ustring\n');
  const caps = probeCapabilities(root);
  assert.equal(caps.uprobes, true);
  assert.equal(caps.kprobes, false);
  assert.equal(caps.returnProbes, true);
  assert.equal(caps.ustring, true);
  assert.equal(caps.fileOffsetFetch, true);
  assert.equal(caps.comm, true);
  assert.deepEqual(caps.traceClocks, ['local', 'global', 'mono', 'boot']);
  assert.equal(probeCapabilities(undefined).uprobes, false);
});
