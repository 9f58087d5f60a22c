import fs from 'node:fs';
import path from 'node:path';
import { buildElf } from '../unit/elf/elf-builder';
import { REPO } from './corpus';

/**
 * Writes the crafted ELF-target seeds committed under test/fixtures/fuzz/elf (run once with
 * `node dist/test/fuzz/make-seeds.js`; the files are committed so the corpus does not change when
 * the builder does). Each is a few KiB and aims at one hostile shape.
 */
function main(): void {
  const dir = path.join(REPO, 'test', 'fixtures', 'fuzz', 'elf');
  fs.mkdirSync(dir, { recursive: true });
  const put = (name: string, b: Buffer): void => fs.writeFileSync(path.join(dir, name), b);
  const base = (): Buffer => Buffer.from(buildElf(64, 'le').buf);
  const shoff = (b: Buffer): number => Number(b.readBigUInt64LE(40));
  const shnum = (b: Buffer): number => b.readUInt16LE(60);
  const section = (b: Buffer, type: number): number => {
    for (let i = 0; i < shnum(b); i++) if (b.readUInt32LE(shoff(b) + i * 64 + 4) === type) return shoff(b) + i * 64;
    throw new Error(`no section of type ${type}`);
  };

  // Java CDS archive (HotSpot filemap.hpp): GenericCDSFileMapHeader = u32 magic 0xf00baba2 (static;
  // 0xf00baba8 dynamic), i32 crc, i32 version, u32 header_size, u32 base_archive_name_offset,
  // u32 base_archive_name_size, then the FileMapHeader (char jvm_ident[256], regions...). The JVM maps
  // its regions executable, so /proc/PID/maps lists the .jsa like a library.
  for (const [name, magic] of [['cds-static.jsa', 0xf00baba2], ['cds-dynamic.jsa', 0xf00baba8]] as const) {
    const b = Buffer.alloc(4096);
    b.writeUInt32LE(magic, 0);
    b.writeInt32LE(0x1234abcd, 4);
    b.writeInt32LE(18, 8);
    b.writeUInt32LE(0x600, 12);
    b.writeUInt32LE(magic === 0xf00baba8 ? 0x600 : 0, 16);
    b.writeUInt32LE(magic === 0xf00baba8 ? 32 : 0, 20);
    b.write('OpenJDK 64-Bit Server VM (fuzz seed) for linux-amd64', 24, 'latin1');
    // region table: offsets and sizes that look like file offsets of a mapped archive
    for (let i = 0; i < 8; i++) {
      b.writeBigUInt64LE(BigInt(0x1000 * (i + 1)), 0x200 + i * 32);
      b.writeBigUInt64LE(0x800000000n + BigInt(0x100000 * i), 0x208 + i * 32);
    }
    if (magic === 0xf00baba8) b.write('/usr/lib/jvm/java/lib/server/classes.jsa\0', 0x600, 'latin1');
    put(name, b);
  }

  // ELF header cut inside e_shoff (40 of 64 bytes).
  put('truncated-header.so', base().subarray(0, 40));

  // e_shnum and e_phnum at their maximum, the tables far past the end of the file.
  {
    const b = base();
    b.writeUInt16LE(0xffff, 56);
    b.writeUInt16LE(0xffff, 60);
    b.writeBigUInt64LE(0xfffffff0n, 32);
    put('absurd-counts.so', b);
  }

  // .dynsym whose sh_offset and sh_size point outside the file.
  {
    const b = base();
    const s = section(b, 11);
    b.writeBigUInt64LE(BigInt(b.length - 8), s + 24);
    b.writeBigUInt64LE(0xffffffffffn, s + 32);
    put('symtab-outside.so', b);
  }

  // Every symbol's st_name beyond its string table; the string table's sh_link loop to itself.
  {
    const b = base();
    const s = section(b, 11);
    const off = Number(b.readBigUInt64LE(s + 24));
    const size = Number(b.readBigUInt64LE(s + 32));
    for (let at = off + 24; at + 24 <= off + size; at += 24) b.writeUInt32LE(0x7ffffff0, at);
    put('symbol-names-outside.so', b);
  }

  // .dynstr without a single NUL.
  {
    const b = base();
    const s = section(b, 3);
    const off = Number(b.readBigUInt64LE(s + 24));
    const size = Number(b.readBigUInt64LE(s + 32));
    for (let i = off; i < off + size; i++) if (b[i] === 0) b[i] = 0x58;
    put('strtab-no-nul.so', b);
  }

  // No section headers at all (sstrip'ed: still loadable, only the program headers remain).
  {
    const b = base();
    b.writeBigUInt64LE(0n, 40);
    b.writeUInt16LE(0, 60);
    b.writeUInt16LE(0, 62);
    put('no-sections.so', b);
  }

  // A 32-bit big-endian object with its PT_DYNAMIC filesz absurd.
  {
    const b = Buffer.from(buildElf(32, 'be').buf);
    const phoff = b.readUInt32BE(28);
    for (let i = 0; i < b.readUInt16BE(44); i++) {
      const at = phoff + i * 32;
      if (b.readUInt32BE(at) === 2) b.writeUInt32BE(0xfffffff0, at + 16);
    }
    put('elf32be-dynamic-huge.so', b);
  }
}

main();
