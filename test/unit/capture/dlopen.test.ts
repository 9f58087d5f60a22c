import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DlopenCorrelator } from '../../../src/capture/dlopen';
import type { TraceRecord } from '../../../src/types';

let ts = 1_000_000_000n;
function rec(event: string, tid: number, fields: Record<string, string | null>, tgid = tid): TraceRecord {
  ts += 1000n;
  return { comm: 'app', tid, tgid, cpu: 0, timestampNs: ts, event, location: '0x0', fields };
}

test('entry + return on one thread make one ok load with requested name and resolved path', () => {
  const c = new DlopenCorrelator();
  c.onEntry(rec('dlopen_entry', 10, { name: 'libplug.so', flags: '0x2', comm: 'app' }));
  const ev = c.onReturn(rec('dlopen_return', 10, { handle: '0x5555', path: '/opt/x/libplug.so', libname: 'libplug.so', comm: 'app' }), 'dlopen_return');
  assert.deepEqual(
    { ...ev, timestampNs: undefined },
    { timestampNs: undefined, pid: 10, tid: 10, comm: 'app', method: 'dlopen', result: 'ok', probe: 'dlopen_return', path: '/opt/x/libplug.so', requestedName: 'libplug.so', flags: 2 },
  );
  assert.equal(c.inFlight, 0);
});

test('failed dlopen: result failed, no path, name from entry', () => {
  const c = new DlopenCorrelator();
  c.onEntry(rec('e', 7, { name: 'nothere.so', flags: '0x1' }));
  const ev = c.onReturn(rec('r', 7, { handle: '0x0', path: null, libname: null }), 'r')!;
  assert.equal(ev.result, 'failed');
  assert.equal(ev.path, undefined);
  assert.equal(ev.requestedName, 'nothere.so');
  assert.equal(ev.unresolved, undefined);
});

test('(fault) at entry: the name is recovered from l_libname at return; never "(fault)"', () => {
  const c = new DlopenCorrelator();
  c.onEntry(rec('e', 7, { name: null, flags: '0x2' }));
  const ev = c.onReturn(rec('r', 7, { handle: '0x1234', path: '/usr/lib/libz.so.1', libname: 'libz.so.1' }), 'r')!;
  assert.equal(ev.requestedName, 'libz.so.1');
  assert.equal(c.stats.nameRecovered, 1);
  c.onEntry(rec('e', 7, { name: null, flags: '0x2' }));
  const failed = c.onReturn(rec('r', 7, { handle: '0x0', path: null, libname: null }), 'r')!;
  assert.equal(failed.requestedName, undefined);
  assert.deepEqual(failed.unresolved, ['soload.requested_name']);
  assert.equal(c.stats.nameUnresolved, 1);
  assert.ok(!JSON.stringify([ev, failed], (_k, v) => (typeof v === 'bigint' ? String(v) : v)).includes('(fault)'));
});

test('ok handle with unreadable l_name is flagged, not invented', () => {
  const c = new DlopenCorrelator();
  c.onEntry(rec('e', 3, { name: 'libq.so' }));
  const ev = c.onReturn(rec('r', 3, { handle: '0x99', path: null, libname: null }), 'r')!;
  assert.equal(ev.result, 'ok');
  assert.equal(ev.path, undefined);
  assert.deepEqual(ev.unresolved, ['file.path']);
});

test('nested dlopen from a constructor pairs LIFO; threads do not mix', () => {
  const c = new DlopenCorrelator();
  c.onEntry(rec('e', 1, { name: 'outer.so' }));
  c.onEntry(rec('e', 2, { name: 'other-thread.so' }));
  c.onEntry(rec('e', 1, { name: 'inner.so' }));
  assert.equal(c.onReturn(rec('r', 1, { handle: '0x1', path: '/l/inner.so' }), 'r')!.requestedName, 'inner.so');
  assert.equal(c.onReturn(rec('r', 2, { handle: '0x2', path: '/l/other.so' }), 'r')!.requestedName, 'other-thread.so');
  assert.equal(c.onReturn(rec('r', 1, { handle: '0x3', path: '/l/outer.so' }), 'r')!.requestedName, 'outer.so');
});

test('pid is the thread group id when the trace carries it', () => {
  const c = new DlopenCorrelator();
  c.onEntry(rec('e', 101, { name: 'a.so' }, 100));
  const ev = c.onReturn(rec('r', 101, { handle: '0x1', path: '/a.so' }, 100), 'r')!;
  assert.equal(ev.pid, 100);
  assert.equal(ev.tid, 101);
});

test('dlopen(NULL) is not a load', () => {
  const c = new DlopenCorrelator();
  c.onEntry(rec('e', 5, { name: null, flags: '0x1' }));
  assert.equal(c.onReturn(rec('r', 5, { handle: '0x7f00', path: '', libname: '' }), 'r'), undefined);
  assert.equal(c.stats.selfHandles, 1);
});

test('orphan returns are counted; stale entries expire; exits forget threads', () => {
  const c = new DlopenCorrelator(1);
  const ev = c.onReturn(rec('r', 9, { handle: '0x1', path: '/x.so', libname: 'x.so' }), 'r')!;
  assert.equal(c.stats.orphanReturns, 1);
  assert.equal(ev.requestedName, 'x.so');
  c.onEntry(rec('e', 11, { name: 'slow.so' }));
  c.expire(ts + 10_000_000n);
  assert.equal(c.inFlight, 0);
  assert.equal(c.stats.expiredEntries, 1);
  c.onEntry(rec('e', 12, { name: 'dies.so' }));
  c.forgetProcess(12);
  assert.equal(c.inFlight, 0);
  assert.equal(c.stats.expiredEntries, 2);
});

test('calls that never return come back from exit, thread death and age, each once', () => {
  const c = new DlopenCorrelator(1);
  c.onEntry(rec('e', 21, { name: 'a.so' }, 20));
  c.onEntry(rec('e', 22, { name: 'b.so' }, 20));
  c.onEntry(rec('e', 31, { name: 'c.so' }, 30));
  assert.deepEqual({ threads: c.inFlight, processes: c.processes }, { threads: 3, processes: 2 });
  // thread 22 died while process 20 lives on
  assert.deepEqual(c.forgetThread(22).map((p) => [p.pid, p.tid, p.name, p.probe]), [[20, 22, 'b.so', 'e']]);
  assert.deepEqual(c.forgetThread(22), []);
  // process 20 exits: its other thread's call
  assert.deepEqual(c.forgetProcess(20).map((p) => p.name), ['a.so']);
  assert.equal(c.processes, 1);
  // age: 1 ms
  const young = c.expire(ts);
  assert.deepEqual(young, []);
  assert.deepEqual(c.expire(ts + 2_000_000n).map((p) => p.name), ['c.so']);
  assert.deepEqual({ threads: c.inFlight, processes: c.processes, expired: c.stats.expiredEntries }, { threads: 0, processes: 0, expired: 3 });
});

test('thread bound: past it the oldest thread is dropped; one thread keeps at most 64 calls', () => {
  const c = new DlopenCorrelator(60_000, 3);
  for (const tid of [1, 2, 3, 4]) c.onEntry(rec('e', tid, { name: `t${tid}.so` }));
  assert.equal(c.inFlight, 3);
  assert.equal(c.peek(1), undefined);
  assert.equal(c.peek(4)?.name, 't4.so');
  assert.equal(c.processes, 3, 'the dropped thread leaves the per-process index too');
  assert.equal(c.stats.expiredEntries, 1);
  for (let i = 0; i < 70; i++) c.onEntry(rec('e', 9, { name: `n${i}.so` }));
  assert.equal(c.forgetThread(9).length, 64);
  assert.equal(c.forgetProcess(9).length, 0);
});
