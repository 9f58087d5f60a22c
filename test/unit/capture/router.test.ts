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
