import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { classifyRecovered, readLoaderList, type ClassifyContext, type ListedObject } from '../../../src/capture/recover';
import { isMuslLoaderName } from '../../../src/mechanisms/musl';
import type { MemoryReader } from '../../../src/plan/calibrate';

const PAGE = 4096n;

/**
 * A process's memory as /proc/<pid>/mem serves it: mapped pages only; a read touching an unmapped
 * page fails as a whole (undefined), so a reader that reads past a string's page would lose it.
 */
class FakeMemory {
  private readonly pages = new Map<bigint, Buffer>();
  readonly reads: Array<[bigint, number]> = [];

  map(start: bigint, pages = 1): this {
    for (let i = 0n; i < BigInt(pages); i++) this.pages.set(start + i * PAGE, Buffer.alloc(Number(PAGE), 0xcc));
    return this;
  }

  write(at: bigint, data: Buffer): this {
    for (let i = 0; i < data.length; i++) {
      const a = at + BigInt(i);
      const page = this.pages.get(a - (a % PAGE));
      if (!page) throw new Error(`fixture writes to unmapped 0x${a.toString(16)}`);
      page[Number(a % PAGE)] = data[i]!;
    }
    return this;
  }

  ptr(at: bigint, value: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(value);
    return this.write(at, b);
  }

  str(at: bigint, s: string): this {
    return this.write(at, Buffer.from(s + '\0', 'utf8'));
  }

  readonly read: MemoryReader = (address, length) => {
    this.reads.push([address, length]);
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) {
      const a = address + BigInt(i);
      const page = this.pages.get(a - (a % PAGE));
      if (!page) return undefined;
      out[i] = page[Number(a % PAGE)]!;
    }
    return out;
  };
}

const BASE = 0x7f1234560000n; // the loader's load base
const HEAP = 0x55aa00000000n; // where the list entries live

/** Writes a list entry (name pointer at +8, next at +24, as glibc's link_map and musl's dso). */
function entry(m: FakeMemory, at: bigint, namePtr: bigint, next: bigint): void {
  m.ptr(at + 8n, namePtr).ptr(at + 24n, next);
}

/** Three entries: the program (""), libc, ld.so, names in a strings page. */
function glibcList(m: FakeMemory, head: bigint): void {
  const names = HEAP + 0x10000n;
  m.map(names);
  m.str(names, '').str(names + 0x10n, '/lib/x86_64-linux-gnu/libc.so.6').str(names + 0x40n, '/lib64/ld-linux-x86-64.so.2');
  entry(m, head, names, head + 0x400n);
  entry(m, head + 0x400n, names + 0x10n, head + 0x800n);
  entry(m, head + 0x800n, names + 0x40n, 0n);
}

test('readLoaderList, glibc: _r_debug is the structure, r_map at +8; walks name/next to NULL', () => {
  const m = new FakeMemory().map(BASE + 0x3a000n).map(HEAP);
  const rDebug = 0x3a118;
  m.ptr(BASE + BigInt(rDebug) + 8n, HEAP + 0x100n);
  glibcList(m, HEAP + 0x100n);
  assert.deepEqual(readLoaderList(m.read, BASE, { vaddr: rDebug, indirect: false }), [{ name: '' }, { name: '/lib/x86_64-linux-gnu/libc.so.6' }, { name: '/lib64/ld-linux-x86-64.so.2' }]);
});

test('readLoaderList, musl: _dl_debug_addr holds a pointer to struct debug, whose +8 is the head', () => {
  const m = new FakeMemory().map(BASE + 0xac000n).map(HEAP).map(HEAP + 0x20000n);
  const debug = HEAP + 0x20000n;
  m.ptr(BASE + 0xac3d8n, debug);
  m.ptr(debug + 8n, HEAP + 0x100n);
  glibcList(m, HEAP + 0x100n);
  // The decoy: reading the symbol as the structure itself would find this "head" instead.
  m.ptr(BASE + 0xac3d8n + 8n, HEAP + 0x800n);
  const got = readLoaderList(m.read, BASE, { vaddr: 0xac3d8, indirect: true });
  assert.deepEqual(got.map((o) => o.name), ['', '/lib/x86_64-linux-gnu/libc.so.6', '/lib64/ld-linux-x86-64.so.2']);
  m.ptr(BASE + 0xac3d8n, 0n);
  assert.deepEqual(readLoaderList(m.read, BASE, { vaddr: 0xac3d8, indirect: true }), [], 'a NULL _dl_debug_addr: nothing to read');
  assert.deepEqual(readLoaderList(m.read, BASE + 0x100000n, { vaddr: 0xac3d8, indirect: true }), [], 'unmapped anchor (wrong base, process gone)');
});

test('readLoaderList: a name ending 3 bytes before the end of its page, the next page unmapped, is read whole', () => {
  const m = new FakeMemory().map(BASE + 0x3a000n).map(HEAP);
  const namePage = HEAP + 0x30000n;
  m.map(namePage); // namePage + PAGE is not mapped
  const name = '/opt/vendor/lib/libsomething-with-a-long-name.so.1.2.3';
  const at = namePage + PAGE - 3n - BigInt(name.length) - 1n + 1n; // NUL at PAGE-3
  m.str(at, name);
  assert.equal(Number((at + BigInt(name.length)) % PAGE), Number(PAGE) - 3, 'fixture: NUL 3 bytes before the page end');
  m.ptr(BASE + 0x3a118n + 8n, HEAP + 0x100n);
  entry(m, HEAP + 0x100n, at, 0n);
  assert.deepEqual(readLoaderList(m.read, BASE, { vaddr: 0x3a118, indirect: false }), [{ name }]);
  assert.ok(m.reads.every(([a, n]) => (a % PAGE) + BigInt(n) <= PAGE), 'no read crosses a page boundary');
});

test('readLoaderList: a name crossing into the next mapped page is read across it', () => {
  const m = new FakeMemory().map(BASE + 0x3a000n).map(HEAP).map(HEAP + 0x40000n, 2);
  const name = '/usr/lib/x86_64-linux-gnu/libcrossing.so.7';
  const at = HEAP + 0x40000n + PAGE - 10n;
  m.str(at, name);
  m.ptr(BASE + 0x3a118n + 8n, HEAP + 0x100n);
  entry(m, HEAP + 0x100n, at, 0n);
  assert.deepEqual(readLoaderList(m.read, BASE, { vaddr: 0x3a118, indirect: false }), [{ name }]);
});

test('readLoaderList: a cycle in next pointers stops at the first entry seen again', () => {
  const m = new FakeMemory().map(BASE + 0x3a000n).map(HEAP).map(HEAP + 0x10000n);
  m.str(HEAP + 0x10000n, '/a.so').str(HEAP + 0x10010n, '/b.so').str(HEAP + 0x10020n, '/c.so');
  m.ptr(BASE + 0x3a118n + 8n, HEAP + 0x100n);
  entry(m, HEAP + 0x100n, HEAP + 0x10000n, HEAP + 0x200n);
  entry(m, HEAP + 0x200n, HEAP + 0x10010n, HEAP + 0x300n);
  entry(m, HEAP + 0x300n, HEAP + 0x10020n, HEAP + 0x200n); // back to b
  assert.deepEqual(readLoaderList(m.read, BASE, { vaddr: 0x3a118, indirect: false }).map((o) => o.name), ['/a.so', '/b.so', '/c.so']);
  entry(m, HEAP + 0x100n, HEAP + 0x10000n, HEAP + 0x100n); // a → a
  assert.deepEqual(readLoaderList(m.read, BASE, { vaddr: 0x3a118, indirect: false }).map((o) => o.name), ['/a.so']);
});

test('readLoaderList: NULL or unreadable name pointers give "", the walk goes on; an unreadable next ends it', () => {
  const m = new FakeMemory().map(BASE + 0x3a000n).map(HEAP).map(HEAP + 0x10000n);
  m.str(HEAP + 0x10000n, '/lib/libz.so.1');
  m.ptr(BASE + 0x3a118n + 8n, HEAP + 0x100n);
  entry(m, HEAP + 0x100n, 0n, HEAP + 0x200n);
  entry(m, HEAP + 0x200n, 0x1000n, HEAP + PAGE - 16n); // name in unmapped memory
  // The last entry straddles the end of the mapping: its name pointer (+8) is readable, its next (+24) is not.
  m.ptr(HEAP + PAGE - 16n + 8n, HEAP + 0x10000n);
  assert.deepEqual(readLoaderList(m.read, BASE, { vaddr: 0x3a118, indirect: false }), [{ name: '' }, { name: '' }, { name: '/lib/libz.so.1' }]);
  m.ptr(BASE + 0x3a118n + 8n, 0n);
  assert.deepEqual(readLoaderList(m.read, BASE, { vaddr: 0x3a118, indirect: false }), [], 'empty list (r_map NULL)');
});

test('readLoaderList: at most `max` entries', () => {
  const m = new FakeMemory().map(BASE + 0x3a000n).map(HEAP, 4);
  m.ptr(BASE + 0x3a118n + 8n, HEAP);
  for (let i = 0n; i < 100n; i++) entry(m, HEAP + i * 0x40n, 0n, HEAP + (i + 1n) * 0x40n);
  entry(m, HEAP + 100n * 0x40n, 0n, 0n);
  assert.equal(readLoaderList(m.read, BASE, { vaddr: 0x3a118, indirect: false }).length, 101);
  assert.equal(readLoaderList(m.read, BASE, { vaddr: 0x3a118, indirect: false }, 10).length, 10);
});

// ---- classifyRecovered ----

const list = (...names: string[]): ListedObject[] => names.map((name) => ({ name }));
const glibcCtx = (needed: Record<string, readonly string[] | undefined>): ClassifyContext => ({
  isLoader: (n) => path.basename(n) === 'ld-linux-x86-64.so.2',
  neededOf: (n) => needed[n],
});

test('classifyRecovered: program and vDSO left out, loader → interpreter, preload, needed (transitively), then dlopen and its deps', () => {
  const L = '/lib/x86_64-linux-gnu';
  const { loads, startupComplete } = classifyRecovered(
    list('', 'linux-vdso.so.1', '/opt/libpre.so', `${L}/liba.so.1`, `${L}/libc.so.6`, `${L}/libb.so.2`, '/lib64/ld-linux-x86-64.so.2', '/opt/plugins/libplug.so', '/opt/plugins/libplugdep.so'),
    glibcCtx({ '': ['liba.so.1', 'libc.so.6'], [`${L}/liba.so.1`]: ['libb.so.2', 'libc.so.6'], '/opt/plugins/libplug.so': ['libplugdep.so'] }),
  );
  assert.deepEqual(loads, [
    { method: 'preload', path: '/opt/libpre.so', requestedName: '/opt/libpre.so' },
    { method: 'needed', path: `${L}/liba.so.1`, requestedName: 'liba.so.1' },
    { method: 'needed', path: `${L}/libc.so.6`, requestedName: 'libc.so.6' },
    { method: 'needed', path: `${L}/libb.so.2`, requestedName: 'libb.so.2' },
    { method: 'interpreter', path: '/lib64/ld-linux-x86-64.so.2' },
    { method: 'dlopen', path: '/opt/plugins/libplug.so', requestedName: '/opt/plugins/libplug.so' },
    { method: 'needed', path: '/opt/plugins/libplugdep.so', requestedName: 'libplugdep.so' },
  ]);
  assert.equal(startupComplete, true);
});

test('classifyRecovered: an object nobody needs is preload only before the first needed one', () => {
  const { loads } = classifyRecovered(list('', '/p/one.so', '/p/two.so', '/l/liba.so', '/p/three.so'), glibcCtx({ '': ['liba.so'] }));
  assert.deepEqual(loads.map((l) => [l.method, l.path]), [['preload', '/p/one.so'], ['preload', '/p/two.so'], ['needed', '/l/liba.so'], ['dlopen', '/p/three.so']]);
});

test('classifyRecovered: musl — the program has a path (still left out), the vDSO is "", libc.so is the loader', () => {
  const { loads, startupComplete } = classifyRecovered(list('/opt/app', '/opt/libpre.so', '/opt/liba.so', '/lib/ld-musl-x86_64.so.1', ''), {
    isLoader: isMuslLoaderName,
    neededOf: (n) => (n === '' ? ['liba.so', 'libc.so'] : []),
  });
  assert.deepEqual(loads.map((l) => [l.method, l.path]), [['preload', '/opt/libpre.so'], ['needed', '/opt/liba.so'], ['interpreter', '/lib/ld-musl-x86_64.so.1']]);
  assert.equal(startupComplete, true);
});

test('classifyRecovered: start-up not complete while a DT_NEEDED object of the program is missing', () => {
  const ctx = glibcCtx({ '': ['liba.so.1', 'libc.so.6'] });
  assert.equal(classifyRecovered(list('', 'linux-vdso.so.1', '/opt/libpre.so', '/l/liba.so.1'), ctx).startupComplete, false);
  assert.equal(classifyRecovered(list('', '/l/liba.so.1', '/l/libc.so.6'), ctx).startupComplete, true);
  assert.equal(classifyRecovered(list(''), ctx).startupComplete, false, 'only the program: nothing loaded yet');
});

test('classifyRecovered: musl mid-start-up — the program needs libc.so and the loader is not on the list yet: not complete', () => {
  // musl links its own dso into the list when the first DT_NEEDED libc.so is resolved
  // (load_library → tail->next = &ldso), so a list read before that lacks it.
  const { loads, startupComplete } = classifyRecovered(list('/opt/app', '/opt/libpre.so', '/opt/liba.so'), {
    isLoader: isMuslLoaderName,
    neededOf: (n) => (n === '' ? ['liba.so', 'libc.so'] : []),
  });
  assert.deepEqual(loads.map((l) => l.method), ['preload', 'needed']);
  assert.equal(startupComplete, false, 'libc.so (the loader) is a DT_NEEDED entry of the program and not on the list');
});
