import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MECHANISMS, type LoaderSet } from '../../../src/mechanisms';
import { groupLoaderSets } from '../../../src/plan/select';
import type { LoadEvent, ProbeRole, ProbeSpec, TraceRecord } from '../../../src/types';

const DIR = '/usr/lib/x86_64-linux-gnu';
const spec = (event: string, role: ProbeRole, file: string, fetch: ProbeSpec['fetch'] = []): ProbeSpec => ({ event, kind: role.endsWith('return') ? 'return' : 'entry', path: `${DIR}/${file}`, offset: 0x100, fetch, role, symbol: 'sym', symbolSource: 'dynsym' });
const DLOPEN = [spec('dlopen_entry', 'dlopen.entry', 'libc.so.6'), spec('dlopen_return', 'dlopen.return', 'libc.so.6')];
const STATE = spec('loader_state', 'loader.state', 'ld-linux-x86-64.so.2', [{ name: 'state', arg: '@+0x34130:s32' }]);
const ADD = spec('loader_add', 'loader.add', 'ld-linux-x86-64.so.2');

const set = (specs: ProbeSpec[]): LoaderSet => groupLoaderSets(specs)[0]!;
const rec = (event: string, pid: number, fields: Record<string, string | null>): TraceRecord => ({ comm: 'p', tid: pid, tgid: pid, cpu: 0, timestampNs: 1n, event, location: '', fields: { comm: 'p', ...fields } });

test('defect 2: each loader set keeps its own state — a container with search lists reports dlopens while the host uses the loader probe', async () => {
  const opts = { reportExecutable: false, neededOf: () => [], canonical: (_p: number, f: string) => f, initiallyLoaded: () => [], execOf: () => undefined, listCapacity: 128 };
  const hostSet = set([ADD, STATE, ...DLOPEN]);
  const host = MECHANISMS.find((m) => m.name === 'loader-probe')!.createHandler(hostSet, opts);
  const container = MECHANISMS.find((m) => m.name === 'search-lists')!.createHandler(set([STATE, ...DLOPEN]), opts);
  const ret = (pid: number) => rec('dlopen_return', pid, { handle: '0x55', path: '/opt/p.so', libname: 'p.so' });
  const fromHost: LoadEvent[] = [...host.handle('dlopen.entry', rec('dlopen_entry', 1, { name: 'p.so' }), DLOPEN[0]!), ...host.handle('dlopen.return', ret(1), DLOPEN[1]!)];
  const fromContainer = [...container.handle('dlopen.entry', rec('dlopen_entry', 2, { name: 'p.so' }), DLOPEN[0]!), ...container.handle('dlopen.return', ret(2), DLOPEN[1]!)];
  assert.deepEqual(fromHost, [], 'the host\'s loader probe already reported it (adds), the return adds nothing');
  assert.deepEqual(fromContainer.map((e) => [e.method, e.path]), [['dlopen', '/opt/p.so']], 'the container\'s dlopen is reported, not dropped');
});

test('search lists: a start-up list longer than the probes carry is reported up to their capacity and counted as truncated', () => {
  const cap = 16;
  const opts = { reportExecutable: false, neededOf: () => [], canonical: (_p: number, f: string) => f, initiallyLoaded: () => [], execOf: () => '/bin/big', listCapacity: cap };
  const h = MECHANISMS.find((m) => m.name === 'search-lists')!.createHandler(set([STATE, ...DLOPEN]), opts);
  const n = 40; // more objects than the 2 slices × 8 entries installed
  const evs: LoadEvent[] = [];
  for (const first of [0, 8]) {
    const fields: Record<string, string | null> = { state: '0', n: String(n) };
    for (let k = 0; k < 8; k++) {
      fields[`p${k}`] = first + k === 0 ? '' : `/lib/l${first + k}.so`;
      fields[`q${k}`] = `l${first + k}.so`;
    }
    const slice = { ...STATE, event: `loader_state_list${first / 8}`, role: 'loader.list' as const, slice: { first, size: 8 } };
    evs.push(...h.handle('loader.list', rec(slice.event, 7, fields), slice));
  }
  assert.equal(evs.length, cap - 1, 'every carried object but the main map (not reported without reportExecutable)');
  assert.equal(h.stats().listTruncated, 1);
});
