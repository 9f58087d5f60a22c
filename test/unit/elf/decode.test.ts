import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ErrorCodes, isSoloadError } from '../../../src/errors';
import {
  ElfSymbolResolver,
  crc32,
  decodeBuildId,
  decodeDebugLink,
  decodeDynamic,
  decodeInterpreter,
  decodeNotes,
  decodeSymbolVersions,
  decodeSymbols,
  fetchOffsetFor,
  findSymbol,
  indexSymbols,
  parseElf,
  parseSymbolQuery,
  vaddrToFileOffset,
  type ElfSymbol,
  type ProgramHeader,
} from '../../../src/elf';
import { buildElf } from './elf-builder';
import { buildFixtures, tempDir } from './helpers';

const isInvalid = (file: string) => (e: unknown) => isSoloadError(e, ErrorCodes.ELF_INVALID) && e.message.includes(file);

for (const cls of [32, 64] as const) {
  for (const endian of ['le', 'be'] as const) {
    test(`hand-built ELF${cls} ${endian.toUpperCase()}: symbols, versions, dynamic, notes, offsets`, () => {
      const built = buildElf(cls, endian);
      const image = parseElf(built.buf, `built-${cls}${endian}`);
      assert.equal(image.class, cls);
      assert.equal(image.endian, endian);
      assert.equal(image.machineId, cls === 64 ? 62 : 3);

      const dynsym = image.sections.find((s) => s.name === '.dynsym');
      assert.ok(dynsym);
      const versions = decodeSymbolVersions(image, dynsym);
      assert.ok(versions);
      assert.deepEqual([...versions.names.entries()].sort(), [[2, 'V1'], [3, 'V2']]);
      const syms = decodeSymbols(image, dynsym, versions);
      assert.deepEqual(
        syms.map((s) => [s.name, s.version, s.defaultVersion, s.value, s.size, s.type, s.bind]),
        [
          ...built.symbols.map((s) => [s.name, s.version, !s.hidden, s.value, s.size, s.type === 2 ? 'func' : 'object', 'global']),
          ['puts', undefined, true, 0, 0, 'func', 'global'],
        ],
      );
      const index = indexSymbols(syms);
      assert.equal(index.has('puts'), false, 'undefined symbols are not locatable');
      const beta = findSymbol(index, parseSymbolQuery('beta'));
      assert.equal(beta.kind === 'found' && beta.symbol.value, built.symbols[2].value);
      const betaV1 = findSymbol(index, parseSymbolQuery('beta@V1'));
      assert.equal(betaV1.kind === 'found' && betaV1.symbol.value, built.symbols[1].value);

      assert.deepEqual(decodeDynamic(image), { soname: built.soname, needed: built.needed });
      assert.equal(decodeInterpreter(image), built.interp);
      assert.equal(decodeBuildId(image), built.buildId);
      assert.deepEqual(decodeDebugLink(image), built.debugLink);

      const alpha = built.symbols[0].value;
      assert.equal(vaddrToFileOffset(image, alpha), alpha - built.delta);
      const gamma = built.symbols[3].value; // in .bss: past filesz, inside memsz
      assert.throws(() => vaddrToFileOffset(image, gamma), (e: unknown) => isSoloadError(e, ErrorCodes.SYMBOL_NOT_MAPPED));
      assert.equal(fetchOffsetFor(image, alpha, gamma), gamma - built.delta);
    });
  }
}

test('hand-built ELF without section headers: build ID from PT_NOTE, dynamic strings via DT_STRTAB', () => {
  const built = buildElf(64, 'le');
  const buf = Buffer.from(built.buf);
  buf.writeBigUInt64LE(0n, 40); // e_shoff
  buf.writeUInt16LE(0, 60); // e_shnum
  buf.writeUInt16LE(0, 62); // e_shstrndx
  const image = parseElf(buf, 'no-sections');
  assert.equal(image.sections.length, 0);
  assert.equal(decodeBuildId(image), built.buildId);
  assert.deepEqual(decodeDynamic(image), { soname: built.soname, needed: built.needed });
  assert.equal(decodeInterpreter(image), built.interp);
  assert.equal(decodeDebugLink(image), undefined);
});

test('non-ELF, empty, truncated and corrupt files are ELF_INVALID naming the file', () => {
  const fx = buildFixtures();
  const dir = tempDir('invalid');
  const lib = fs.readFileSync(fx.lib);
  const cases: Array<[string, Buffer]> = [
    ['text.so', Buffer.from('INPUT(-lfoo)\n')], // a GNU ld script, as libc.so is
    ['empty.so', Buffer.alloc(0)],
    ['magic-only.so', Buffer.from('\x7fELF', 'latin1')],
    ['header-only.so', lib.subarray(0, 64)],
    ['truncated.so', lib.subarray(0, 200)],
    ['no-section-table.so', lib.subarray(0, lib.length - 100)],
  ];
  const badClass = Buffer.from(lib);
  badClass[4] = 9;
  cases.push(['bad-class.so', badClass]);
  const r = new ElfSymbolResolver();
  for (const [name, data] of cases) {
    const file = path.join(dir, name);
    fs.writeFileSync(file, data);
    assert.throws(() => parseElf(data, file), isInvalid(file), name);
    assert.throws(() => r.resolve(file, 'soload_fix_add'), isInvalid(file), name);
  }
});

test('a section that extends past the end of the file is ELF_INVALID (elfy would silently clamp it)', () => {
  const fx = buildFixtures();
  const buf = Buffer.from(fs.readFileSync(fx.lib));
  const image = parseElf(buf, fx.lib);
  const dynsym = image.sections.find((s) => s.name === '.dynsym');
  assert.ok(dynsym);
  const shoff = Number(buf.readBigUInt64LE(40));
  buf.writeBigUInt64LE(BigInt(buf.length), shoff + dynsym.index * 64 + 32); // sh_size
  const file = path.join(tempDir('corrupt'), 'bigdynsym.so');
  fs.writeFileSync(file, buf);
  const corrupt = parseElf(buf, file);
  const section = corrupt.sections[dynsym.index];
  assert.throws(() => decodeSymbols(corrupt, section), isInvalid(file));
  assert.throws(() => new ElfSymbolResolver().resolve(file, 'soload_fix_add'), isInvalid(file));
});

test('crc32 matches the standard check values', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  assert.equal(crc32(Buffer.alloc(0)), 0);
  assert.equal(crc32(Buffer.from('The quick brown fox jumps over the lazy dog')), 0x414fa339);
});

test('decodeNotes: 8-byte aligned areas pad relative to the note start (.note.gnu.property layout)', () => {
  const note = Buffer.alloc(32 + 36);
  note.writeUInt32LE(4, 0);
  note.writeUInt32LE(16, 4);
  note.writeUInt32LE(5, 8);
  note.write('GNU\0', 12, 'latin1');
  note.fill(0xab, 16, 32);
  const second = 32;
  note.writeUInt32LE(4, second);
  note.writeUInt32LE(20, second + 4);
  note.writeUInt32LE(3, second + 8);
  note.write('GNU\0', second + 12, 'latin1');
  note.fill(0x11, second + 16, second + 36);
  const notes = decodeNotes(note, 'le', 8);
  assert.deepEqual(notes.map((n) => [n.name, n.type, n.desc.length]), [['GNU', 5, 16], ['GNU', 3, 20]]);
  assert.equal(notes[1].desc.toString('hex'), '11'.repeat(20));
  assert.throws(() => decodeNotes(note.subarray(0, 50), 'le', 8), (e: unknown) => isSoloadError(e, ErrorCodes.ELF_INVALID));
});

test('parseSymbolQuery', () => {
  assert.deepEqual(parseSymbolQuery('dlopen'), { name: 'dlopen', defaultOnly: false });
  assert.deepEqual(parseSymbolQuery('dlopen@GLIBC_2.2.5'), { name: 'dlopen', version: 'GLIBC_2.2.5', defaultOnly: false });
  assert.deepEqual(parseSymbolQuery('dlopen@@GLIBC_2.34'), { name: 'dlopen', version: 'GLIBC_2.34', defaultOnly: true });
  assert.deepEqual(parseSymbolQuery('dlopen@'), { name: 'dlopen', defaultOnly: false });
});

test('findSymbol: globals beat locals; locals at different addresses are ambiguous; same-address aliases are not', () => {
  const sym = (name: string, value: number, bind: ElfSymbol['bind'], version?: string, defaultVersion = true): ElfSymbol => ({
    name, value, size: 1, type: 'func', bind, shndx: 1, defaultVersion, ...(version ? { version } : {}),
  });
  const index = indexSymbols([
    sym('f', 0x10, 'local'), sym('f', 0x20, 'global'),
    sym('s', 0x30, 'local'), sym('s', 0x40, 'local'),
    sym('d', 0x50, 'global', 'A', false), sym('d', 0x50, 'global', 'B', false),
  ]);
  const f = findSymbol(index, parseSymbolQuery('f'));
  assert.equal(f.kind === 'found' && f.symbol.value, 0x20);
  assert.equal(findSymbol(index, parseSymbolQuery('s')).kind, 'ambiguous');
  const d = findSymbol(index, parseSymbolQuery('d'));
  assert.equal(d.kind === 'found' && d.symbol.value, 0x50);
  assert.equal(findSymbol(index, parseSymbolQuery('d@@A')).kind, 'missing');
  assert.equal(findSymbol(index, parseSymbolQuery('nope')).kind, 'missing');
});

test('vaddrToFileOffset / fetchOffsetFor over synthetic segments with different deltas', () => {
  const seg = (vaddr: number, offset: number, filesz: number, memsz: number): ProgramHeader => ({ type: 1, flags: 4, offset, vaddr, filesz, memsz, align: 0x1000 });
  const layout = { file: 'synthetic.so', segments: [seg(0x1000, 0x1000, 0x800, 0x800), seg(0x3f00, 0x2f00, 0x100, 0x2000)] };
  assert.equal(vaddrToFileOffset(layout, 0x1010), 0x1010);
  assert.equal(vaddrToFileOffset(layout, 0x3f10), 0x2f10);
  assert.throws(() => vaddrToFileOffset(layout, 0x1800), (e: unknown) => isSoloadError(e, ErrorCodes.SYMBOL_NOT_MAPPED) && /not inside any PT_LOAD/.test(e.message));
  assert.throws(() => vaddrToFileOffset(layout, 0x4100), (e: unknown) => isSoloadError(e, ErrorCodes.SYMBOL_NOT_MAPPED) && /\.bss/.test(e.message));
  // Probe in text (delta 0), target in data (delta 0x1000): OFFSET is the target vaddr, not its file offset.
  assert.equal(fetchOffsetFor(layout, 0x1010, 0x3f10), 0x3f10);
  // Probe in data (delta 0x1000): OFFSET shifts by that delta.
  assert.equal(fetchOffsetFor(layout, 0x3f00, 0x4100), 0x3100);
  assert.throws(() => fetchOffsetFor(layout, 0x4100, 0x1000), (e: unknown) => isSoloadError(e, ErrorCodes.SYMBOL_NOT_MAPPED));
  assert.throws(() => fetchOffsetFor(layout, 0x3f00, 0x10), (e: unknown) => isSoloadError(e, ErrorCodes.SYMBOL_NOT_MAPPED));
});
