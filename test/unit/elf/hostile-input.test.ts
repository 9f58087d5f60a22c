import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ErrorCodes, isSoloadError } from '../../../src/errors';
import { ElfSymbolResolver, decodeBuildId, decodeDynamic, parseElf } from '../../../src/elf';
import { globDatSlots } from '../../../src/elf/relocations';
import { buildElf } from './elf-builder';
import { tempDir } from './helpers';

// Regressions found by the fuzzer (test/fuzz): files whose headers make the decoders' work grow with
// (entries × table size) instead of the file's size. Each must be refused or decoded in bounded time.

const SHENT = 64;

/** Section header fields of the builder's 64-bit little-endian object. */
function sectionAt(b: Buffer, type: number): number {
  const shoff = Number(b.readBigUInt64LE(40));
  for (let i = 0; i < b.readUInt16LE(60); i++) if (b.readUInt32LE(shoff + i * SHENT + 4) === type) return shoff + i * SHENT;
  throw new Error(`no section of type ${type}`);
}

/** `b` with its section header table copied to the end and one entry repeated up to `count` entries. */
function repeatSection(b: Buffer, type: number, count: number, patch?: (hdr: Buffer) => void): Buffer {
  const shoff = Number(b.readBigUInt64LE(40));
  const shnum = b.readUInt16LE(60);
  const entry = Buffer.from(b.subarray(sectionAt(b, type), sectionAt(b, type) + SHENT));
  patch?.(entry);
  const table = Buffer.alloc(count * SHENT);
  b.copy(table, 0, shoff, shoff + shnum * SHENT);
  for (let i = shnum; i < count; i++) entry.copy(table, i * SHENT);
  const out = Buffer.concat([b, table]);
  out.writeBigUInt64LE(BigInt(b.length), 40);
  out.writeUInt16LE(count, 60);
  return out;
}

function elfCode(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    assert.ok(isSoloadError(err), `expected a SoloadError, got ${String(err)}`);
    return err.code;
  }
}

function timed<T>(fn: () => T): { value: T; ms: number } {
  const t0 = performance.now();
  const value = fn();
  return { value, ms: performance.now() - t0 };
}

test('65535 section headers naming one large .dynsym are refused as ELF_INVALID, quickly', () => {
  // A 1 MiB symbol table (43k entries) named by 65,535 headers: 2.8 billion symbols before the fix.
  const base = buildElf(64, 'le').buf;
  const symtab = Buffer.alloc(1024 * 1024);
  const b0 = Buffer.concat([base, symtab]);
  const b = repeatSection(b0, 11, 0xffff, (h) => {
    h.writeBigUInt64LE(BigInt(base.length), 24);
    h.writeBigUInt64LE(BigInt(symtab.length), 32);
  });
  const file = path.join(tempDir('hostile-dynsym'), 'many-dynsym.so');
  fs.writeFileSync(file, b);
  const { value, ms } = timed(() => elfCode(() => new ElfSymbolResolver().inspect(file)));
  assert.equal(value, ErrorCodes.ELF_INVALID);
  assert.ok(ms < 5000, `took ${ms.toFixed(0)} ms`);
});

test('a NUL-less string table that every symbol points into is refused, with time and memory bounded', () => {
  // 40,000 symbols whose names start at distinct offsets of a 2 MiB string without a NUL: before the
  // fix each name ran to the end of the table (tens of GB of strings).
  const base = buildElf(64, 'le').buf;
  const strOff = base.length;
  const strtab = Buffer.alloc(2 * 1024 * 1024, 0x41);
  const symOff = strOff + strtab.length;
  const n = 40000;
  const syms = Buffer.alloc(n * 24);
  for (let i = 1; i < n; i++) {
    syms.writeUInt32LE(i * 48, i * 24);
    syms[i * 24 + 4] = 0x12; // global func
    syms.writeUInt16LE(1, i * 24 + 6);
  }
  const b = Buffer.concat([base, strtab, syms]);
  const dynstr = sectionAt(b, 3);
  b.writeBigUInt64LE(BigInt(strOff), dynstr + 24);
  b.writeBigUInt64LE(BigInt(strtab.length), dynstr + 32);
  const dynsym = sectionAt(b, 11);
  b.writeBigUInt64LE(BigInt(symOff), dynsym + 24);
  b.writeBigUInt64LE(BigInt(syms.length), dynsym + 32);
  const file = path.join(tempDir('hostile-strtab'), 'no-nul.so');
  fs.writeFileSync(file, b);
  const heap0 = process.memoryUsage().heapUsed;
  const { value, ms } = timed(() => elfCode(() => new ElfSymbolResolver().inspect(file)));
  assert.equal(value, ErrorCodes.ELF_INVALID);
  assert.ok(ms < 5000, `took ${ms.toFixed(0)} ms`);
  assert.ok(process.memoryUsage().heapUsed - heap0 < 256 * 1024 * 1024, 'heap grew past 256 MiB');
});

test('DT_NEEDED entries pointing into a NUL-less string table: ELF_INVALID, not gigabytes of names', () => {
  const base = buildElf(64, 'le').buf;
  const img = parseElf(base, 'base');
  const dynSec = img.sections.find((s) => s.type === 6)!;
  const strSec = img.sections[dynSec.link];
  // Fill the string table with a letter (no NUL) and point every DT_NEEDED at a different offset.
  const b = Buffer.from(base);
  b.fill(0x42, strSec.offset, strSec.offset + strSec.size);
  const big = repeatStrings(b, strSec.offset, strSec.size);
  assert.equal(elfCode(() => decodeDynamic(parseElf(big, 'big'))), ErrorCodes.ELF_INVALID);
});

/** The builder's .dynamic DT_NEEDED values spread over the table (each a distinct suffix). */
function repeatStrings(b: Buffer, strOff: number, strSize: number): Buffer {
  // Grow the string table to 512 KiB at the end of the file and make .dynamic hold 4,000 DT_NEEDED.
  const table = Buffer.alloc(512 * 1024, 0x43);
  const dyn = Buffer.alloc(4001 * 16);
  for (let i = 0; i < 4000; i++) {
    dyn.writeBigInt64LE(1n, i * 16);
    dyn.writeBigUInt64LE(BigInt(i * 64), i * 16 + 8);
  }
  const out = Buffer.concat([b, table, dyn]);
  const img = parseElf(b, 'b');
  const dynHdr = Number(out.readBigUInt64LE(40)) + img.sections.find((s) => s.type === 6)!.index * SHENT;
  const strHdr = Number(out.readBigUInt64LE(40)) + img.sections.find((s) => s.type === 3 && s.offset === strOff && s.size === strSize)!.index * SHENT;
  out.writeBigUInt64LE(BigInt(b.length), strHdr + 24);
  out.writeBigUInt64LE(BigInt(table.length), strHdr + 32);
  out.writeBigUInt64LE(BigInt(b.length + table.length), dynHdr + 24);
  out.writeBigUInt64LE(BigInt(dyn.length), dynHdr + 32);
  // No PT_DYNAMIC: decodeDynamic then reads the section and its sh_link string table.
  const phoff = Number(out.readBigUInt64LE(32));
  for (let i = 0; i < out.readUInt16LE(56); i++) if (out.readUInt32LE(phoff + i * 56) === 2) out.writeUInt32LE(0x6fffffff, phoff + i * 56);
  return out;
}

test('thousands of note and relocation headers over the same bytes cost the file size, not headers × size', () => {
  const base = buildElf(64, 'le').buf;
  const area = Buffer.alloc(1024 * 1024);
  const b0 = Buffer.concat([base, area]);
  const notes = repeatSection(b0, 7, 0xffff, (h) => {
    h.writeBigUInt64LE(BigInt(base.length), 24);
    h.writeBigUInt64LE(BigInt(area.length), 32);
  });
  const img = parseElf(notes, 'notes');
  const { value, ms } = timed(() => decodeBuildId(img));
  assert.equal(value, buildElf(64, 'le').buildId, 'the real build-id note comes first');
  assert.ok(ms < 2000, `decodeBuildId took ${ms.toFixed(0)} ms`);

  // SHT_RELA (4) headers: the builder has none, so turn the repeated note headers into relocations
  // against .dynsym.
  const relas = Buffer.from(notes);
  const dynsymIndex = img.sections.find((s) => s.type === 11)!.index;
  const shoff = Number(relas.readBigUInt64LE(40));
  for (let i = 100; i < 0xffff; i++) {
    relas.writeUInt32LE(4, shoff + i * SHENT + 4);
    relas.writeUInt32LE(dynsymIndex, shoff + i * SHENT + 40);
  }
  const relImg = parseElf(relas, 'relas');
  const t = timed(() => elfCode(() => globDatSlots(relImg)));
  assert.equal(t.value, ErrorCodes.ELF_INVALID);
  assert.ok(t.ms < 2000, `globDatSlots took ${t.ms.toFixed(0)} ms`);
});
