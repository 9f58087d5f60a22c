import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ProcessEnricher } from '../../../src/enrich/enricher';
import { ProcReader } from '../../../src/host/proc-reader';
import type { LoadEvent } from '../../../src/types';
import { fixtureProc } from './fixtures';

test('enricher caches per pid, forgets on exit, absolutizes relative paths', () => {
  const { root, proc, passwd } = fixtureProc();
  const reader = new ProcReader(proc, passwd);
  const e = new ProcessEnricher(reader);
  const ev: LoadEvent = { timestampNs: 1n, pid: 1234, tid: 1234, comm: 'python3', method: 'dlopen', result: 'ok', probe: 'p', path: 'lib/libplug.so', requestedName: 'lib/libplug.so' };
  const out = e.enrich(e.completePath(ev).event);
  assert.equal(out.event.path, path.join(root, 'lib', 'libplug.so'));
  assert.equal(out.process?.serviceName, 'checkout');
  assert.equal(e.size, 1);
  e.forget(1234);
  assert.equal(e.size, 0);
  const gone = e.enrich({ ...ev, pid: 4321, path: '/nonexistent/x.so' });
  assert.deepEqual(gone.missing, ['process', 'file.size', 'file.inode']);
  const facts = e.enrich({ ...ev, path: '/x.so', file: { dev: 1, ino: 2, size: 3 } });
  assert.deepEqual([facts.file?.inode, facts.file?.size], [2, 3], 'file facts come from path resolution');
  const rel = e.completePath({ ...ev, pid: 4321, path: 'rel/x.so' });
  assert.deepEqual(rel.missing, ['file.path.absolute']);
});

test('enricher falls back to /proc/<pid>/maps when l_name was unreadable', () => {
  const { proc, passwd } = fixtureProc();
  const e = new ProcessEnricher(new ProcReader(proc, passwd));
  const out = e.completePath({ timestampNs: 1n, pid: 1234, tid: 1234, comm: 'p', method: 'dlopen', result: 'ok', probe: 'p', requestedName: 'libz.so.1', unresolved: ['file.path'] });
  assert.equal(out.event.path, '/usr/lib/libz.so.1');
  assert.deepEqual(out.event.unresolved, []);
});


test('enricher: a pid /proc did not show is not looked up again until it starts a new process', () => {
  const { proc, passwd } = fixtureProc();
  let reads = 0;
  const reader = new ProcReader(proc, passwd);
  const read = reader.readProcess.bind(reader);
  reader.readProcess = (pid) => {
    reads++;
    return read(pid);
  };
  const e = new ProcessEnricher(reader);
  const ev: LoadEvent = { timestampNs: 1n, pid: 1234, tid: 1234, comm: 'p', method: 'needed', result: 'ok', probe: 'p', path: '/x.so', file: { dev: 1, ino: 2, size: 3 } };
  const p1234 = path.join(proc, '1234');
  const p4321 = path.join(proc, '4321');
  fs.renameSync(p1234, p4321); // 1234 exits; 4321 is alive
  assert.deepEqual(e.enrich(ev, [], 1000).missing, ['process']);
  fs.renameSync(p4321, p1234); // the pid is reused by a new process: its fork tells the enricher
  assert.deepEqual(e.enrich(ev, [], 1001).missing, ['process'], 'still gone as far as soload knows');
  assert.equal(reads, 1);
  e.onStart(1234);
  assert.equal(e.enrich(ev, [], 1002).process?.commandLine, 'python3 -m http.server');
  assert.equal(reads, 2);
  // without fork/exec events (no sched tracepoints), a negative answer expires like a cached one
  assert.deepEqual(e.enrich({ ...ev, pid: 4321 }, [], 2000).missing, ['process']);
  fs.renameSync(p1234, p4321);
  assert.deepEqual(e.enrich({ ...ev, pid: 4321 }, [], 3000).missing, ['process'], 'within revalidateMs');
  assert.equal(e.enrich({ ...ev, pid: 4321 }, [], 2000 + 5000).process?.pid, 4321, 'after revalidateMs');
});

test('enricher: after exit the facts stay, without checks against /proc, until the pid is reused', () => {
  const { proc, passwd } = fixtureProc();
  const reader = new ProcReader(proc, passwd);
  let checks = 0;
  const ticks = reader.startTicks.bind(reader);
  reader.startTicks = (pid) => {
    checks++;
    return ticks(pid);
  };
  const e = new ProcessEnricher(reader, { revalidateMs: 10 });
  const ev: LoadEvent = { timestampNs: 1n, pid: 1234, tid: 1234, comm: 'p', method: 'needed', result: 'ok', probe: 'p', path: '/x.so', file: { dev: 1, ino: 2, size: 3 } };
  assert.equal(e.enrich(ev, [], 0).process?.exeName, 'python3.11');
  e.onExit(1234);
  fs.rmSync(path.join(proc, '1234'), { recursive: true });
  assert.equal(e.enrich(ev, [], 1000).process?.exeName, 'python3.11', 'the exited process keeps its facts');
  assert.equal(e.enrich(ev, [], 2000).process?.exeName, 'python3.11');
  assert.equal(checks, 0);
  e.onStart(1234);
  assert.equal(e.enrich(ev, [], 3000).process, undefined, 'a new process under the pid is read afresh');
});

test('enricher: facts of an exited process are released by the sweep after the grace period, "gone" marks after revalidateMs', () => {
  const { proc, passwd } = fixtureProc();
  const e = new ProcessEnricher(new ProcReader(proc, passwd), { revalidateMs: 100 });
  const ev: LoadEvent = { timestampNs: 1n, pid: 1234, tid: 1234, comm: 'p', method: 'needed', result: 'ok', probe: 'p', path: '/x.so', file: { dev: 1, ino: 2, size: 3 } };
  e.enrich(ev, [], 0);
  e.enrich({ ...ev, pid: 999999 }, [], 0); // not in /proc
  assert.deepEqual(e.sizes(), { processInfo: 1, processGone: 1 });
  e.onExit(1234, 1000);
  e.sweep(500, 1400);
  assert.deepEqual(e.sizes(), { processInfo: 1, processGone: 0 }, 'within the grace period');
  e.sweep(500, 1501);
  assert.deepEqual(e.sizes(), { processInfo: 0, processGone: 0 });
  // a live process is never swept
  e.enrich(ev, [], 2000);
  e.sweep(0, 1_000_000);
  assert.equal(e.sizes().processInfo, 1);
});
