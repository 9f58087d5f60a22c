import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MECHANISMS, type LoaderSet, type MechanismContext } from '../../../src/mechanisms';
import { loadConfig } from '../../../src/config/load';
import type { ProcReader } from '../../../src/host/proc-reader';
import type { ElfSymbolResolver } from '../../../src/elf';
import type { LinkMapLayout } from '../../../src/plan/calibrate';
import { groupLoaderSets } from '../../../src/plan/select';
import type { ProbeRole, ProbeSpec } from '../../../src/types';

const DIR = '/usr/lib/x86_64-linux-gnu';
const spec = (event: string, role: ProbeRole, file: string, fetch: ProbeSpec['fetch'] = []): ProbeSpec => ({ event, kind: role.endsWith('return') ? 'return' : 'entry', path: `${DIR}/${file}`, offset: 0x100, fetch, role, symbol: 'sym', symbolSource: 'dynsym' });
const DLOPEN = [spec('dlopen_entry', 'dlopen.entry', 'libc.so.6'), spec('dlopen_return', 'dlopen.return', 'libc.so.6')];
const STATE = spec('loader_state', 'loader.state', 'ld-linux-x86-64.so.2', [{ name: 'state', arg: '@+0x34130:s32' }]);
const ADD = spec('loader_add', 'loader.add', 'ld-linux-x86-64.so.2');
const INIT = { ...spec('libc_init', 'libc.init', 'libc.so.6', [{ name: 'comm', arg: '$comm' }]), symbol: '__libc_early_init' };

function ctx(layout?: LinkMapLayout): MechanismContext {
  return {
    config: loadConfig({ env: {} }),
    resolver: { fetchOffset: () => 0x34118, gotFetchOffset: () => 0x1d2f78 } as unknown as ElfSymbolResolver,
    proc: {} as ProcReader,
    calibrate: async () => {
      if (!layout) throw new Error('no helper');
      return layout;
    },
    info: () => undefined,
  };
}
const set = (specs: ProbeSpec[]): LoaderSet => groupLoaderSets(specs)[0]!;

async function select(s: LoaderSet, c: MechanismContext) {
  for (const m of MECHANISMS) if ((await m.applies(s, c)).applies) return m;
  return undefined;
}

test('the selector takes the first mechanism that applies: debug symbols → loader-probe, else search-lists, else dlopen-only', async () => {
  const layout = { searchlist: 0x2d8, fileId: 968, source: 'test' };
  assert.equal((await select(set([ADD, STATE, INIT, ...DLOPEN]), ctx(layout)))?.name, 'loader-probe');
  assert.equal((await select(set([STATE, INIT, ...DLOPEN]), ctx(layout)))?.name, 'search-lists');
  assert.equal((await select(set([STATE, ...DLOPEN]), ctx(layout)))?.name, 'dlopen-only', 'no libc start-up hook to read the list at');
  assert.equal((await select(set([STATE, INIT, ...DLOPEN]), ctx(undefined)))?.name, 'dlopen-only', 'calibration failed');
  assert.equal(await select(set([STATE]), ctx(undefined)), undefined, 'nothing applies without dlopen');
});

test('groupLoaderSets: one set per directory (a container root is its own set); facts probes are not mechanism probes', () => {
  const sets = groupLoaderSets([ADD, ...DLOPEN, { ...DLOPEN[0]!, event: 'dlopen_entry_1', path: '/proc/9/root/usr/lib/libc.so.6' }, spec('chdir_entry', 'chdir.entry', 'libc.so.6')]);
  assert.deepEqual(sets.map((s) => [s.dir, s.ldso, s.specs.length]), [[DIR, `${DIR}/ld-linux-x86-64.so.2`, 3], ['/proc/9/root/usr/lib', undefined, 1]]);
});

test('plans: nothing in ld.so fires on dlopen or dlclose when libc has a start-up hook; search-lists reads the list there and walks dlopen\'s new maps', async () => {
  const layout = { searchlist: 0x2d8, fileId: 968, source: 'test' };
  const lp = await MECHANISMS.find((m) => m.name === 'loader-probe')!.plan(set([ADD, STATE, INIT, ...DLOPEN]), ctx(layout));
  assert.deepEqual(lp.find((s) => s.role === 'loader.add')!.fetch.map((f) => f.arg), ['+968(%di):u64', '+976(%di):u64']);
  assert.ok(lp.find((s) => s.role === 'dlopen.return')!.fetch.some((f) => f.arg === '+976($retval):u64'));
  assert.deepEqual(lp.map((s) => s.role).sort(), ['dlopen.entry', 'dlopen.return', 'libc.init', 'loader.add']);
  const old = await MECHANISMS.find((m) => m.name === 'loader-probe')!.plan(set([ADD, STATE, ...DLOPEN]), ctx(layout));
  assert.ok(old.some((s) => s.role === 'loader.state'), 'without a start-up hook _dl_debug_state marks start-up');
  const sl = await MECHANISMS.find((m) => m.name === 'search-lists')!.plan(set([STATE, INIT, ...DLOPEN]), ctx(layout));
  const roles = sl.map((s) => s.role);
  assert.ok(!roles.includes('loader.state'));
  assert.ok(sl.every((s) => !s.path.includes('ld-linux')), 'no probe in ld.so');
  assert.equal(roles.filter((r) => r === 'loader.list').length, 12, '12 slices of 4 by default');
  assert.equal(roles.filter((r) => r === 'dlopen.list').length, 1);
  assert.ok(sl.filter((s) => s.role === 'loader.list').every((s) => s.path.endsWith('libc.so.6') && s.fetch.some((f) => f.arg.includes('@+0x1d2f78'))));
  for (const m of MECHANISMS) assert.ok(m.describe(set([ADD, STATE, INIT, ...DLOPEN]), ctx(layout)).length > 20, `${m.name} describes itself`);
});

test('loader-lists comes first where ld.so has debug symbols and libc a start-up hook: no probe fires per object; capture.perObjectProbe keeps the per-object probe', async () => {
  const layout = { searchlist: 0x2d8, fileId: 968, source: 'test' };
  const OPEN = { ...spec('loader_open', 'loader.open', 'ld-linux-x86-64.so.2', [{ name: 'handle', arg: '$retval:x64' }]), kind: 'return' as const, symbol: '_dl_open' };
  const full = set([ADD, OPEN, STATE, INIT, ...DLOPEN]);
  assert.equal((await select(full, ctx(layout)))?.name, 'loader-lists');
  const perObject = ctx(layout);
  perObject.config = loadConfig({ env: { SOLOAD_CAPTURE_PER_OBJECT_PROBE: 'true' } });
  assert.equal((await select(full, perObject))?.name, 'loader-probe');
  assert.equal((await select(set([ADD, OPEN, STATE, ...DLOPEN]), ctx(layout)))?.name, 'loader-probe', 'no libc start-up hook');
  const plan = await MECHANISMS.find((m) => m.name === 'loader-lists')!.plan(full, ctx(layout));
  const roles = plan.map((s) => s.role);
  assert.ok(!roles.includes('loader.add') && !roles.includes('loader.state'));
  const self = plan.find((s) => s.role === 'loader.open' && s.event.endsWith('_self'))!;
  const walk = plan.find((s) => s.role === 'loader.open' && s.event.endsWith('_walk'))!;
  assert.ok([self, walk].every((p) => p.kind === 'return' && p.path.endsWith('ld-linux-x86-64.so.2') && p.offset === OPEN.offset));
  assert.equal(self.filter, 'handle != 0', 'the opened object itself is news even with nothing after it');
  assert.deepEqual(self.fetch.map((f) => f.name), ['handle', 'self', 'selfreq', 'selfino', 'comm']);
  assert.equal(walk.filter, 'handle != 0 && x1 != 0', 'an empty walk is not formatted and parsed');
  assert.equal(roles.filter((r) => r === 'loader.list').length, 12);
});
