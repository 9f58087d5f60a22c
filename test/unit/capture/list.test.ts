import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findSearchlistOffset, walkLinkMaps, type MemoryReader } from '../../../src/plan/calibrate';
import { dlopenListProbes, startupListProbes } from '../../../src/plan/list-probes';
import { LoaderTracker } from '../../../src/capture/loader';
import { buildProbeLine } from '../../../src/tracefs/probe-line';
import type { ProbeSpec, TraceRecord } from '../../../src/types';

/** A fake address space: little-endian 64-bit words and strings at chosen addresses. */
class FakeMemory {
  private readonly bytes = new Map<bigint, number>();
  u64(addr: bigint, v: bigint) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    b.forEach((x, i) => this.bytes.set(addr + BigInt(i), x));
  }
  u32(addr: bigint, v: number) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    b.forEach((x, i) => this.bytes.set(addr + BigInt(i), x));
  }
  read: MemoryReader = (a, n) => {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.bytes.get(a + BigInt(i)) ?? 0;
    return out;
  };
}

test('calibration finds l_searchlist by content (vDSO excluded, main map first), not by a guessed offset', () => {
  const mem = new FakeMemory();
  const maps = [0x1000n, 0x2000n, 0x3000n, 0x4000n]; // main, vdso, libc, ld.so
  maps.forEach((m, i) => mem.u64(m + 24n, maps[i + 1] ?? 0n));
  // A decoy (pointer, count) pair earlier in the struct: right count, wrong contents.
  mem.u64(0x1000n + 0x100n, 0x9000n);
  mem.u32(0x1000n + 0x108n, 3);
  mem.u64(0x9000n, 0x1000n);
  mem.u64(0x9008n, 0x7777n);
  mem.u64(0x9010n, 0x3000n);
  // The real search list at 0x2d8: main, libc, ld.so.
  mem.u64(0x1000n + 0x2d8n, 0x8000n);
  mem.u32(0x1000n + 0x2e0n, 3);
  [0x1000n, 0x3000n, 0x4000n].forEach((p, i) => mem.u64(0x8000n + BigInt(8 * i), p));
  const list = walkLinkMaps(mem.read, 0x1000n);
  assert.deepEqual(list, maps);
  assert.equal(findSearchlistOffset(mem.read, 0x1000n, list), 0x2d8);
  assert.equal(findSearchlistOffset(mem.read, 0x1000n, list.slice(0, 1)), undefined);
});

const stateProbe: ProbeSpec = {
  event: 'loader_state', kind: 'entry', path: '/lib/ld-linux-x86-64.so.2', offset: 0x2060, role: 'loader.state',
  fetch: [{ name: 'state', arg: '@+0x34130:s32' }, { name: 'comm', arg: '$comm' }], symbol: '_dl_debug_state', symbolSource: 'dynsym',
};

test('list probes: constant-depth fetch arguments within the kernel limit, in-kernel filters', () => {
  const layout = { searchlist: 728, source: 'test' };
  const probes = startupListProbes(stateProbe, layout, 0x34120, { sliceSize: 8, slices: 16 });
  assert.equal(probes.length, 16);
  assert.equal(probes[0]!.filter, 'state == 0');
  assert.equal(probes[2]!.filter, 'state == 0 && n > 16');
  const line = buildProbeLine('g', probes[15]!);
  assert.match(line, /^p:g\/loader_state_list15 \/lib\/ld-linux-x86-64\.so\.2:0x2060 state=@\+0x34130:s32 comm=\$comm n=\+736\(@\+0x34120\):u32 p0=\+0\(\+8\(\+960\(\+728\(@\+0x34120\)\)\)\):ustring q0=/);
  for (const p of probes) for (const f of p.fetch) assert.ok(f.arg.length <= 63, `${f.name}=${f.arg} is ${f.arg.length} chars`);
  const ret: ProbeSpec = { event: 'dlopen_return', kind: 'return', path: '/lib/libc.so.6', offset: 0x85500, role: 'dlopen.return', fetch: [] };
  const dl = dlopenListProbes(ret, layout, { sliceSize: 8, slices: 4 });
  assert.deepEqual(dl.map((p) => p.filter), ['n > 0', 'n > 8', 'n > 16', 'n > 24']);
  assert.equal(dl[1]!.fetch[0]!.arg, '+0(+8($retval)):ustring');
  assert.equal(dl[1]!.fetch[2]!.arg, '+0(+8(+64(+728($retval)))):ustring');
});

let ts = 1n;
const rec = (event: string, pid: number, fields: Record<string, string | null>): TraceRecord => ({
  comm: 'app', tid: pid, tgid: pid, cpu: 0, timestampNs: ts++, event, location: '', fields: { comm: 'app', ...fields },
});
const LDSO = '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2';

test('list mechanism: slices assembled in any order, then objects reported in search-list order', () => {
  const t = new LoaderTracker({
    mode: 'lists',
    reportExecutable: true,
    neededOf: (_p, f) => ({ '/bin/app': ['libz.so.1', 'libc.so.6'], '/lib/libc.so.6': ['ld-linux-x86-64.so.2'] } as Record<string, string[]>)[f],
    listCapacity: 8,
  });
  t.onExec(3, '/bin/app');
  const slice1 = rec('l1', 3, { state: '0', n: '5', p0: '/lib/libc.so.6', q0: 'libc.so.6', p1: '/lib64/ld-linux-x86-64.so.2', q1: '/lib64/ld-linux-x86-64.so.2', p2: null, q2: null });
  const slice0 = rec('l0', 3, { state: '0', n: '5', p0: '', q0: '', p1: '/opt/pre.so', q1: '/opt/pre.so', p2: '/lib/libz.so.1', q2: 'libz.so.1' });
  assert.deepEqual(t.onList(slice1, { first: 3, size: 3 }, LDSO), [], 'waits for slice 0');
  const evs = t.onList(slice0, { first: 0, size: 3 }, LDSO);
  assert.deepEqual(evs.map((e) => `${e.method} ${e.path}`), [
    'executable /bin/app',
    'preload /opt/pre.so',
    'needed /lib/libz.so.1',
    'needed /lib/libc.so.6',
    'interpreter /lib64/ld-linux-x86-64.so.2',
  ]);
  // Later RT_CONSISTENT hits (after each dlopen) re-read the same list: nothing is reported twice.
  assert.deepEqual(t.onList(slice0, { first: 0, size: 3 }, LDSO), []);
});

test('list mechanism: dlopen dependencies the process lacked are needed, loaded_by the dlopened object; repeats are not reported', () => {
  const t = new LoaderTracker({ mode: 'lists', reportExecutable: false, neededOf: () => [], initiallyLoaded: () => ['/lib/libc.so.6'] });
  t.onDlopenEntry(rec('e', 9, { name: 'libp.so', flags: '0x2' }));
  const own = t.onDlopenReturn(rec('r', 9, { handle: '0x10', path: '/p/libp.so', libname: 'libp.so' }), 'r')!;
  assert.equal(own.method, 'dlopen');
  const deps = t.onDlopenList(rec('dl0', 9, { self: '/p/libp.so', n: '3', p0: '/p/libp.so', q0: 'libp.so', p1: '/p/libdep.so', q1: 'libdep.so', p2: '/lib/libc.so.6', q2: 'libc.so.6' }), { first: 0, size: 8 });
  assert.deepEqual(deps.map((e) => `${e.method} ${e.path} ${e.loadedBy}`), ['needed /p/libdep.so /p/libp.so']);
  t.onDlopenEntry(rec('e', 9, { name: 'libp.so', flags: '0x2' }));
  assert.equal(t.onDlopenReturn(rec('r', 9, { handle: '0x10', path: '/p/libp.so', libname: 'libp.so' }), 'r'), undefined);
  assert.equal(t.stats.dlopenAlreadyLoaded, 1);
});
