import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ldCacheFlagsFor, ldCacheFlagsLabel, parseLdCache } from '../../../src/elf/ldcache';

/** test/fixtures/ldcache, found from both the sources and the compiled tests (dist/test/...). */
const FIXTURES = ((): string => {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'test', 'fixtures', 'ldcache');
    if (fs.existsSync(path.join(candidate, 'README.md'))) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`test/fixtures/ldcache not found above ${__dirname}`);
  }
})();
const recorded = fs.readFileSync(path.join(FIXTURES, 'debian12-x86_64.ld.so.cache'));
const X86_64 = ldCacheFlagsFor('x86_64', 64)!;

interface Lib {
  name: string;
  path: string;
  flags?: number;
  hwcap?: bigint;
}

/**
 * A cache as ldconfig lays it out: the new table alone (strings indexed from the file start), the
 * old table alone, or both (new table 8-aligned after the old entries, strings indexed from it).
 */
function build(libs: Lib[], opts: { format?: 'new' | 'old' | 'old+new'; be?: boolean; endianFlag?: number; generator?: string; hwcaps?: string[] } = {}): Buffer {
  const format = opts.format ?? 'new';
  const le = !opts.be;
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    if (le) b.writeUInt32LE(v >>> 0);
    else b.writeUInt32BE(v >>> 0);
    return b;
  };
  const u64 = (v: bigint) => {
    const b = Buffer.alloc(8);
    if (le) b.writeBigUInt64LE(v);
    else b.writeBigUInt64BE(v);
    return b;
  };
  const oldSize = format === 'new' ? 0 : 16 + libs.length * 12;
  const oldPad = format === 'old+new' ? (8 - (oldSize % 8)) % 8 : 0;
  const newAt = oldSize + oldPad;
  const newSize = format === 'old' ? 0 : 48 + libs.length * 24;
  // String table follows everything; new offsets are relative to the new header, old ones to the
  // end of the old entries.
  const strings: Buffer[] = [];
  let strLen = 0;
  const strAt = newAt + newSize;
  const add = (s: string): number => {
    const at = strAt + strLen;
    const b = Buffer.from(s + '\0');
    strings.push(b);
    strLen += b.length;
    return at;
  };
  const offs = libs.map((l) => ({ key: add(l.name), value: add(l.path) }));
  const hwcapIdx = (opts.hwcaps ?? []).map(add);
  const genAt = opts.generator === undefined ? 0 : add(opts.generator);
  const parts: Buffer[] = [];
  if (format !== 'new') {
    parts.push(Buffer.from('ld.so-1.7.0\0'), u32(libs.length));
    libs.forEach((l, i) => parts.push(u32(l.flags ?? 0x303), u32(offs[i]!.key - oldSize), u32(offs[i]!.value - oldSize)));
    parts.push(Buffer.alloc(oldPad));
  }
  let extAt = 0;
  const tail: Buffer[] = [];
  if (format !== 'old') {
    const end = strAt + strLen;
    const extTables = hwcapIdx.length ? Buffer.concat(hwcapIdx.map((i) => u32(i))) : Buffer.alloc(0);
    if (opts.generator !== undefined || hwcapIdx.length) {
      extAt = Math.ceil(end / 4) * 4;
      const sections: Buffer[] = [];
      const count = (opts.generator !== undefined ? 1 : 0) + (hwcapIdx.length ? 1 : 0);
      const dataAt = extAt + 8 + count * 16;
      if (opts.generator !== undefined) sections.push(u32(0), u32(0), u32(genAt), u32(Buffer.byteLength(opts.generator)));
      if (hwcapIdx.length) sections.push(u32(1), u32(0), u32(dataAt), u32(extTables.length));
      tail.push(Buffer.alloc(extAt - end), u32(0xeaa42174), u32(count), ...sections, extTables);
    }
    const header = Buffer.alloc(48);
    header.write('glibc-ld.so.cache1.1', 0, 'latin1');
    u32(libs.length).copy(header, 20);
    u32(strLen).copy(header, 24);
    header[28] = opts.endianFlag ?? (le ? 2 : 3);
    u32(extAt).copy(header, 32);
    parts.push(header);
    libs.forEach((l, i) => parts.push(u32(l.flags ?? 0x303), u32(offs[i]!.key - newAt), u32(offs[i]!.value - newAt), u32(0), u64(l.hwcap ?? 0n)));
  }
  return Buffer.concat([...parts, ...strings, ...tail]);
}

test("the recorded Debian 12 cache: every entry as `ldconfig -p` printed it, in order", () => {
  const cache = parseLdCache(recorded);
  assert.equal(cache.format, 'new');
  assert.deepEqual(cache.problems, []);
  assert.match(cache.generator ?? '', /^ldconfig \(Debian GLIBC 2\.36-9\+deb12u\d+\) stable release version 2\.36/);
  const lines = fs.readFileSync(path.join(FIXTURES, 'debian12-x86_64.ldconfig-p.txt'), 'utf8').split('\n');
  assert.match(lines[0]!, /^526 libs found in cache/);
  const printed = lines.slice(1).filter((l) => l.startsWith('\t'));
  assert.equal(cache.entries.length, 526);
  assert.deepEqual(
    cache.entries.map((e) => `\t${e.name} (${ldCacheFlagsLabel(e.flags)}${e.hwcaps ? `, hwcap: "${e.hwcaps}"` : ''}) => ${e.path}`),
    printed,
  );
});

test('lookup on the recorded cache: the paths ldconfig recorded, filtered by ABI', () => {
  const cache = parseLdCache(recorded);
  assert.deepEqual(cache.lookup('libc.so.6', X86_64), ['/lib/x86_64-linux-gnu/libc.so.6']);
  assert.deepEqual(cache.lookup('libz.so.1', X86_64), ['/lib/x86_64-linux-gnu/libz.so.1']);
  assert.deepEqual(cache.lookup('ld-linux-x86-64.so.2'), ['/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2']);
  assert.deepEqual(cache.lookup('ld-musl-x86_64.so.1', X86_64), ['/lib/ld-musl-x86_64.so.1']);
  assert.deepEqual(cache.lookup('libc.so.6', ldCacheFlagsFor('i386', 32)), [], 'no i386 libraries on this host');
  assert.deepEqual(cache.lookup('libnothere.so.1'), []);
  assert.deepEqual(cache.entriesFor('libc.so.6', 0x303), [{ name: 'libc.so.6', path: '/lib/x86_64-linux-gnu/libc.so.6', flags: 0x303, hwcap: 0n }]);
});

test('names compare as _dl_cache_libcmp does: digit runs by value', () => {
  const cache = parseLdCache(recorded);
  assert.deepEqual(cache.lookup('libz.so.01'), ['/lib/x86_64-linux-gnu/libz.so.1']);
  assert.deepEqual(cache.lookup('libc.so.06', X86_64), ['/lib/x86_64-linux-gnu/libc.so.6']);
  assert.deepEqual(cache.lookup('libc.so.60'), []);
  assert.deepEqual(cache.lookup('libC.so.6'), []);
});

test('new format: flags, glibc-hwcaps entries named through the extension section, generator', () => {
  const ext = 1n << 62n;
  const buf = build(
    [
      { name: 'libfoo.so.1', path: '/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libfoo.so.1', hwcap: ext | 1n | (3n << 32n) },
      { name: 'libfoo.so.1', path: '/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v2/libfoo.so.1', hwcap: ext | 0n },
      { name: 'libfoo.so.1', path: '/usr/lib/x86_64-linux-gnu/libfoo.so.1' },
      { name: 'libfoo.so.1', path: '/usr/lib/i386-linux-gnu/libfoo.so.1', flags: 0x0003 },
      { name: 'libbar.so', path: '/usr/lib/libbar.so', flags: 0x0001 },
    ],
    { generator: 'ldconfig (test) 2.99', hwcaps: ['x86-64-v2', 'x86-64-v3'] },
  );
  const cache = parseLdCache(buf);
  assert.equal(cache.format, 'new');
  assert.equal(cache.generator, 'ldconfig (test) 2.99');
  assert.deepEqual(cache.problems, []);
  assert.deepEqual(
    cache.entriesFor('libfoo.so.1').map((e) => e.hwcaps),
    ['x86-64-v3', 'x86-64-v2', undefined, undefined],
  );
  assert.deepEqual(cache.lookup('libfoo.so.1', X86_64), [
    '/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libfoo.so.1',
    '/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v2/libfoo.so.1',
    '/usr/lib/x86_64-linux-gnu/libfoo.so.1',
  ]);
  assert.deepEqual(cache.lookup('libfoo.so.1', ldCacheFlagsFor('i386', 32)), ['/usr/lib/i386-linux-gnu/libfoo.so.1']);
  assert.deepEqual(cache.lookup('libbar.so', ldCacheFlagsFor('i386', 32)), ['/usr/lib/libbar.so'], 'the generic check also takes plain ELF entries');
  assert.deepEqual(cache.lookup('libbar.so', X86_64), []);
});

test('big-endian new format (flags byte says so) reads the same', () => {
  const libs = [{ name: 'libz.so.1', path: '/lib/libz.so.1', flags: 0x0a03 }];
  const cache = parseLdCache(build(libs, { be: true }));
  assert.deepEqual(cache.lookup('libz.so.1', ldCacheFlagsFor('aarch64', 64)), ['/lib/libz.so.1']);
});

test('old format alone, and the new table embedded after the old one (older ldconfig compat format)', () => {
  const libs = [
    { name: 'libz.so.1', path: '/lib/x86_64-linux-gnu/libz.so.1' },
    { name: 'libm.so.6', path: '/lib/x86_64-linux-gnu/libm.so.6' },
    { name: 'libc.so.6', path: '/lib/x86_64-linux-gnu/libc.so.6' },
  ];
  const old = parseLdCache(build(libs, { format: 'old' }));
  assert.equal(old.format, 'old');
  assert.deepEqual(old.lookup('libm.so.6', X86_64), ['/lib/x86_64-linux-gnu/libm.so.6']);
  assert.deepEqual(old.entries.map((e) => e.name), ['libz.so.1', 'libm.so.6', 'libc.so.6']);
  for (const n of [3, 4]) {
    const both = parseLdCache(build(libs.slice(0, n), { format: 'old+new', generator: 'ldconfig (compat)' }));
    assert.equal(both.format, 'old+new', `${n} old entries`);
    assert.equal(both.generator, 'ldconfig (compat)');
    assert.deepEqual(both.lookup('libc.so.6', X86_64), ['/lib/x86_64-linux-gnu/libc.so.6']);
  }
});

test('bad input throws an Error starting with ld.so.cache:, quickly and without huge allocations', () => {
  const throwsCache = (b: Buffer, re: RegExp) => assert.throws(() => parseLdCache(b), (e: unknown) => e instanceof Error && e.message.startsWith('ld.so.cache:') && re.test(e.message));
  throwsCache(Buffer.alloc(0), /truncated/);
  throwsCache(Buffer.from('glibc'), /truncated/);
  throwsCache(Buffer.from('this is not a cache file at all, just text'), /unknown magic/);
  throwsCache(recorded.subarray(0, 30), /header truncated/);
  throwsCache(recorded.subarray(0, 200), /entries do not fit/);
  throwsCache(recorded.subarray(0, 48 + 526 * 24 + 10), /outside the file|not terminated/);

  const absurd = Buffer.from(recorded);
  absurd.writeUInt32LE(0xffffffff, 20);
  const t0 = Date.now();
  throwsCache(absurd, /4294967295 entries do not fit/);
  assert.ok(Date.now() - t0 < 100);

  const oldAbsurd = build([{ name: 'a', path: '/a' }], { format: 'old' });
  oldAbsurd.writeUInt32LE(0x7fffffff, 12);
  throwsCache(oldAbsurd, /old-format entries do not fit/);

  const badKey = build([{ name: 'libz.so.1', path: '/lib/libz.so.1' }]);
  badKey.writeUInt32LE(badKey.length + 5, 48 + 4);
  throwsCache(badKey, /entry 0 name string offset .* outside the file/);

  const unterminated = build([{ name: 'libz.so.1', path: '/lib/libz.so.1' }]);
  throwsCache(unterminated.subarray(0, unterminated.length - 1), /entry 0 path string .* not terminated/);

  throwsCache(build([{ name: 'a', path: '/a' }], { endianFlag: 1 }), /invalid/);
});

test('a malformed extension section is a problem, not a failure: ld.so still uses the entries', () => {
  const buf = build([{ name: 'libz.so.1', path: '/lib/libz.so.1' }], { generator: 'g' });
  const extAt = buf.readUInt32LE(32);
  const wrongMagic = Buffer.from(buf);
  wrongMagic.writeUInt32LE(0x12345678, extAt);
  const c1 = parseLdCache(wrongMagic);
  assert.deepEqual(c1.lookup('libz.so.1'), ['/lib/libz.so.1']);
  assert.equal(c1.generator, undefined);
  assert.match(c1.problems[0]!, /wrong magic/);

  const outside = Buffer.from(buf);
  outside.writeUInt32LE(buf.length + 64, 32);
  assert.match(parseLdCache(outside).problems[0]!, /outside the file/);

  const manySections = Buffer.from(buf);
  manySections.writeUInt32LE(0xffffffff, extAt + 4);
  assert.match(parseLdCache(manySections).problems[0]!, /do not fit/);
});

test('ldCacheFlagsFor: the flags each ABI loader accepts; labels as ldconfig -p prints them', () => {
  assert.deepEqual(ldCacheFlagsFor('x86_64', 64), [0x303]);
  assert.deepEqual(ldCacheFlagsFor('x86_64', 32), [0x803]);
  assert.deepEqual(ldCacheFlagsFor('aarch64', 64), [0xa03]);
  assert.deepEqual(ldCacheFlagsFor('i386', 32), [0x003, 0x001]);
  assert.equal(ldCacheFlagsFor('i386', 64), undefined);
  assert.equal(ldCacheFlagsFor('aarch64', 32), undefined);
  assert.equal(ldCacheFlagsLabel(0x303), 'libc6,x86-64');
  assert.equal(ldCacheFlagsLabel(0x803), 'libc6,x32');
  assert.equal(ldCacheFlagsLabel(0xa03), 'libc6,AArch64');
  assert.equal(ldCacheFlagsLabel(0x003), 'libc6');
});
