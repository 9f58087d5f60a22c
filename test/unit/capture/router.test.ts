import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProcessFacts, type FactsHost } from '../../../src/capture/process-facts';
import { RecordRouter, type Route } from '../../../src/capture/router';
import type { MechanismHandler } from '../../../src/mechanisms';
import type { LoadEvent, ProbeRole, ProbeSpec, TraceRecord } from '../../../src/types';

const host = (): FactsHost & { identified: number[] } => {
  const identified: number[] = [];
  return { identified, identify: (pid) => void identified.push(pid), chroot: () => undefined, cwdOf: () => '/' };
};
const rec = (event: string, fields: Record<string, string | null>, tid = 10, tgid = 10): TraceRecord => ({ comm: 'x', tid, tgid, cpu: 0, timestampNs: 1n, event, location: '', fields });
const spec = (event: string, role: ProbeRole): ProbeSpec => ({ event, kind: 'entry', path: '/lib/x.so', offset: 0, fetch: [], role });

function fakeHandler(name: string, log: string[]): MechanismHandler {
  return {
    handle: (role, r) => (log.push(`${name} ${role} ${r.event}`), [{ timestampNs: 1n, pid: r.tgid!, tid: r.tid, comm: 'x', method: 'needed', path: `/${name}.so`, result: 'ok', probe: r.event } as LoadEvent]),
    onExec: (pid) => void log.push(`${name} exec ${pid}`),
    onExit: (pid) => (log.push(`${name} exit ${pid}`), []),
    onThreadGone: () => [],
    expire: () => [],
    stats: () => ({}),
    sizes: () => ({}),
  };
}

function setup(exitIsGroupDead: boolean) {
  const log: string[] = [];
  const loads: LoadEvent[] = [];
  const customs: string[] = [];
  const a = fakeHandler('a', log);
  const b = fakeHandler('b', log);
  const facts = new ProcessFacts(host());
  const routes = new Map<string, Route>([
    ['loader_add', { role: 'loader.add', spec: spec('loader_add', 'loader.add'), handler: a }],
    ['loader_add_1', { role: 'loader.add', spec: spec('loader_add_1', 'loader.add'), handler: b }],
    ['chdir_entry', { role: 'chdir.entry', spec: spec('chdir_entry', 'chdir.entry') }],
    ['chdir_return', { role: 'chdir.return', spec: spec('chdir_return', 'chdir.return') }],
    ['mine', { role: 'custom', spec: spec('mine', 'custom') }],
  ]);
  const router = new RecordRouter({ routes, facts, handlers: [a, b], onLoad: (e) => loads.push(e), onCustom: (r) => customs.push(r.event), exitIsGroupDead });
  return { router, log, loads, customs, facts };
}

test('records go to the handler of their probe\'s loader set; facts and custom records to theirs', () => {
  const { router, log, loads, customs, facts } = setup(true);
  router.route(rec('loader_add', { path: '/x' }));
  router.route(rec('loader_add_1', { path: '/y' }, 20, 20));
  assert.deepEqual(log, ['a loader.add loader_add', 'b loader.add loader_add_1']);
  assert.deepEqual(loads.map((l) => l.path), ['/a.so', '/b.so']);
  router.route(rec('chdir_entry', { path: '/srv' }));
  router.route(rec('chdir_return', { rc: '0' }));
  assert.equal(facts.cwd.get(10), '/srv');
  router.route(rec('mine', {}));
  assert.deepEqual(customs, ['mine']);
  router.route(rec('nobody', {}));
  assert.equal(router.stats.unknownEvents, 1);
});

test('exec and exit reach every handler and the process facts', () => {
  const { router, log, facts } = setup(true);
  router.route(rec('sched_process_exec', { filename: '/bin/app', pid: '30', old_pid: '30' }, 30, 30));
  assert.equal(facts.execOf(30), '/bin/app');
  router.route(rec('sched_process_exit', { comm: 'app', pid: '30', prio: '120', group_dead: 'true' }, 30, 30));
  assert.deepEqual(log, ['a exec 30', 'b exec 30', 'a exit 30', 'b exit 30']);
  assert.equal(facts.execOf(30), undefined);
});

test('defect 1: without group_dead, a non-leader thread exit does not end the process', () => {
  const { router, log } = setup(false);
  router.route(rec('sched_process_exit', { comm: 'worker', pid: '41', prio: '120' }, 41, 40));
  assert.deepEqual(log, [], 'thread 41 of process 40 exited: the process lives on');
  assert.equal(router.stats.threadExits, 1);
  router.route(rec('sched_process_exit', { comm: 'app', pid: '40', prio: '120' }, 40, 40));
  assert.deepEqual(log, ['a exit 40', 'b exit 40']);
});

/** A handler that holds one unfinished dlopen per thread it saw, like the glibc handlers. */
function pendingHandler(log: string[], viewAtExit: () => string | undefined): MechanismHandler {
  const threads = new Map<number, number>();
  const incomplete = (pid: number, tid: number): LoadEvent => ({ timestampNs: 1n, pid, tid, comm: 'x', method: 'dlopen', result: 'incomplete', probe: 'e' });
  return {
    handle: (_role, r) => (threads.set(r.tid, r.tgid!), []),
    onExec: () => undefined,
    onExit: (pid) => {
      log.push(`exit ${pid} view ${viewAtExit() ?? 'gone'}`);
      const out = [...threads].filter(([, p]) => p === pid).map(([t]) => incomplete(pid, t));
      for (const e of out) threads.delete(e.tid);
      return out;
    },
    onThreadGone: (tid) => {
      const pid = threads.get(tid);
      threads.delete(tid);
      return pid === undefined ? [] : [incomplete(pid, tid)];
    },
    expire: () => [],
    stats: () => ({}),
    sizes: () => ({ threads: threads.size }),
  };
}

test('liveness sweep: a process whose exit event was lost, and a dead thread of a live process, are forgotten; live ones stay', () => {
  const log: string[] = [];
  const loads: LoadEvent[] = [];
  const facts = new ProcessFacts(host());
  let h: MechanismHandler;
  h = pendingHandler(log, () => facts.views.get(50));
  const routes = new Map<string, Route>([['dlopen_entry', { role: 'dlopen.entry', spec: spec('dlopen_entry', 'dlopen.entry'), handler: h }]]);
  const router = new RecordRouter({ routes, facts, handlers: [h], onLoad: (e) => loads.push(e), onCustom: () => undefined, exitIsGroupDead: true });
  router.route(rec('sched_process_fork', { pid: '1', child_pid: '50' }, 1, 1));
  facts.views.set(50, 'host');
  router.route(rec('dlopen_entry', { name: 'a.so' }, 50, 50)); // process 50: its exit will be lost
  router.route(rec('dlopen_entry', { name: 'b.so' }, 61, 60)); // thread 61 of live process 60 dies
  router.route(rec('dlopen_entry', { name: 'c.so' }, 70, 70)); // lives on
  const alive = new Set([1, 60, 70]);
  const checked: number[] = [];
  const isAlive = (id: number) => (checked.push(id), alive.has(id));
  router.housekeep(0n, isAlive);
  assert.deepEqual(checked, [], 'ids seen since the last sweep are not checked yet');
  router.housekeep(0n, isAlive);
  assert.deepEqual(checked.sort((x, y) => x - y), [1, 50, 60, 61, 70]);
  assert.deepEqual(loads.map((l) => `${l.pid}/${l.tid} ${l.result}`).sort(), ['50/50 incomplete', '60/61 incomplete']);
  assert.ok(log.includes('exit 50 view host'), `the unfinished load goes out while the process's facts still exist: ${log}`);
  assert.equal(facts.views.get(50), undefined);
  assert.equal(router.stats.sweptGone, 2);
  assert.equal(router.tracked, 3, 'live ids stay followed');
  assert.deepEqual(h.sizes(), { threads: 1 });
  // live ids are checked again only after another quiet interval
  checked.length = 0;
  router.housekeep(0n, isAlive);
  assert.deepEqual(checked, []);
});

test('liveness sweep checks at most checksPerSweep ids, oldest first; the id table is bounded', () => {
  const facts = new ProcessFacts(host());
  const router = new RecordRouter({ routes: new Map(), facts, handlers: [], onLoad: () => undefined, onCustom: () => undefined, exitIsGroupDead: true, checksPerSweep: 2, maxTracked: 4 });
  for (const pid of [1, 2, 3, 4, 5]) router.route(rec('x', {}, pid, pid));
  assert.equal(router.tracked, 4, 'pid 1 dropped at the bound');
  router.housekeep(0n, () => false);
  const checked: number[] = [];
  router.housekeep(0n, (id) => (checked.push(id), false));
  assert.deepEqual(checked, [2, 3]);
  router.housekeep(0n, (id) => (checked.push(id), false));
  assert.deepEqual(checked, [2, 3, 4, 5]);
  assert.equal(router.tracked, 0);
});
