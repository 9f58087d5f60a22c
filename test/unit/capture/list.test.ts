import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findSearchlistOffset, walkLinkMaps, type MemoryReader } from '../../../src/plan/calibrate';
import { dlopenWalkProbe, libcInitListProbes } from '../../../src/plan/list-probes';
import { walkRecord } from '../../../src/mechanisms/glibc-handler';
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

const initProbe: ProbeSpec = {
  event: 'libc_init', kind: 'entry', path: '/lib/libc.so.6', offset: 0x14fee0, role: 'libc.init',
  fetch: [{ name: 'comm', arg: '$comm' }], symbol: '__libc_early_init', symbolSource: 'dynsym',
};

test('start-up list probes at libc start-up: the main map through libc\'s GOT slot, constant-depth arguments within the kernel limit', () => {
  const layout = { searchlist: 728, source: 'test', fileId: 1112 };
  const probes = libcInitListProbes(initProbe, layout, 0x1d2f78, { sliceSize: 8, slices: 6 });
  assert.equal(probes.length, 6);
  assert.deepEqual(probes.map((p) => p.filter), ['n > 0', 'n > 8', 'n > 16', 'n > 24', 'n > 32', 'n > 40']);
  assert.ok(probes.every((p) => p.role === 'loader.list' && p.offset === 0x14fee0 && p.path === '/lib/libc.so.6'));
  const line = buildProbeLine('g', probes[5]!);
  assert.match(line, /^p:g\/libc_init_list5 \/lib\/libc\.so\.6:0x14fee0 n=\+736\(\+0\(@\+0x1d2f78\)\):u32 p0=\+0\(\+8\(\+320\(\+728\(\+0\(@\+0x1d2f78\)\)\)\)\):ustring p1=/);
  assert.ok(probes[0]!.fetch.some((f) => f.name === 'q0') && probes[0]!.fetch.some((f) => f.name === 'i0'), 'the first entries carry requested name and inode');
  assert.ok(probes.slice(1).every((p) => p.fetch.every((f) => f.name === 'n' || f.name.startsWith('p'))), 'deep entries only their name (one faulting fetch past the end, not three)');
  for (const p of probes) for (const f of p.fetch) assert.ok(f.arg.length <= 63, `${f.name}=${f.arg} is ${f.arg.length} chars`);
  assert.deepEqual(probes.map((p) => p.fetch.some((f) => f.name === 'comm')), [true, false, false, false, false, false], 'one slice carries comm');
});

test('dlopen walk probe: the maps after the returned one, up to 7 deep within the 63-character limit, filtered when nothing follows', () => {
  const ret: ProbeSpec = { event: 'dlopen_return', kind: 'return', path: '/lib/libc.so.6', offset: 0x85500, role: 'dlopen.return', fetch: [] };
  const w = dlopenWalkProbe(ret, { searchlist: 728, source: 't', fileId: 1112 }, 7);
  assert.equal(w.event, 'dlopen_return_walk');
  assert.equal(w.role, 'dlopen.list');
  assert.equal(w.filter, 'handle != 0 && x1 != 0');
  const arg = (n: string) => w.fetch.find((f) => f.name === n)!.arg;
  assert.equal(arg('x1'), '+24($retval):x64');
  assert.equal(arg('p2'), '+0(+8(+24(+24($retval)))):ustring');
  assert.equal(arg('q7'), '+0(+0(+56(+24(+24(+24(+24(+24(+24(+24($retval)))))))))):ustring');
  assert.equal(arg('more'), '+24(+24(+24(+24(+24(+24(+24(+24($retval)))))))):x64');
  for (const f of w.fetch) assert.ok(f.arg.length <= 63, `${f.name}=${f.arg} is ${f.arg.length} chars`);
  assert.equal(dlopenWalkProbe(ret, undefined, 99).fetch.filter((f) => f.name.startsWith('x')).length, 7, 'depth is capped at 7');
});

test('dlopen walk records: entries up to the first zero address (stale bytes after it ignored), `more` only when the walk reached its depth', () => {
  const base = { comm: 'app', tid: 5, tgid: 5, cpu: 0, timestampNs: 1n, event: 'w', location: '' };
  const two = walkRecord({ ...base, fields: { handle: '0x10', self: '/p/a.so', x1: '0x20', p1: '/p/b.so', q1: 'b.so', x2: '0x30', p2: '/p/c.so', q2: 'c.so', x3: '0x0', p3: '/stale/x.so', q3: 'x.so', more: '0x99' } });
  assert.equal(two.size, 3);
  assert.equal(two.more, false);
  assert.equal(two.synth.fields.p2, '/p/c.so');
  assert.equal(two.synth.fields.p3, undefined);
  const full = walkRecord({ ...base, fields: { handle: '0x10', self: '/p/a.so', x1: '0x20', p1: '/p/b.so', q1: 'b.so', more: '0x40' } });
  assert.deepEqual([full.size, full.more], [2, true]);
  const ended = walkRecord({ ...base, fields: { handle: '0x10', self: '/p/a.so', x1: '0x20', p1: '/p/b.so', q1: 'b.so', more: '0x0' } });
  assert.equal(ended.more, false);
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

test('_dl_open walk: libc\'s own dlopen is a dlopen with its dependencies; a public dlopen\'s object is reported once, with the call\'s flags and argument', () => {
  const t = new LoaderTracker({ mode: 'lists', reportExecutable: false, neededOf: () => [], initiallyLoaded: () => ['/lib/libc.so.6'] });
  const base = { comm: 'app', tid: 7, tgid: 7, cpu: 0, location: '' };
  const open = (fields: Record<string, string | null>) => ({ ...base, timestampNs: ts++, event: 'loader_open_walk', fields: { handle: '0x10', comm: 'app', ...fields } });
  // NSS: no public dlopen in flight.
  const nss = open({ self: '/lib/libnss_files.so.2', selfreq: 'libnss_files.so.2', selfino: '0x99', x1: '0x20', p1: '/lib/libnssdep.so', q1: 'libnssdep.so', x2: '0x0', p2: '/stale.so' });
  const w = walkRecord(nss);
  const evs = t.onOpen(nss, w.synth, w.size);
  assert.deepEqual(evs.map((e) => `${e.method} ${e.path} ${e.requestedName} ${e.loadedBy ?? '-'}`), ['dlopen /lib/libnss_files.so.2 libnss_files.so.2 -', 'needed /lib/libnssdep.so libnssdep.so /lib/libnss_files.so.2']);
  assert.equal(evs[0]!.mapped?.ino, 0x99);
  // A public dlopen: entry, then _dl_open's return, then dlopen's own return.
  t.onDlopenEntry({ ...base, timestampNs: ts++, event: 'dlopen_entry', fields: { name: './plug.so', flags: '0x102', comm: 'app' } });
  const pub = open({ self: '/opt/plug.so', selfreq: './plug.so' });
  const ev = t.onOpen(pub, walkRecord(pub).synth, walkRecord(pub).size);
  assert.deepEqual(ev.map((e) => [e.method, e.path, e.requestedName, e.flags]), [['dlopen', '/opt/plug.so', './plug.so', 0x102]]);
  assert.equal(t.onDlopenReturn({ ...base, timestampNs: ts++, event: 'dlopen_return', fields: { handle: '0x30', path: '/opt/plug.so', libname: './plug.so', comm: 'app' } }, 'dlopen_return'), undefined, 'not reported twice');
  // Opening something the process has: nothing.
  const again = open({ self: '/lib/libnss_files.so.2', x1: '0x20', p1: '/lib/libnssdep.so' });
  assert.deepEqual(t.onOpen(again, walkRecord(again).synth, walkRecord(again).size), []);
});

test('_dl_unmap: an object ld.so unmapped and opens again is a new load', () => {
  const t = new LoaderTracker({ mode: 'lists', reportExecutable: false, neededOf: () => [], initiallyLoaded: () => [] });
  const base = { comm: 'app', tid: 8, tgid: 8, cpu: 0, location: '' };
  const open = () => ({ ...base, timestampNs: ts++, event: 'loader_open_walk', fields: { handle: '0x10', self: '/opt/p.so', comm: 'app' } });
  const n = () => {
    const r = open();
    return t.onOpen(r, walkRecord(r).synth, walkRecord(r).size).length;
  };
  assert.equal(n(), 1);
  assert.equal(n(), 0, 'still mapped: a reference count going up');
  t.onUnmap({ ...base, timestampNs: ts++, event: 'loader_unmap', fields: { path: '/opt/p.so' } });
  assert.equal(n(), 1, 'unmapped, then opened again');
  assert.equal(t.stats.unmapped, 1);
});

test('a forked child (no exec) starts from its parent\'s objects, not from its own /proc maps read after it loaded', () => {
  const maps: Record<number, string[]> = { 20: ['/lib/libc.so.6'], 21: ['/lib/libc.so.6', '/opt/plug.so'] };
  const t = new LoaderTracker({ mode: 'lists', reportExecutable: false, neededOf: () => [], initiallyLoaded: (pid) => maps[pid] ?? [] });
  t.onFork(20, 21);
  const r = { comm: 'gen', tid: 21, tgid: 21, cpu: 0, location: '', timestampNs: ts++, event: 'loader_open_walk', fields: { handle: '0x10', self: '/opt/plug.so', comm: 'gen' } };
  assert.deepEqual(t.onOpen(r, walkRecord(r).synth, walkRecord(r).size).map((e) => e.path), ['/opt/plug.so'], 'the child\'s own maps already show it, its parent\'s do not');
  const again = { ...r, timestampNs: ts++ };
  assert.deepEqual(t.onOpen(again, walkRecord(again).synth, walkRecord(again).size), []);
});
