import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ErrorCodes, isSoloadError } from '../../../src/errors';
import { ElfSymbolResolver, PT_LOAD, parseElf } from '../../../src/elf';
import {
  FIXTURE_COUNTER,
  buildFixtures,
  readelfBuildId,
  readelfSegments,
  readelfSymbols,
  referenceOffset,
  run,
  tempDir,
} from './helpers';

const fx = buildFixtures();

test('every defined .dynsym symbol resolves to the vaddr and file offset readelf implies', () => {
  const r = new ElfSymbolResolver();
  const segs = readelfSegments(fx.lib);
  const syms = readelfSymbols(fx.lib).filter((s) => s.table === '.dynsym' && s.ndx !== 'UND' && s.ndx !== 'ABS' && s.type !== 'TLS');
  assert.ok(syms.length >= 9, `expected the fixture's exports, got ${syms.map((s) => s.name).join(',')}`);
  for (const s of syms) {
    const got = r.lookup(fx.lib, s.name);
    assert.equal(got.table, 'dynsym', s.name);
    assert.equal(got.vaddr, s.value, s.name);
    assert.equal(got.size, s.size, s.name);
    const expected = referenceOffset(segs, s.value);
    if (expected === undefined) {
      assert.throws(() => r.resolve(fx.lib, s.name), (e: unknown) => isSoloadError(e, ErrorCodes.SYMBOL_NOT_MAPPED), s.name);
    } else {
      assert.equal(r.resolve(fx.lib, s.name).fileOffset, expected, s.name);
    }
  }
});

test('nm -D agrees on the exported names and addresses', () => {
  const r = new ElfSymbolResolver();
  const lines = run('nm', ['-D', '--defined-only', fx.lib]).trim().split('\n');
  let checked = 0;
  for (const line of lines) {
    const [addr, kind, name] = line.trim().split(/\s+/);
    if (kind === 'A' || !name) continue; // version definition symbols (V1, V2) are SHN_ABS
    assert.equal(r.lookup(fx.lib, name).vaddr, parseInt(addr, 16), name);
    checked++;
  }
  assert.ok(checked >= 8);
});

test('the file offset of an initialised variable holds its initial value (data segment vaddr != offset)', () => {
  const r = new ElfSymbolResolver();
  const got = r.resolve(fx.lib, 'soload_fix_counter');
  const seg = r.inspect(fx.lib).segments.find((s) => s.type === PT_LOAD && got.vaddr >= s.vaddr && got.vaddr < s.vaddr + s.filesz);
  assert.ok(seg);
  assert.notEqual(seg.vaddr, seg.offset, 'the fixture should exercise a segment whose vaddr and offset differ');
  assert.notEqual(got.fileOffset, got.vaddr);
  assert.equal(fs.readFileSync(fx.lib).readUInt32LE(got.fileOffset), FIXTURE_COUNTER);
});

test('versioned names: plain name picks @@default, name@V / name@@V select, hidden-only and ambiguous cases', () => {
  const r = new ElfSymbolResolver();
  const ref = new Map(readelfSymbols(fx.lib).filter((s) => s.table === '.dynsym').map((s) => [s.name, s.value]));
  const foo = r.resolve(fx.lib, 'foo');
  assert.equal(foo.version, 'V2');
  assert.equal(foo.defaultVersion, true);
  assert.equal(foo.vaddr, ref.get('foo@@V2'));
  assert.equal(r.resolve(fx.lib, 'foo@@V2').vaddr, ref.get('foo@@V2'));
  assert.equal(r.resolve(fx.lib, 'foo@V2').vaddr, ref.get('foo@@V2'));
  const v1 = r.resolve(fx.lib, 'foo@V1');
  assert.equal(v1.vaddr, ref.get('foo@V1'));
  assert.equal(v1.defaultVersion, false);
  assert.notEqual(v1.vaddr, foo.vaddr);
  assert.throws(() => r.resolve(fx.lib, 'foo@@V1'), (e: unknown) => isSoloadError(e, ErrorCodes.SYMBOL_NOT_FOUND));
  assert.throws(() => r.resolve(fx.lib, 'foo@V9'), (e: unknown) => isSoloadError(e, ErrorCodes.SYMBOL_NOT_FOUND));

  // Only a hidden version exists: a plain lookup still finds it.
  const old = r.resolve(fx.lib, 'old');
  assert.equal(old.vaddr, ref.get('old@V1'));
  assert.equal(old.version, 'V1');

  // Two hidden versions at different addresses: refuse to guess, list them.
  assert.throws(
    () => r.resolve(fx.lib, 'bar'),
    (e: unknown) => isSoloadError(e, ErrorCodes.SYMBOL_NOT_FOUND) && /ambiguous/.test(e.message) && /bar@V1/.test(e.message) && /bar@V2/.test(e.message),
  );
  assert.equal(r.resolve(fx.lib, 'bar@V2').vaddr, ref.get('bar@V2'));
});

test('a static function is found in .symtab when .dynsym lacks it', () => {
  const r = new ElfSymbolResolver();
  const ref = readelfSymbols(fx.lib).find((s) => s.table === '.symtab' && s.name === 'soload_fix_helper');
  assert.ok(ref);
  const got = r.resolve(fx.lib, 'soload_fix_helper');
  assert.equal(got.table, 'symtab');
  assert.equal(got.vaddr, ref.value);
  assert.equal(got.fileOffset, referenceOffset(readelfSegments(fx.lib), ref.value));
});

test('.bss and TLS symbols are SYMBOL_NOT_MAPPED; fetchOffset still reaches the .bss variable', () => {
  const r = new ElfSymbolResolver();
  assert.throws(
    () => r.resolve(fx.lib, 'soload_fix_buffer'),
    (e: unknown) => isSoloadError(e, ErrorCodes.SYMBOL_NOT_MAPPED) && /\.bss/.test(e.message) && e.message.includes(fx.lib),
  );
  assert.throws(
    () => r.resolve(fx.lib, 'soload_fix_tls'),
    (e: unknown) => isSoloadError(e, ErrorCodes.SYMBOL_NOT_MAPPED) && /thread-local/.test(e.message),
  );
  const probe = r.resolve(fx.lib, 'soload_fix_add');
  const target = r.lookup(fx.lib, 'soload_fix_buffer');
  const off = r.fetchOffset(fx.lib, 'soload_fix_add', 'soload_fix_buffer');
  // What the kernel does with @+off for a probe at `probe` in an object loaded at `bias`:
  const bias = 0x7f0000000000;
  assert.equal(bias + probe.vaddr - probe.fileOffset + off, bias + target.vaddr);
});

test('inspect reports soname, DT_NEEDED, runpath, build ID, class and machine like readelf', () => {
  const r = new ElfSymbolResolver();
  const info = r.inspect(fx.lib);
  const dyn = run('readelf', ['-dW', fx.lib]);
  assert.equal(info.file, fx.lib);
  assert.equal(info.soname, /Library soname: \[([^\]]+)\]/.exec(dyn)?.[1]);
  assert.deepEqual([...info.needed], [...dyn.matchAll(/Shared library: \[([^\]]+)\]/g)].map((m) => m[1]));
  assert.deepEqual([...info.needed], ['libc.so.6', 'libm.so.6']);
  assert.equal(info.runpath, '/opt/soload-fixture');
  assert.equal(info.buildId, readelfBuildId(fx.lib));
  assert.equal(info.interpreter, undefined);
  assert.equal(info.class, 64);
  assert.equal(info.endian, 'le');
  assert.equal(info.machine, 'amd64');
  assert.equal(info.machineId, 62);
  assert.equal(info.type, 3);
  assert.ok(info.symbolCounts.symtab > 0);
  assert.equal(r.inspect(fx.libNoBuildId).buildId, undefined);
  const segs = readelfSegments(fx.lib);
  assert.deepEqual(
    info.segments.map((s) => [s.offset, s.vaddr, s.filesz, s.memsz]),
    segs.map((s) => [s.offset, s.vaddr, s.filesz, s.memsz]),
  );
});

test('section entsize/addralign are read from the right bytes (elfy 1.0.0 reads 46/54 on ELF64)', () => {
  const image = parseElf(fs.readFileSync(fx.lib), fx.lib);
  const ref = run('readelf', ['-SW', fx.lib]);
  for (const name of ['.dynsym', '.symtab', '.dynamic', '.gnu.version']) {
    const sec = image.sections.find((s) => s.name === name);
    assert.ok(sec, name);
    // [Nr] Name Type Address Off Size ES Flg Lk Inf Al
    const m = new RegExp(`\\s${name.replace('.', '\\.')}\\s+\\S+\\s+[0-9a-f]+\\s+[0-9a-f]+\\s+[0-9a-f]+\\s+([0-9a-f]+)\\s+\\S*\\s*\\d+\\s+\\d+\\s+(\\d+)`).exec(ref);
    assert.ok(m, `readelf line for ${name}`);
    assert.equal(sec.entsize, parseInt(m[1], 16), `${name} entsize`);
    assert.equal(sec.addralign, Number(m[2]), `${name} addralign`);
  }
});

test('cache: repeated lookups do not re-parse; a replaced file is re-read; LRU bound holds', () => {
  const dir = tempDir('cache');
  const file = path.join(dir, 'lib.so');
  fs.copyFileSync(fx.lib, file);
  const r = new ElfSymbolResolver({ maxEntries: 1 });
  r.resolve(file, 'soload_fix_add');
  r.resolve(file, 'foo');
  r.inspect(file);
  assert.deepEqual(r.stats(), { hits: 2, misses: 1, entries: 1 });

  // Same path, different contents (as after a package upgrade): new inode/size → new parse.
  const replacement = path.join(dir, 'lib.so.new');
  fs.writeFileSync(replacement, fs.readFileSync(fx.libNoBuildId));
  fs.renameSync(replacement, file);
  assert.equal(r.inspect(file).buildId, undefined);
  assert.equal(r.stats().misses, 2);

  r.inspect(fx.lib);
  assert.equal(r.stats().entries, 1, 'maxEntries: 1 keeps one parsed file');
  r.inspect(file);
  assert.equal(r.stats().misses, 4, 'the evicted file is parsed again');
});

test('cached metadata holds no file contents', () => {
  const r = new ElfSymbolResolver();
  const info = r.inspect(fx.lib);
  const seen = new Set<unknown>();
  const walk = (v: unknown): void => {
    if (v === null || typeof v !== 'object' || seen.has(v)) return;
    seen.add(v);
    assert.ok(!Buffer.isBuffer(v) && !(v instanceof Uint8Array), 'ElfInfo must not reference a Buffer');
    for (const child of Object.values(v)) walk(child);
  };
  walk(info);
  assert.ok(seen.size > 3);
});

test('unreadable path is ELF_INVALID naming the file', () => {
  const r = new ElfSymbolResolver();
  const missing = path.join(tempDir('missing'), 'nope.so');
  assert.throws(
    () => r.inspect(missing),
    (e: unknown) => isSoloadError(e, ErrorCodes.ELF_INVALID) && e.message.includes(missing) && /ENOENT/.test(e.message),
  );
});

test('failed ELF reads are counted by reason (feeds soload.elf.invalid): unreadable, not_elf (a CDS .jsa), headers, contents', () => {
  const dir = tempDir('resolver-invalid');
  const jsa = path.join(dir, 'classes.jsa');
  fs.writeFileSync(jsa, fs.readFileSync(path.join(__dirname, '../../../../test/fixtures/fuzz/elf/cds-static.jsa')));
  const cut = path.join(dir, 'cut.so');
  fs.writeFileSync(cut, fs.readFileSync(fx.lib).subarray(0, 40));
  const outside = path.join(dir, 'outside.so');
  fs.writeFileSync(outside, fs.readFileSync(path.join(__dirname, '../../../../test/fixtures/fuzz/elf/symtab-outside.so')));
  const r = new ElfSymbolResolver();
  const code = (fn: () => unknown): string | undefined => {
    try {
      fn();
      return undefined;
    } catch (err) {
      assert.ok(isSoloadError(err, ErrorCodes.ELF_INVALID), String(err));
      return err.details.reason as string;
    }
  };
  assert.equal(code(() => r.inspect(path.join(dir, 'absent.so'))), 'unreadable');
  assert.equal(code(() => r.inspect(jsa)), 'not_elf');
  assert.equal(code(() => r.dynamicInfo(jsa)), 'not_elf');
  assert.equal(code(() => r.inspect(cut)), 'headers');
  assert.equal(code(() => r.inspect(outside)), 'contents');
  assert.equal(code(() => r.inspect(fx.lib)), undefined);
  assert.deepEqual(r.invalidReads(), { unreadable: 1, not_elf: 2, headers: 1, contents: 1 });
  // Asked again: the remembered failure, not a new decode (and not counted again).
  assert.equal(code(() => r.inspect(cut)), 'headers');
  assert.equal(code(() => r.lookup(outside, 'dlopen')), 'contents');
  assert.deepEqual(r.invalidReads(), { unreadable: 1, not_elf: 2, headers: 1, contents: 1 });
  // A changed file is a new version: decoded again.
  fs.writeFileSync(cut, fs.readFileSync(fx.lib));
  assert.equal(code(() => r.inspect(cut)), undefined);
});
