import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MECHANISMS, type LoaderSet, type MechanismContext } from '../../../src/mechanisms';
import type { HandlerOptions } from '../../../src/mechanisms/types';
import { chainFetch, depsFetch, isMuslLoaderName, listRecord, MAX_FETCH_ARG, muslMechanism, MuslHandler } from '../../../src/mechanisms/musl';
import { groupLoaderSets } from '../../../src/plan/select';
import { parseTraceLine } from '../../../src/pipe/parse';
import { buildProbeLine } from '../../../src/tracefs/probe-line';
import type { LoadEvent, ProbeRole, ProbeSpec, TraceRecord } from '../../../src/types';

// The declarative musl probes as planned on a Debian host with musl 1.2.3 (`musl-tools`):
// `_dl_debug_addr` at file offset 0xac3d8, `_dl_debug_state` at 0x720b0, `dlopen` at 0x75af0.
const LIBC = '/usr/lib/x86_64-linux-musl/libc.so';
const GROUP = 'soload_21121';
const base = (event: string, role: ProbeRole, offset: number, fetch: ProbeSpec['fetch']): ProbeSpec => ({ event, kind: role.endsWith('return') ? 'return' : 'entry', path: LIBC, offset, fetch, role, symbol: 'sym', symbolSource: 'dynsym' });
const STATE = base('musl_state', 'loader.state', 0x720b0, [{ name: 'state', arg: '+24(@+0xac3d8):s32' }, { name: 'comm', arg: '$comm' }]);
const ENTRY = base('musl_dlopen_entry', 'dlopen.entry', 0x75af0, [{ name: 'name', arg: '+0(%di):ustring' }, { name: 'flags', arg: '%si:x32' }, { name: 'comm', arg: '$comm' }]);
const RETURN = base('musl_dlopen_return', 'dlopen.return', 0x75af0, [{ name: 'handle', arg: '$retval:x64' }, { name: 'comm', arg: '$comm' }, { name: 'path', arg: '+0(+8($retval)):ustring' }]);
const muslSet = (): LoaderSet => groupLoaderSets([STATE, ENTRY, RETURN])[0]!;
const ctx = {} as MechanismContext; // musl-lists reads nothing but the set

/** What `soload probes` printed for that installation (group renamed). */
const RECORDED_LINES = [
  'p:soload_21121/musl_list /usr/lib/x86_64-linux-musl/libc.so:0x720b0 state=+24(@+0xac3d8):s32 comm=$comm x0=+8(@+0xac3d8):x64 p0=+0(+8(+8(@+0xac3d8))):ustring x1=+24(+8(@+0xac3d8)):x64 p1=+0(+8(+24(+8(@+0xac3d8)))):ustring x2=+24(+24(+8(@+0xac3d8))):x64 p2=+0(+8(+24(+24(+8(@+0xac3d8))))):ustring x3=+24(+24(+24(+8(@+0xac3d8)))):x64 p3=+0(+8(+24(+24(+24(+8(@+0xac3d8)))))):ustring x4=+24(+24(+24(+24(+8(@+0xac3d8))))):x64 p4=+0(+8(+24(+24(+24(+24(+8(@+0xac3d8))))))):ustring x5=+24(+24(+24(+24(+24(+8(@+0xac3d8)))))):x64 p5=+0(+8(+24(+24(+24(+24(+24(+8(@+0xac3d8)))))))):ustring x6=+24(+24(+24(+24(+24(+24(+8(@+0xac3d8))))))):x64 p6=+0(+8(+24(+24(+24(+24(+24(+24(+8(@+0xac3d8))))))))):ustring more=+24(+24(+24(+24(+24(+24(+24(+8(@+0xac3d8)))))))):x64 n=+192(+8(@+0xac3d8)):u64 d0=+0(+8(+0(+176(+8(@+0xac3d8))))):ustring d1=+0(+8(+8(+176(+8(@+0xac3d8))))):ustring d2=+0(+8(+16(+176(+8(@+0xac3d8))))):ustring d3=+0(+8(+24(+176(+8(@+0xac3d8))))):ustring d4=+0(+8(+32(+176(+8(@+0xac3d8))))):ustring d5=+0(+8(+40(+176(+8(@+0xac3d8))))):ustring d6=+0(+8(+48(+176(+8(@+0xac3d8))))):ustring d7=+0(+8(+56(+176(+8(@+0xac3d8))))):ustring',
  'p:soload_21121/musl_deps1 /usr/lib/x86_64-linux-musl/libc.so:0x720b0 state=+24(@+0xac3d8):s32 n=+192(+8(@+0xac3d8)):u64 d0=+0(+8(+64(+176(+8(@+0xac3d8))))):ustring d1=+0(+8(+72(+176(+8(@+0xac3d8))))):ustring d2=+0(+8(+80(+176(+8(@+0xac3d8))))):ustring d3=+0(+8(+88(+176(+8(@+0xac3d8))))):ustring d4=+0(+8(+96(+176(+8(@+0xac3d8))))):ustring d5=+0(+8(+104(+176(+8(@+0xac3d8))))):ustring d6=+0(+8(+112(+176(+8(@+0xac3d8))))):ustring d7=+0(+8(+120(+176(+8(@+0xac3d8))))):ustring',
  'p:soload_21121/musl_deps2 /usr/lib/x86_64-linux-musl/libc.so:0x720b0 state=+24(@+0xac3d8):s32 n=+192(+8(@+0xac3d8)):u64 d0=+0(+8(+128(+176(+8(@+0xac3d8))))):ustring d1=+0(+8(+136(+176(+8(@+0xac3d8))))):ustring d2=+0(+8(+144(+176(+8(@+0xac3d8))))):ustring d3=+0(+8(+152(+176(+8(@+0xac3d8))))):ustring d4=+0(+8(+160(+176(+8(@+0xac3d8))))):ustring d5=+0(+8(+168(+176(+8(@+0xac3d8))))):ustring d6=+0(+8(+176(+176(+8(@+0xac3d8))))):ustring d7=+0(+8(+184(+176(+8(@+0xac3d8))))):ustring',
  'p:soload_21121/musl_deps3 /usr/lib/x86_64-linux-musl/libc.so:0x720b0 state=+24(@+0xac3d8):s32 n=+192(+8(@+0xac3d8)):u64 d0=+0(+8(+192(+176(+8(@+0xac3d8))))):ustring d1=+0(+8(+200(+176(+8(@+0xac3d8))))):ustring d2=+0(+8(+208(+176(+8(@+0xac3d8))))):ustring d3=+0(+8(+216(+176(+8(@+0xac3d8))))):ustring d4=+0(+8(+224(+176(+8(@+0xac3d8))))):ustring d5=+0(+8(+232(+176(+8(@+0xac3d8))))):ustring d6=+0(+8(+240(+176(+8(@+0xac3d8))))):ustring d7=+0(+8(+248(+176(+8(@+0xac3d8))))):ustring',
  'p:soload_21121/musl_deps4 /usr/lib/x86_64-linux-musl/libc.so:0x720b0 state=+24(@+0xac3d8):s32 n=+192(+8(@+0xac3d8)):u64 d0=+0(+8(+256(+176(+8(@+0xac3d8))))):ustring d1=+0(+8(+264(+176(+8(@+0xac3d8))))):ustring d2=+0(+8(+272(+176(+8(@+0xac3d8))))):ustring d3=+0(+8(+280(+176(+8(@+0xac3d8))))):ustring d4=+0(+8(+288(+176(+8(@+0xac3d8))))):ustring d5=+0(+8(+296(+176(+8(@+0xac3d8))))):ustring d6=+0(+8(+304(+176(+8(@+0xac3d8))))):ustring d7=+0(+8(+312(+176(+8(@+0xac3d8))))):ustring',
  'p:soload_21121/musl_deps5 /usr/lib/x86_64-linux-musl/libc.so:0x720b0 state=+24(@+0xac3d8):s32 n=+192(+8(@+0xac3d8)):u64 d0=+0(+8(+320(+176(+8(@+0xac3d8))))):ustring d1=+0(+8(+328(+176(+8(@+0xac3d8))))):ustring d2=+0(+8(+336(+176(+8(@+0xac3d8))))):ustring d3=+0(+8(+344(+176(+8(@+0xac3d8))))):ustring d4=+0(+8(+352(+176(+8(@+0xac3d8))))):ustring d5=+0(+8(+360(+176(+8(@+0xac3d8))))):ustring d6=+0(+8(+368(+176(+8(@+0xac3d8))))):ustring d7=+0(+8(+376(+176(+8(@+0xac3d8))))):ustring',
  'p:soload_21121/musl_deps6 /usr/lib/x86_64-linux-musl/libc.so:0x720b0 state=+24(@+0xac3d8):s32 n=+192(+8(@+0xac3d8)):u64 d0=+0(+8(+384(+176(+8(@+0xac3d8))))):ustring d1=+0(+8(+392(+176(+8(@+0xac3d8))))):ustring d2=+0(+8(+400(+176(+8(@+0xac3d8))))):ustring d3=+0(+8(+408(+176(+8(@+0xac3d8))))):ustring d4=+0(+8(+416(+176(+8(@+0xac3d8))))):ustring d5=+0(+8(+424(+176(+8(@+0xac3d8))))):ustring d6=+0(+8(+432(+176(+8(@+0xac3d8))))):ustring d7=+0(+8(+440(+176(+8(@+0xac3d8))))):ustring',
  'p:soload_21121/musl_deps7 /usr/lib/x86_64-linux-musl/libc.so:0x720b0 state=+24(@+0xac3d8):s32 n=+192(+8(@+0xac3d8)):u64 d0=+0(+8(+448(+176(+8(@+0xac3d8))))):ustring d1=+0(+8(+456(+176(+8(@+0xac3d8))))):ustring d2=+0(+8(+464(+176(+8(@+0xac3d8))))):ustring d3=+0(+8(+472(+176(+8(@+0xac3d8))))):ustring d4=+0(+8(+480(+176(+8(@+0xac3d8))))):ustring d5=+0(+8(+488(+176(+8(@+0xac3d8))))):ustring d6=+0(+8(+496(+176(+8(@+0xac3d8))))):ustring d7=+0(+8(+504(+176(+8(@+0xac3d8))))):ustring',
  'p:soload_21121/musl_dlopen_entry /usr/lib/x86_64-linux-musl/libc.so:0x75af0 name=+0(%di):ustring flags=%si:x32 comm=$comm',
  'r:soload_21121/musl_dlopen_return /usr/lib/x86_64-linux-musl/libc.so:0x75af0 handle=$retval:x64 comm=$comm path=+0(+8($retval)):ustring',
  'r:soload_21121/musl_dlopen_deps /usr/lib/x86_64-linux-musl/libc.so:0x75af0 handle=$retval:x64 x0=$retval:x64 p0=+0(+8($retval)):ustring x1=+24($retval):x64 p1=+0(+8(+24($retval))):ustring x2=+24(+24($retval)):x64 p2=+0(+8(+24(+24($retval)))):ustring x3=+24(+24(+24($retval))):x64 p3=+0(+8(+24(+24(+24($retval))))):ustring x4=+24(+24(+24(+24($retval)))):x64 p4=+0(+8(+24(+24(+24(+24($retval)))))):ustring x5=+24(+24(+24(+24(+24($retval))))):x64 p5=+0(+8(+24(+24(+24(+24(+24($retval))))))):ustring x6=+24(+24(+24(+24(+24(+24($retval)))))):x64 p6=+0(+8(+24(+24(+24(+24(+24(+24($retval)))))))):ustring x7=+24(+24(+24(+24(+24(+24(+24($retval))))))):x64 p7=+0(+8(+24(+24(+24(+24(+24(+24(+24($retval))))))))):ustring x8=+24(+24(+24(+24(+24(+24(+24(+24($retval)))))))):x64 p8=+0(+8(+24(+24(+24(+24(+24(+24(+24(+24($retval)))))))))):ustring more=+24(+24(+24(+24(+24(+24(+24(+24(+24($retval))))))))):x64',
];

test('chainFetch from _dl_debug_addr: x0/p0..x6/p6 then more, each argument within the kernel limit (63 incl. type)', () => {
  const f = chainFetch('+8(@+0xac3d8)');
  assert.deepEqual(f.map((a) => a.name), ['x0', 'p0', 'x1', 'p1', 'x2', 'p2', 'x3', 'p3', 'x4', 'p4', 'x5', 'p5', 'x6', 'p6', 'more']);
  for (const a of f) assert.ok(a.arg.length <= MAX_FETCH_ARG, `${a.name}=${a.arg} is ${a.arg.length} characters`);
  assert.equal(MAX_FETCH_ARG, 63);
  const arg = (n: string) => f.find((a) => a.name === n)!.arg;
  assert.equal(arg('x0'), '+8(@+0xac3d8):x64', 'x0: the head dso\'s address');
  assert.equal(arg('p0'), '+0(+8(+8(@+0xac3d8))):ustring');
  assert.equal(arg('p2'), '+0(+8(+24(+24(+8(@+0xac3d8))))):ustring');
  assert.equal(arg('p6'), '+0(+8(+24(+24(+24(+24(+24(+24(+8(@+0xac3d8))))))))):ustring');
  assert.equal(arg('p6').length, 59, 'p6 fits; a p7 (five characters more) would not');
  assert.equal(arg('more'), '+24(+24(+24(+24(+24(+24(+24(+8(@+0xac3d8)))))))):x64', 'more: the next pointer after p6');
});

test('chainFetch from $retval reaches x8/p8 (a shorter start leaves room for two more steps)', () => {
  const f = chainFetch('$retval');
  assert.deepEqual(f.map((a) => a.name), ['x0', 'p0', 'x1', 'p1', 'x2', 'p2', 'x3', 'p3', 'x4', 'p4', 'x5', 'p5', 'x6', 'p6', 'x7', 'p7', 'x8', 'p8', 'more']);
  for (const a of f) assert.ok(a.arg.length <= MAX_FETCH_ARG, `${a.name}=${a.arg} is ${a.arg.length} characters`);
  const arg = (n: string) => f.find((a) => a.name === n)!.arg;
  assert.equal(arg('p0'), '+0(+8($retval)):ustring');
  assert.equal(arg('p8'), '+0(+8(+24(+24(+24(+24(+24(+24(+24(+24($retval)))))))))):ustring');
  assert.equal(arg('more'), `${'+24('.repeat(9)}$retval${')'.repeat(9)}:x64`);
});

test('depsFetch: n = ndeps_direct at +192, d<k> = name of deps[first+k] (pointer array at +176)', () => {
  const head = '+8(@+0xac3d8)';
  const f0 = depsFetch(head, 0);
  assert.deepEqual(f0.map((a) => a.name), ['n', 'd0', 'd1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7']);
  assert.equal(f0[0]!.arg, '+192(+8(@+0xac3d8)):u64');
  assert.equal(f0[1]!.arg, '+0(+8(+0(+176(+8(@+0xac3d8))))):ustring');
  assert.equal(f0[8]!.arg, '+0(+8(+56(+176(+8(@+0xac3d8))))):ustring');
  const f1 = depsFetch(head, 8);
  assert.equal(f1[1]!.arg, '+0(+8(+64(+176(+8(@+0xac3d8))))):ustring', 'slice 1 starts at deps[8] = +64');
  assert.equal(f1[8]!.arg, '+0(+8(+120(+176(+8(@+0xac3d8))))):ustring');
  for (const a of depsFetch(head, 56)) assert.ok(a.arg.length <= MAX_FETCH_ARG, `${a.name}=${a.arg}`);
});

test('isMuslLoaderName: ld-musl-<arch>.so.1, libc.musl-<arch>.so.1 (Alpine) and libc.so, by basename only', () => {
  for (const yes of ['/lib/ld-musl-x86_64.so.1', 'ld-musl-aarch64.so.1', '/lib/libc.musl-x86_64.so.1', '/usr/lib/x86_64-linux-musl/libc.so', 'libc.so']) assert.equal(isMuslLoaderName(yes), true, yes);
  for (const no of ['/lib/x86_64-linux-gnu/libc.so.6', '/lib64/ld-linux-x86-64.so.2', '/lib/ld-musl-x86_64.so.2', '/opt/libc.so.1', '/lib/ld-musl-x86_64.so.1/x', '/opt/mylibc.so', '']) assert.equal(isMuslLoaderName(no), false, no);
});

const rec = (event: string, pid: number, fields: Record<string, string | null>, ts = 1_000n): TraceRecord => ({ comm: 'app', tid: pid, tgid: pid, cpu: 0, timestampNs: ts, event, location: '0x7f00 <- 0x7f01', fields });

test('listRecord: names up to the first null field, q<k> basenames, n = names read', () => {
  const { synth, names, more } = listRecord(rec('musl_dlopen_deps', 5, { handle: '0x7f10', p0: '/opt/plug/libp.so', p1: 'libbare.so', p2: '', p3: null, p4: '/never/read.so', more: '0x0' }));
  assert.deepEqual(names, ['/opt/plug/libp.so', 'libbare.so', '']);
  assert.equal(more, false);
  assert.equal(synth.fields.n, '3');
  assert.equal(synth.fields.q0, 'libp.so');
  assert.equal(synth.fields.q1, 'libbare.so');
  assert.equal(synth.fields.q2, '');
  assert.equal(synth.fields.q3, undefined, 'nothing past the first unreadable entry');
  assert.equal(synth.fields.handle, '0x7f10', 'the record\'s other fields are kept');
});

test('listRecord: more counts only when every p<k> of the probe was read and it is non-zero', () => {
  const full: Record<string, string | null> = {};
  for (let k = 0; k < 7; k++) full[`p${k}`] = `/l/l${k}.so`;
  assert.equal(listRecord(rec('e', 1, { ...full, more: '0x55d0c0a01000' })).more, true, 'all 7 read, next pointer set: the list goes on');
  assert.equal(listRecord(rec('e', 1, { ...full, more: '0x0' })).more, false);
  assert.equal(listRecord(rec('e', 1, { ...full, more: '0' })).more, false);
  assert.equal(listRecord(rec('e', 1, { ...full, more: null })).more, false);
  assert.equal(listRecord(rec('e', 1, { ...full })).more, false, 'no more field');
  // The chain hit NULL at p5: the kernel leaves stale bytes in the integer slot.
  assert.equal(listRecord(rec('e', 1, { p0: '/a', p1: '/b', p2: null, p3: null, p4: null, p5: null, p6: null, more: '0x3638782f62696c2f' })).more, false);
  assert.equal(listRecord(rec('e', 1, { p0: null, more: '0x1234' })).more, false, 'nothing read at all');
});

test('muslMechanism applies to a musl loader set and is the one the selector picks; not to glibc', async () => {
  const set = muslSet();
  assert.equal(set.dir, '/usr/lib/x86_64-linux-musl');
  const a = await muslMechanism.applies(set, ctx);
  assert.equal(a.applies, true);
  assert.match(a.reason, /musl loader \(\/usr\/lib\/x86_64-linux-musl\/libc\.so\)/);
  let chosen: string | undefined;
  for (const m of MECHANISMS.slice(0, MECHANISMS.indexOf(muslMechanism) + 1)) {
    if ((await m.applies(set, ctx)).applies) {
      chosen = m.name;
      break;
    }
  }
  assert.equal(chosen, 'musl-lists', 'no mechanism before it takes the set');
  const glibc = groupLoaderSets([{ ...STATE, event: 'loader_state', path: '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', fetch: [{ name: 'state', arg: '@+0x34130:s32' }] }])[0]!;
  assert.equal((await muslMechanism.applies(glibc, ctx)).applies, false);
  const dlopenOnly = groupLoaderSets([ENTRY, RETURN])[0]!;
  assert.equal((await muslMechanism.applies(dlopenOnly, ctx)).applies, false, 'no musl_state probe: nothing to read the list from');
});

test('muslMechanism.plan produces exactly the probe lines `soload probes` prints for musl', async () => {
  const planned = await muslMechanism.plan(muslSet(), ctx);
  assert.deepEqual(planned.map((s) => buildProbeLine(GROUP, s)), RECORDED_LINES);
  for (const s of planned) for (const f of s.fetch) assert.ok(f.arg.length <= MAX_FETCH_ARG, `${s.event}: ${f.name}=${f.arg}`);
  const byEvent = new Map(planned.map((s) => [s.event, s]));
  const list = byEvent.get('musl_list')!;
  assert.equal(list.role, 'loader.list');
  assert.equal(list.filter, 'state == 0');
  assert.deepEqual(list.slice, { first: 0, size: 7 });
  for (let j = 1; j < 8; j++) {
    const d = byEvent.get(`musl_deps${j}`)!;
    assert.equal(d.role, 'loader.list');
    assert.equal(d.filter, `state == 0 && n > ${8 * j}`);
    assert.deepEqual(d.slice, { first: 8 * j, size: 8 });
  }
  assert.equal(byEvent.get('musl_dlopen_entry')!.role, 'dlopen.entry');
  assert.equal(byEvent.get('musl_dlopen_return')!.role, 'dlopen.return');
  const deps = byEvent.get('musl_dlopen_deps')!;
  assert.equal(deps.role, 'dlopen.list');
  assert.equal(deps.kind, 'return');
  assert.equal(deps.filter, 'handle != 0');
  assert.deepEqual(deps.slice, { first: 0, size: 9 });
  assert.equal(byEvent.has('musl_state'), false, 'the plain state probe is replaced by the list probe');
});

test('muslMechanism.plan keeps an event-name suffix (a second musl installation)', async () => {
  const set = groupLoaderSets([{ ...STATE, event: 'musl_state_2' }, { ...ENTRY, event: 'musl_dlopen_entry_2' }, { ...RETURN, event: 'musl_dlopen_return_2' }])[0]!;
  const events = (await muslMechanism.plan(set, ctx)).map((s) => s.event);
  assert.deepEqual(events, ['musl_list_2', ...[1, 2, 3, 4, 5, 6, 7].map((j) => `musl_deps${j}_2`), 'musl_dlopen_entry_2', 'musl_dlopen_return_2', 'musl_dlopen_deps_2']);
});

// ---- MuslHandler, fed records shaped as the planned probes print them ----

const APP = '/opt/app';
const LDSO = '/lib/ld-musl-x86_64.so.1';

async function planned(): Promise<Map<string, ProbeSpec>> {
  return new Map((await muslMechanism.plan(muslSet(), ctx)).map((s) => [s.event, s]));
}

function handlerFor(needed: Record<string, string[]>, over: Partial<HandlerOptions> = {}): { h: MuslHandler; recoverCalls: Array<[number, number]> } {
  const recoverCalls: Array<[number, number]> = [];
  const opts: HandlerOptions = {
    reportExecutable: true,
    neededOf: (_pid, file) => needed[file] ?? [],
    canonical: (_pid, f) => f,
    initiallyLoaded: () => [],
    execOf: () => APP,
    listCapacity: 64,
    recoverList: (pid, from) => {
      recoverCalls.push([pid, from]);
      return [];
    },
    ...over,
  };
  return { h: muslMechanism.createHandler(muslSet(), opts) as MuslHandler, recoverCalls };
}

/** A list record with every field the probe prints (null where the kernel printed (fault)). */
function listFields(chain: Array<string | null>, more: string, n: number, deps: Array<string | null>): Record<string, string | null> {
  const f: Record<string, string | null> = { state: '0', comm: 'app' };
  for (let k = 0; k < 7; k++) f[`p${k}`] = chain[k] ?? null;
  f.more = more;
  f.n = String(n);
  for (let k = 0; k < 8; k++) f[`d${k}`] = deps[k] ?? null;
  return f;
}

function depsSliceFields(n: number, deps: Array<string | null>): Record<string, string | null> {
  const f: Record<string, string | null> = { state: '0', n: String(n) };
  for (let k = 0; k < 8; k++) f[`d${k}`] = deps[k] ?? null;
  return f;
}

const summary = (evs: LoadEvent[]) => evs.map((e) => [e.method, e.path, e.requestedName]);

test('MuslHandler: a start-up hit as it arrives — executable, preload, needed, interpreter; stale `more` bytes are no truncation', async () => {
  const probes = await planned();
  const { h, recoverCalls } = handlerFor({ [APP]: ['liba.so', 'libc.so'] });
  const list = probes.get('musl_list')!;
  const fields = listFields([APP, '/opt/libpre.so', '/opt/liba.so', LDSO, ''], '0x3638782f62696c2f', 3, ['/opt/libpre.so', '/opt/liba.so', LDSO]);
  const evs = h.handle('loader.list', rec('musl_list', 300, fields, 5_000n), list);
  assert.deepEqual(summary(evs), [
    ['executable', APP, undefined],
    ['preload', '/opt/libpre.so', 'libpre.so'],
    ['needed', '/opt/liba.so', 'liba.so'],
    ['interpreter', LDSO, 'ld-musl-x86_64.so.1'],
  ]);
  assert.deepEqual(evs[1], { timestampNs: 5_000n, pid: 300, tid: 300, comm: 'app', result: 'ok', probe: 'musl_list', method: 'preload', path: '/opt/libpre.so', requestedName: 'libpre.so' });
  assert.deepEqual(recoverCalls, [], 'the chain ended at p5: nothing to recover');
  assert.equal(h.stats().listTruncated, 0);
  // A second RT_CONSISTENT (the first dlopen's) with the same list reports nothing again.
  assert.deepEqual(h.handle('loader.list', rec('musl_list', 300, fields, 6_000n), list), []);
});

test('MuslHandler: n=12 direct deps — nothing until deps slice 1 is in, then every object exactly once', async () => {
  const probes = await planned();
  const libs = Array.from({ length: 10 }, (_, i) => `/usr/lib/libl${i}.so`);
  const { h, recoverCalls } = handlerFor({ [APP]: [...libs.map((l) => l.slice(l.lastIndexOf('/') + 1)), 'libc.so'] });
  const direct = ['/opt/libpre.so', ...libs, LDSO]; // musl's deps array: preloads, then DT_NEEDED in order
  assert.equal(direct.length, 12);
  const chain = [APP, '/opt/libpre.so', ...libs.slice(0, 5)]; // 7 entries: the walk's reach
  const first = h.handle('loader.list', rec('musl_list', 400, listFields(chain, '0x55d0c0a03000', 12, direct.slice(0, 8))), probes.get('musl_list')!);
  assert.deepEqual(first, [], 'deps[8..12) still to come');
  assert.equal(h.stats().tracked, 0);
  const deps1 = probes.get('musl_deps1')!;
  assert.deepEqual(deps1.slice, { first: 8, size: 8 });
  const evs = h.handle('loader.list', rec('musl_deps1', 400, depsSliceFields(12, direct.slice(8))), deps1);
  assert.deepEqual(summary(evs), [
    ['executable', APP, undefined],
    ['preload', '/opt/libpre.so', 'libpre.so'],
    ...libs.map((l) => ['needed', l, l.slice(l.lastIndexOf('/') + 1)]),
    ['interpreter', LDSO, 'ld-musl-x86_64.so.1'],
  ]);
  assert.equal(new Set(evs.map((e) => e.path)).size, evs.length, 'each object once');
  assert.deepEqual(recoverCalls, [[400, 7]], 'the walk was cut at 7 entries with more to come: the rest is read from memory');
});

test('MuslHandler: deps slices of another process do not complete this one', async () => {
  const probes = await planned();
  const libs = Array.from({ length: 9 }, (_, i) => `/usr/lib/libm${i}.so`);
  const { h } = handlerFor({ [APP]: libs.map((l) => l.slice(l.lastIndexOf('/') + 1)) });
  assert.deepEqual(h.handle('loader.list', rec('musl_list', 10, listFields([APP, ...libs.slice(0, 6)], '0x55d0c0a03000', 9, libs.slice(0, 8))), probes.get('musl_list')!), []);
  assert.deepEqual(h.handle('loader.list', rec('musl_deps1', 11, depsSliceFields(9, libs.slice(8))), probes.get('musl_deps1')!), [], 'pid 11 has no start-up hit');
  const evs = h.handle('loader.list', rec('musl_deps1', 10, depsSliceFields(9, libs.slice(8))), probes.get('musl_deps1')!);
  assert.equal(evs.filter((e) => e.method === 'needed').length, 9);
});

test('MuslHandler: dlopen entry + return + deps → dlopen of the target and needed (loadedBy) for its new dependency', async () => {
  const probes = await planned();
  const { h } = handlerFor({ [APP]: ['liba.so', 'libc.so'], '/opt/plugins/libplug.so': ['libdep.so', 'liba.so'] });
  h.handle('loader.list', rec('musl_list', 500, listFields([APP, '/opt/liba.so', LDSO, ''], '0x0', 2, ['/opt/liba.so', LDSO])), probes.get('musl_list')!);
  assert.deepEqual(h.handle('dlopen.entry', rec('musl_dlopen_entry', 500, { name: 'libplug.so', flags: '0x102', comm: 'app' }, 10_000n), probes.get('musl_dlopen_entry')!), []);
  const ret = h.handle('dlopen.return', rec('musl_dlopen_return', 500, { handle: '0x7f3c2a1b4000', comm: 'app', path: '/opt/plugins/libplug.so' }, 11_000n), probes.get('musl_dlopen_return')!);
  assert.deepEqual(summary(ret), [['dlopen', '/opt/plugins/libplug.so', 'libplug.so']]);
  assert.equal(ret[0]!.flags, 0x102);
  assert.equal(ret[0]!.result, 'ok');
  // The list from the new dso on: the target, its new dependency, then (already loaded long ago) nothing.
  const depsRec = rec('musl_dlopen_deps', 500, { handle: '0x7f3c2a1b4000', p0: '/opt/plugins/libplug.so', p1: '/opt/plugins/libdep.so', p2: null, p3: null, p4: null, p5: null, p6: null, p7: null, p8: null, more: '0x2f6f70742f706c75' }, 11_000n);
  const deps = h.handle('dlopen.list', depsRec, probes.get('musl_dlopen_deps')!);
  assert.deepEqual(deps.map((e) => [e.method, e.path, e.requestedName, e.loadedBy]), [['needed', '/opt/plugins/libdep.so', 'libdep.so', '/opt/plugins/libplug.so']]);
  assert.equal(h.stats().listTruncated, 0, 'stale bytes after a NULL next are no truncation');
});

test('MuslHandler: dlopen of an already-loaded object reports nothing (return nor deps)', async () => {
  const probes = await planned();
  const { h } = handlerFor({ [APP]: ['liba.so', 'libc.so'] });
  h.handle('loader.list', rec('musl_list', 600, listFields([APP, '/opt/liba.so', LDSO, ''], '0x0', 2, ['/opt/liba.so', LDSO])), probes.get('musl_list')!);
  h.handle('dlopen.entry', rec('musl_dlopen_entry', 600, { name: 'liba.so', flags: '0x1', comm: 'app' }), probes.get('musl_dlopen_entry')!);
  assert.deepEqual(h.handle('dlopen.return', rec('musl_dlopen_return', 600, { handle: '0x7f3c2a1b5000', comm: 'app', path: '/opt/liba.so' }), probes.get('musl_dlopen_return')!), []);
  const depsRec = rec('musl_dlopen_deps', 600, { handle: '0x7f3c2a1b5000', p0: '/opt/liba.so', p1: LDSO, p2: '', p3: null, p4: null, p5: null, p6: null, p7: null, p8: null, more: '0x0' });
  assert.deepEqual(h.handle('dlopen.list', depsRec, probes.get('musl_dlopen_deps')!), []);
  assert.equal(h.stats().dlopenAlreadyLoaded, 1);
});

test('MuslHandler: a failed dlopen is reported as failed with the requested name', async () => {
  const probes = await planned();
  const { h } = handlerFor({ [APP]: [] });
  h.handle('dlopen.entry', rec('musl_dlopen_entry', 650, { name: 'libnope.so', flags: '0x2', comm: 'app' }), probes.get('musl_dlopen_entry')!);
  const evs = h.handle('dlopen.return', rec('musl_dlopen_return', 650, { handle: '0x0', comm: 'app', path: null }), probes.get('musl_dlopen_return')!);
  assert.deepEqual(evs.map((e) => [e.method, e.result, e.requestedName, e.path]), [['dlopen', 'failed', 'libnope.so', undefined]]);
});

test('MuslHandler: dlopen(NULL) — the program\'s own dso, named like the program — reports nothing', async () => {
  const probes = await planned();
  const { h } = handlerFor({ [APP]: ['liba.so', 'libc.so'] });
  h.handle('loader.list', rec('musl_list', 700, listFields([APP, '/opt/libpre.so', '/opt/liba.so', LDSO, ''], '0x3638782f62696c2f', 3, ['/opt/libpre.so', '/opt/liba.so', LDSO])), probes.get('musl_list')!);
  h.handle('dlopen.entry', rec('musl_dlopen_entry', 700, { name: null, flags: '0x1', comm: 'app' }), probes.get('musl_dlopen_entry')!);
  assert.deepEqual(h.handle('dlopen.return', rec('musl_dlopen_return', 700, { handle: '0x7f3c2a1b6000', comm: 'app', path: APP }), probes.get('musl_dlopen_return')!), []);
  const depsRec = rec('musl_dlopen_deps', 700, { handle: '0x7f3c2a1b6000', p0: APP, p1: '/opt/libpre.so', p2: '/opt/liba.so', p3: LDSO, p4: '', p5: null, p6: null, p7: null, p8: null, more: '0x3638782f62696c2f' });
  assert.deepEqual(h.handle('dlopen.list', depsRec, probes.get('musl_dlopen_deps')!), []);
  // The pending entry was consumed: a later real dlopen on that thread pairs with its own entry.
  h.handle('dlopen.entry', rec('musl_dlopen_entry', 700, { name: 'libz.so.1', flags: '0x1', comm: 'app' }), probes.get('musl_dlopen_entry')!);
  const later = h.handle('dlopen.return', rec('musl_dlopen_return', 700, { handle: '0x7f3c2a1b7000', comm: 'app', path: '/usr/lib/libz.so.1' }), probes.get('musl_dlopen_return')!);
  assert.deepEqual(summary(later), [['dlopen', '/usr/lib/libz.so.1', 'libz.so.1']]);
});

test('MuslHandler: a complete 7-name chain with more != 0 asks recoverList for the rest; only new objects are added', async () => {
  const probes = await planned();
  const chain = [APP, '/usr/lib/liba.so', '/usr/lib/libb.so', '/usr/lib/libc1.so', '/usr/lib/libad.so', '/usr/lib/libbd.so', '/usr/lib/libcd.so'];
  const rest: LoadEvent[] = ['/usr/lib/libcd.so', '/usr/lib/libtail.so', '/usr/lib/liba.so'].map((p) => ({ timestampNs: 9n, pid: 800, tid: 800, comm: 'app', method: 'needed', path: p, result: 'ok', probe: 'recovered', recovered: true }));
  const calls: Array<[number, number]> = [];
  const { h } = handlerFor(
    { [APP]: ['liba.so', 'libb.so', 'libc1.so'], '/usr/lib/liba.so': ['libad.so'], '/usr/lib/libb.so': ['libbd.so'], '/usr/lib/libc1.so': ['libcd.so', 'libtail.so'] },
    { recoverList: (pid, from) => (calls.push([pid, from]), rest) },
  );
  const evs = h.handle('loader.list', rec('musl_list', 800, listFields(chain, '0x55d0c0a05000', 3, chain.slice(1, 4))), probes.get('musl_list')!);
  assert.deepEqual(calls, [[800, 7]]);
  assert.deepEqual(
    evs.map((e) => [e.method, e.path]),
    [['executable', APP], ...chain.slice(1).map((p) => ['needed', p]), ['needed', '/usr/lib/libtail.so']],
    'libcd.so and liba.so were on the probe\'s list already: not reported twice',
  );
  assert.equal(h.stats().listTruncated, 1);
});

test('MuslHandler: onExec drops a half-collected start-up (the next image starts over)', async () => {
  const probes = await planned();
  const libs = Array.from({ length: 9 }, (_, i) => `/usr/lib/libx${i}.so`);
  const { h } = handlerFor({ [APP]: libs.map((l) => l.slice(l.lastIndexOf('/') + 1)) });
  h.handle('loader.list', rec('musl_list', 900, listFields([APP, ...libs.slice(0, 6)], '0x55d0c0a03000', 9, libs.slice(0, 8))), probes.get('musl_list')!);
  h.onExec(900);
  assert.deepEqual(h.handle('loader.list', rec('musl_deps1', 900, depsSliceFields(9, libs.slice(8))), probes.get('musl_deps1')!), [], 'a slice of the old image completes nothing');
});

test('listRecord: a walk past the last dso keeps stale bytes from the previous event — strings too — so the end is the first zero address', () => {
  // Recorded: musl 1.2.3, a program with one DT_NEEDED library; p4..p6 repeat what an earlier
  // event left in the per-CPU buffer although dso 4 does not exist.
  const rec = {
    comm: 'prog', tid: 9, tgid: 9, cpu: 1, timestampNs: 1n, event: 'musl_list', location: '',
    fields: {
      state: '0', comm: 'prog',
      x0: '0x5620b466c860', p0: '/tmp/mt/prog', x1: '0x7f5ce43a1b60', p1: '/tmp/mt/liba.so', x2: '0x7f5ce43a2f40', p2: '/lib/ld-musl-x86_64.so.1',
      x3: '0x7f5ce43a2c80', p3: '', x4: '0x0', p4: '/tmp/mt/liba.so', x5: '0x7f5ce43a1b60', p5: '/tmp/mt/liba.so', x6: '0x7f5ce43a1b60', p6: '/tmp/mt/liba.so',
      more: '0x28382b28302b3d36',
    },
  };
  const { names, more } = listRecord(rec);
  assert.deepEqual(names, ['/tmp/mt/prog', '/tmp/mt/liba.so', '/lib/ld-musl-x86_64.so.1', '']);
  assert.equal(more, false, 'the walk ended inside the probe\'s reach');
});

test('MuslHandler: a recorded 42-library start-up (musl 1.2.3), its slices in the reverse order the kernel delivers them, is reported once, complete', () => {
  const fixtures = path.join(__dirname, '..', '..', '..', '..', 'test', 'fixtures');
  const probeLines = fs.readFileSync(path.join(fixtures, 'musl-42-libs.probes'), 'utf8').trim().split('\n');
  const specs = probeLines.map((l) => {
    const [head, , ...args] = l.split(' ');
    const event = head!.split('/')[1]!;
    const j = /musl_deps(\d)/.exec(event);
    return { event, slice: { first: j ? 8 * Number(j[1]) : 0, size: 8 }, fetch: args.map((a) => ({ name: a.slice(0, a.indexOf('=')), arg: a.slice(a.indexOf('=') + 1) })) };
  });
  const schemas = new Map(specs.map((s) => [s.event, { fields: s.fetch.map((f) => ({ name: f.name, string: /:ustring$/.test(f.arg) || f.arg === '$comm' })) }]));
  const records = fs.readFileSync(path.join(fixtures, 'musl-42-libs.trace'), 'utf8').split('\n').filter(Boolean).map((l) => {
    const r = parseTraceLine(l, schemas);
    assert.ok(r.ok, l);
    return r.record;
  });
  for (const order of [records, [...records].reverse()]) {
    const h = new MuslHandler({ dir: '/usr/lib/x86_64-linux-musl', files: [], specs: [] }, { reportExecutable: true, neededOf: () => [], canonical: (_p, f) => f, initiallyLoaded: () => [], execOf: () => '/tmp/m42/many', listCapacity: 128 });
    const out = order.flatMap((r) => h.handle('loader.list', r, specs.find((s) => s.event === r.event) as unknown as ProbeSpec));
    const libs = out.filter((e) => /libm\d\d\.so$/.test(e.path ?? ''));
    assert.equal(libs.length, 42, 'all 42 direct dependencies');
    assert.equal(new Set(libs.map((e) => e.path)).size, 42, 'each once');
    assert.deepEqual(out.filter((e) => e.method === 'interpreter').map((e) => e.path), ['/lib/ld-musl-x86_64.so.1']);
  }
});
