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
  const opts = { reportExecutable: false, neededOf: () => [], canonical: (_p: number, f: string) => f, initiallyLoaded: () => [], execOf: () => undefined };
  const hostSet = set([ADD, STATE, ...DLOPEN]);
  const host = MECHANISMS[0]!.createHandler(hostSet, opts);
  const container = MECHANISMS[1]!.createHandler(set([STATE, ...DLOPEN]), opts);
  const ret = (pid: number) => rec('dlopen_return', pid, { handle: '0x55', path: '/opt/p.so', libname: 'p.so' });
  const fromHost: LoadEvent[] = [...host.handle('dlopen.entry', rec('dlopen_entry', 1, { name: 'p.so' }), DLOPEN[0]!), ...host.handle('dlopen.return', ret(1), DLOPEN[1]!)];
  const fromContainer = [...container.handle('dlopen.entry', rec('dlopen_entry', 2, { name: 'p.so' }), DLOPEN[0]!), ...container.handle('dlopen.return', ret(2), DLOPEN[1]!)];
  assert.deepEqual(fromHost, [], 'the host\'s loader probe already reported it (adds), the return adds nothing');
  assert.deepEqual(fromContainer.map((e) => [e.method, e.path]), [['dlopen', '/opt/p.so']], 'the container\'s dlopen is reported, not dropped');
});
