import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoaderTracker } from '../../../src/capture/loader';
import type { LoadEvent, TraceRecord } from '../../../src/types';

const LDSO = '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2';
let ts = 1n;
const rec = (event: string, pid: number, fields: Record<string, string | null>, tid = pid): TraceRecord => ({
  comm: 'main', tid, tgid: pid, cpu: 0, timestampNs: ts++, event, location: '', fields: { comm: 'main', ...fields },
});
const NEEDED: Record<string, string[]> = {
  '/opt/app/main': ['libplug2.so', 'libc.so.6'],
  '/lib/x86_64-linux-gnu/libc.so.6': ['ld-linux-x86-64.so.2'],
  '/tmp/exp/libpre.so': ['libpredep.so'],
  '/opt/plugins/libp.so': ['libdep.so.1'],
};
const tracker = (reportExecutable = true) => new LoaderTracker({ reportExecutable, neededOf: (_pid, f) => NEEDED[f] });
const brief = (evs: LoadEvent[]) => evs.map((e) => [e.method, e.path, e.requestedName, e.loadedBy].filter((x) => x !== undefined).join(' '));

/** The sequence glibc 2.36 produces for `LD_PRELOAD=/tmp/exp/libpre.so /opt/app/main` then dlopen("libp.so"). */
function replay(t: LoaderTracker, pid = 100): LoadEvent[] {
  const out: LoadEvent[] = [];
  t.onExec(pid, '/opt/app/main');
  out.push(...t.onAdd(rec('loader_add', pid, { path: '', req: '' }), LDSO));
  out.push(...t.onAdd(rec('loader_add', pid, { path: 'linux-vdso.so.1', req: 'linux-vdso.so.1' }), LDSO));
  out.push(...t.onState(rec('loader_state', pid, { state: '1' }), LDSO));
  for (const [path, req] of [
    ['/tmp/exp/libpre.so', '/tmp/exp/libpre.so'],
    ['/opt/app/lib/libplug2.so', 'libplug2.so'],
    ['/lib/x86_64-linux-gnu/libc.so.6', 'libc.so.6'],
    ['/opt/app/lib/libpredep.so', 'libpredep.so'],
  ]) out.push(...t.onAdd(rec('loader_add', pid, { path, req }), LDSO));
  out.push(...t.onState(rec('loader_state', pid, { state: '0' }), LDSO));
  t.onDlopenEntry(rec('dlopen_entry', pid, { name: 'libp.so', flags: '0x102' }));
  out.push(...t.onAdd(rec('loader_add', pid, { path: '/opt/plugins/libp.so', req: 'libp.so' }), LDSO));
  out.push(...t.onState(rec('loader_state', pid, { state: '1' }), LDSO));
  out.push(...t.onAdd(rec('loader_add', pid, { path: '/opt/plugins/libdep.so.1', req: 'libdep.so.1' }), LDSO));
  out.push(...t.onState(rec('loader_state', pid, { state: '0' }), LDSO));
  const r = t.onDlopenReturn(rec('dlopen_return', pid, { handle: '0x5555', path: '/opt/plugins/libp.so', libname: 'libp.so' }), 'dlopen_return');
  if (r) out.push(r);
  return out;
}

test('start-up objects, preload, interpreter, executable, then a dlopen batch with loaded_by', () => {
  const t = tracker();

  const evs = replay(t);
  assert.deepEqual(brief(evs), [
    'executable /opt/app/main',
    `interpreter ${LDSO}`,
    'preload /tmp/exp/libpre.so /tmp/exp/libpre.so',
    'needed /opt/app/lib/libplug2.so libplug2.so',
    'needed /lib/x86_64-linux-gnu/libc.so.6 libc.so.6',
    'needed /opt/app/lib/libpredep.so libpredep.so',
    'dlopen /opt/plugins/libp.so libp.so',
    'needed /opt/plugins/libdep.so.1 libdep.so.1 /opt/plugins/libp.so',
  ]);
  assert.equal(evs.find((e) => e.method === 'dlopen')!.flags, 0x102);
  assert.ok(evs.every((e) => e.pid === 100 && e.result === 'ok'));
  assert.equal(t.stats.vdso, 1);
});

test('executable is reported only when configured', () => {
  const evs = replay(tracker(false));
  assert.ok(!evs.some((e) => e.method === 'executable'));
});

test('dlopen of an already-loaded object reports nothing; a failed dlopen reports a failure', () => {
  const t = tracker();

  replay(t);
  t.onDlopenEntry(rec('dlopen_entry', 100, { name: 'libp.so', flags: '0x2' }));
  assert.equal(t.onDlopenReturn(rec('dlopen_return', 100, { handle: '0x5555', path: '/opt/plugins/libp.so', libname: 'libp.so' }), 'r'), undefined);
  assert.equal(t.stats.dlopenAlreadyLoaded, 1);
  t.onDlopenEntry(rec('dlopen_entry', 100, { name: 'nothere.so', flags: '0x2' }));
  const failed = t.onDlopenReturn(rec('dlopen_return', 100, { handle: '0x0', path: null, libname: null }), 'r')!;
  assert.equal(failed.result, 'failed');
  assert.equal(failed.requestedName, 'nothere.so');
});

test('without the loader probe, dlopen returns are the records (issue-2 behaviour)', () => {
  const t = new LoaderTracker({ mode: 'dlopen', reportExecutable: true, neededOf: (_pid, f) => NEEDED[f] });
  t.onDlopenEntry(rec('dlopen_entry', 7, { name: 'libq.so', flags: '0x1' }));
  const ev = t.onDlopenReturn(rec('dlopen_return', 7, { handle: '0x1', path: '/q/libq.so', libname: 'libq.so' }), 'r')!;
  assert.equal(ev.method, 'dlopen');
  assert.equal(ev.path, '/q/libq.so');
});

test('exec starts a process image fresh; exit forgets it; pre-existing processes only see batches', () => {
  const t = tracker();
  replay(t, 5);
  t.onExec(5, '/opt/app/main');
  const again = t.onAdd(rec('loader_add', 5, { path: '/lib/x86_64-linux-gnu/libc.so.6', req: 'libc.so.6' }), LDSO);
  assert.deepEqual(brief(again), [`interpreter ${LDSO}`, 'needed /lib/x86_64-linux-gnu/libc.so.6 libc.so.6']);
  t.onExit(5);
  assert.equal(t.tracked, 0);
  // A process soload never saw start: its next load is a dlopen batch.
  const old = t.onAdd(rec('loader_add', 9, { path: '/x/libnss_sss.so.2', req: 'libnss_sss.so.2' }), LDSO);
  assert.deepEqual(brief(old), ['dlopen /x/libnss_sss.so.2 libnss_sss.so.2']);
});

test('unknown executable: bare names count as needed, slashed names as preload', () => {
  const t = new LoaderTracker({ reportExecutable: false, neededOf: () => undefined });
  t.onExec(1, './rel');
  t.onAdd(rec('loader_add', 1, { path: '', req: '' }), LDSO);
  const evs = [
    ...t.onAdd(rec('loader_add', 1, { path: '/p/libpre.so', req: '/p/libpre.so' }), LDSO),
    ...t.onAdd(rec('loader_add', 1, { path: '/lib/libz.so.1', req: 'libz.so.1' }), LDSO),
  ];
  assert.deepEqual(brief(evs), [`interpreter ${LDSO}`, 'preload /p/libpre.so /p/libpre.so', 'needed /lib/libz.so.1 libz.so.1']);
});

test('defect 4: a dlopen inside a dlopen (constructor) keeps each call its own flags and add count', () => {
  const t = tracker();
  t.onExec(300, '/opt/app/main');
  t.onAdd(rec('loader_add', 300, { path: '', req: '' }), LDSO);
  t.onState(rec('loader_state', 300, { state: '0' }), LDSO);
  t.onDlopenEntry(rec('dlopen_entry', 300, { name: 'outer.so', flags: '0x1' }));
  const outer = t.onAdd(rec('loader_add', 300, { path: '/x/outer.so', req: 'outer.so' }), LDSO);
  t.onState(rec('loader_state', 300, { state: '0' }), LDSO);
  // outer.so's constructor dlopens inner.so, already loaded: adds nothing.
  t.onDlopenEntry(rec('dlopen_entry', 300, { name: 'outer.so', flags: '0x2' }));
  assert.equal(t.onDlopenReturn(rec('dlopen_return', 300, { handle: '0x7', path: '/x/outer.so', libname: 'outer.so' }), 'r'), undefined);
  assert.equal(t.stats.dlopenAlreadyLoaded, 1, 'the inner call added nothing');
  assert.equal(t.onDlopenReturn(rec('dlopen_return', 300, { handle: '0x7', path: '/x/outer.so', libname: 'outer.so' }), 'r'), undefined);
  assert.equal(t.stats.dlopenAlreadyLoaded, 1, 'the outer call added outer.so: not "already loaded"');
  assert.equal(outer[0]!.flags, 0x1, 'the batch carries the outer call\'s flags');
});

test('defect 4: "already loaded" counts this process\'s adds, not every process\'s', () => {
  const t = tracker();
  for (const pid of [401, 402]) {
    t.onExec(pid, '/opt/app/main');
    t.onAdd(rec('loader_add', pid, { path: '', req: '' }), LDSO);
    t.onState(rec('loader_state', pid, { state: '0' }), LDSO);
  }
  t.onDlopenEntry(rec('dlopen_entry', 401, { name: 'a.so', flags: '0x2' }));
  t.onAdd(rec('loader_add', 402, { path: '/x/b.so', req: 'b.so' }), LDSO); // another process loads meanwhile
  t.onDlopenReturn(rec('dlopen_return', 401, { handle: '0x9', path: '/x/a.so', libname: 'a.so' }), 'r');
  assert.equal(t.stats.dlopenAlreadyLoaded, 1, "401's dlopen added nothing, whatever 402 did");
});

test('defect 4: a process that exits inside dlopen leaves no in-flight entry; state is bounded', () => {
  const t = new LoaderTracker({ reportExecutable: false, neededOf: () => [], maxProcesses: 3 });
  t.onDlopenEntry(rec('dlopen_entry', 500, { name: 'a.so' }, 501));
  t.onExit(500);
  assert.equal(t.dlopen.inFlight, 0);
  // The entry is gone: a later return on a reused tid is an orphan, not matched to the dead call.
  t.onDlopenReturn(rec('dlopen_return', 600, { handle: '0', path: null, libname: null }, 501), 'r');
  assert.equal(t.dlopen.stats.orphanReturns, 1);
  for (let pid = 1; pid <= 10; pid++) t.onExec(pid, '/bin/x');
  for (let pid = 1; pid <= 10; pid++) t.onAdd(rec('loader_add', pid, { path: '/lib/l.so', req: 'l.so' }), LDSO);
  assert.ok(t.tracked <= 3, `tracked ${t.tracked}`);
});

test('a dlopen that never returns is reported incomplete, unless the call already reported what it mapped', () => {
  const lists = new LoaderTracker({ mode: 'lists', reportExecutable: false, neededOf: () => [] });
  lists.onDlopenEntry(rec('dlopen_entry', 40, { name: '/opt/x/libslow.so', flags: '0x2' }, 41));
  assert.equal(lists.expire(ts).length, 0, 'not yet too old');
  const [ev, ...rest] = lists.onExit(40);
  assert.equal(rest.length, 0);
  assert.deepEqual(
    { ...ev, timestampNs: undefined },
    { timestampNs: undefined, pid: 40, tid: 41, comm: 'main', method: 'dlopen', result: 'incomplete', probe: 'dlopen_entry', requestedName: '/opt/x/libslow.so', flags: 2, unresolved: ['file.path'] },
  );
  assert.equal(lists.stats.dlopenIncomplete, 1);
  assert.deepEqual(lists.onExit(40), [], 'forgotten with the process');

  // loader-lists: _dl_open returned (the object was reported), then the thread died before dlopen did
  lists.onDlopenEntry(rec('dlopen_entry', 50, { name: 'libq.so' }, 52));
  lists.onOpen(rec('loader_open', 50, { self: '/opt/x/libq.so' }, 52), rec('loader_open', 50, {}, 52), 1);
  assert.deepEqual(lists.onThreadGone(52), []);

  // loader-probe: objects were added during the call (each already reported)
  const probe = new LoaderTracker({ mode: 'loader', reportExecutable: false, neededOf: () => [] });
  probe.onState(rec('loader_state', 60, { state: '0' }), LDSO);
  probe.onDlopenEntry(rec('dlopen_entry', 60, { name: 'libctor.so' }));
  probe.onAdd(rec('loader_add', 60, { path: '/opt/x/libctor.so', req: 'libctor.so' }), LDSO);
  assert.deepEqual(probe.onExit(60), []);
  // ... and one that died before mapping anything, found by age, with an unreadable name
  const aged = new LoaderTracker({ mode: 'loader', reportExecutable: false, neededOf: () => [], dlopenMaxAgeMs: 1 });
  aged.onDlopenEntry(rec('dlopen_entry', 70, { name: null }));
  const [old] = aged.expire(ts + 5_000_000n);
  assert.equal(old?.result, 'incomplete');
  assert.deepEqual(old?.unresolved, ['file.path', 'soload.requested_name']);
  assert.equal(aged.sizes().dlopenThreads, 0);
});
