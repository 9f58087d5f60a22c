/**
 * Hand-assembles a small ELF shared object of either class and byte order, so the decoders are
 * covered for Elf32 and big-endian files without a cross toolchain. The layout mirrors what GNU ld
 * emits for a versioned library: .dynsym/.dynstr, .gnu.version/.gnu.version_d, .dynamic, PT_INTERP,
 * a build-id note and a .gnu_debuglink, one PT_LOAD whose vaddr is 0x10000 above its file offset and
 * whose memsz extends past filesz (.bss).
 */

export interface BuiltElf {
  buf: Buffer;
  /** vaddr − file offset of the single PT_LOAD. */
  delta: number;
  /** Symbols as placed: name, version, hidden, value. */
  symbols: Array<{ name: string; version?: string; hidden: boolean; value: number; size: number; type: number }>;
  buildId: string;
  soname: string;
  needed: string[];
  interp: string;
  debugLink: { name: string; crc: number };
  loadFilesz: number;
  loadMemsz: number;
}

export function buildElf(cls: 32 | 64, endian: 'le' | 'be'): BuiltElf {
  const buf = Buffer.alloc(0xd00);
  const le = endian === 'le';
  const w8 = (o: number, v: number): void => void buf.writeUInt8(v, o);
  const w16 = (o: number, v: number): void => void (le ? buf.writeUInt16LE(v, o) : buf.writeUInt16BE(v, o));
  const w32 = (o: number, v: number): void => void (le ? buf.writeUInt32LE(v >>> 0, o) : buf.writeUInt32BE(v >>> 0, o));
  const w64 = (o: number, v: number): void =>
    void (le ? buf.writeBigUInt64LE(BigInt(v), o) : buf.writeBigUInt64BE(BigInt(v), o));
  const word = (o: number, v: number): void => (cls === 64 ? w64(o, v) : w32(o, v));
  const BASE = 0x10000;

  // --- string table
  const DYNSTR = 0x200;
  let strEnd = 1;
  const strOffsets = new Map<string, number>();
  const str = (s: string): number => {
    const known = strOffsets.get(s);
    if (known !== undefined) return known;
    const off = strEnd;
    buf.write(`${s}\0`, DYNSTR + off, 'latin1');
    strEnd += s.length + 1;
    strOffsets.set(s, off);
    return off;
  };
  const soname = 'libsoload-test.so.1';
  const needed = ['libdep.so.2', 'libc.so.6'];
  const interp = '/lib/ld-soload.so.1';
  const versions = [soname, 'V1', 'V2']; // ndx 1 (base), 2, 3
  for (const s of [soname, ...needed, ...versions]) str(s);

  // --- symbols (index 0 is the null symbol)
  const TEXT = 0x800;
  const STT_OBJECT = 1;
  const STT_FUNC = 2;
  const symbols: BuiltElf['symbols'] = [
    { name: 'alpha', hidden: false, value: BASE + TEXT, size: 16, type: STT_FUNC },
    { name: 'beta', version: 'V1', hidden: true, value: BASE + TEXT + 0x10, size: 8, type: STT_FUNC },
    { name: 'beta', version: 'V2', hidden: false, value: BASE + TEXT + 0x20, size: 8, type: STT_FUNC },
    { name: 'gamma', version: 'V1', hidden: false, value: BASE + 0x900 + 0x40, size: 4, type: STT_OBJECT },
  ];
  const undefinedSym = 'puts';
  const DYNSYM = 0x300;
  const entsize = cls === 64 ? 24 : 16;
  const TEXT_SHNDX = 8;
  const BSS_SHNDX = 9;
  const writeSym = (i: number, name: number, value: number, size: number, info: number, shndx: number): void => {
    const at = DYNSYM + i * entsize;
    if (cls === 64) {
      w32(at, name);
      w8(at + 4, info);
      w8(at + 5, 0);
      w16(at + 6, shndx);
      w64(at + 8, value);
      w64(at + 16, size);
    } else {
      w32(at, name);
      w32(at + 4, value);
      w32(at + 8, size);
      w8(at + 12, info);
      w8(at + 13, 0);
      w16(at + 14, shndx);
    }
  };
  const STB_GLOBAL = 1;
  symbols.forEach((s, i) =>
    writeSym(i + 1, str(s.name), s.value, s.size, (STB_GLOBAL << 4) | s.type, s.type === STT_OBJECT ? BSS_SHNDX : TEXT_SHNDX),
  );
  writeSym(symbols.length + 1, str(undefinedSym), 0, 0, (STB_GLOBAL << 4) | STT_FUNC, 0);
  const nsyms = symbols.length + 2;

  // --- .gnu.version: one u16 per .dynsym entry
  const VERSYM = 0x400;
  const ndx = (v?: string): number => (v === undefined ? 1 : versions.indexOf(v) + 1);
  w16(VERSYM, 0);
  symbols.forEach((s, i) => w16(VERSYM + (i + 1) * 2, ndx(s.version) | (s.hidden ? 0x8000 : 0)));
  w16(VERSYM + (symbols.length + 1) * 2, 1);

  // --- .gnu.version_d: Verdef (20 bytes) each followed by one Verdaux (8 bytes)
  const VERDEF = 0x440;
  versions.forEach((v, i) => {
    const at = VERDEF + i * 28;
    w16(at, 1); // vd_version
    w16(at + 2, i === 0 ? 1 : 0); // vd_flags: VER_FLG_BASE on the file's own version
    w16(at + 4, i + 1); // vd_ndx
    w16(at + 6, 1); // vd_cnt
    w32(at + 8, 0); // vd_hash (unused by soload)
    w32(at + 12, 20); // vd_aux
    w32(at + 16, i === versions.length - 1 ? 0 : 28); // vd_next
    w32(at + 20, str(v)); // vda_name
    w32(at + 24, 0); // vda_next
  });
  const strsz = strEnd;

  // --- .dynamic
  const DYNAMIC = 0x500;
  const dyn: Array<[number, number]> = [
    [14, str(soname)],
    [1, str(needed[0])],
    [1, str(needed[1])],
    [5, BASE + DYNSTR],
    [10, strsz],
    [6, BASE + DYNSYM],
    [11, entsize],
    [0x6ffffff0, BASE + VERSYM],
    [0x6ffffffc, BASE + VERDEF],
    [0x6ffffffd, versions.length],
    [0, 0],
  ];
  const dynent = cls === 64 ? 16 : 8;
  dyn.forEach(([tag, val], i) => {
    word(DYNAMIC + i * dynent, tag);
    word(DYNAMIC + i * dynent + dynent / 2, val);
  });

  // --- .interp, build-id note, text
  const INTERP = 0x180;
  buf.write(`${interp}\0`, INTERP, 'latin1');
  const NOTE = 0x1a0;
  const idBytes = Buffer.from(Array.from({ length: 20 }, (_, i) => (i * 13 + 7) & 0xff));
  w32(NOTE, 4);
  w32(NOTE + 4, idBytes.length);
  w32(NOTE + 8, 3);
  buf.write('GNU\0', NOTE + 12, 'latin1');
  idBytes.copy(buf, NOTE + 16);
  buf.fill(0xcc, TEXT, TEXT + 0x100);
  const loadFilesz = 0x900;
  const loadMemsz = 0xa00;

  // --- non-alloc: .gnu_debuglink, .shstrtab
  const LINK = 0x900;
  const debugLink = { name: 'libsoload-test.debug', crc: 0xdeadbeef };
  buf.write(`${debugLink.name}\0`, LINK, 'latin1');
  const crcAt = LINK + Math.ceil((debugLink.name.length + 1) / 4) * 4;
  w32(crcAt, debugLink.crc);
  const linkSize = crcAt + 4 - LINK;

  const SHSTR = 0x940;
  let shEnd = 1;
  const shname = (s: string): number => {
    const off = shEnd;
    buf.write(`${s}\0`, SHSTR + off, 'latin1');
    shEnd += s.length + 1;
    return off;
  };

  // --- section headers
  const SHOFF = 0xa00;
  const shentsize = cls === 64 ? 64 : 40;
  type Sh = [name: string, type: number, flags: number, addr: number, off: number, size: number, link: number, info: number, align: number, entsize: number];
  const A = 2;
  const sections: Sh[] = [
    ['', 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ['.interp', 1, A, BASE + INTERP, INTERP, interp.length + 1, 0, 0, 1, 0],
    ['.note.gnu.build-id', 7, A, BASE + NOTE, NOTE, 16 + idBytes.length, 0, 0, 4, 0],
    ['.dynstr', 3, A, BASE + DYNSTR, DYNSTR, strsz, 0, 0, 1, 0],
    ['.dynsym', 11, A, BASE + DYNSYM, DYNSYM, nsyms * entsize, 3, 1, 8, entsize],
    ['.gnu.version', 0x6fffffff, A, BASE + VERSYM, VERSYM, nsyms * 2, 4, 0, 2, 2],
    ['.gnu.version_d', 0x6ffffffd, A, BASE + VERDEF, VERDEF, versions.length * 28, 3, versions.length, 4, 0],
    ['.dynamic', 6, A | 1, BASE + DYNAMIC, DYNAMIC, dyn.length * dynent, 3, 0, 8, dynent],
    ['.text', 1, A | 4, BASE + TEXT, TEXT, 0x100, 0, 0, 16, 0],
    ['.bss', 8, A | 1, BASE + 0x900, 0x900, 0x100, 0, 0, 32, 0],
    ['.gnu_debuglink', 1, 0, 0, LINK, linkSize, 0, 0, 4, 0],
    ['.shstrtab', 3, 0, 0, SHSTR, 0, 0, 0, 1, 0],
  ];
  const names = sections.map(([n]) => (n ? shname(n) : 0));
  sections[sections.length - 1][5] = shEnd;
  sections.forEach((s, i) => {
    const [, type, flags, addr, off, size, link, info, align, es] = s;
    const at = SHOFF + i * shentsize;
    w32(at, names[i]);
    w32(at + 4, type);
    if (cls === 64) {
      w64(at + 8, flags);
      w64(at + 16, addr);
      w64(at + 24, off);
      w64(at + 32, size);
      w32(at + 40, link);
      w32(at + 44, info);
      w64(at + 48, align);
      w64(at + 56, es);
    } else {
      w32(at + 8, flags);
      w32(at + 12, addr);
      w32(at + 16, off);
      w32(at + 20, size);
      w32(at + 24, link);
      w32(at + 28, info);
      w32(at + 32, align);
      w32(at + 36, es);
    }
  });

  // --- program headers
  const PHOFF = 0x40;
  const phentsize = cls === 64 ? 56 : 32;
  const phdrs: Array<[type: number, flags: number, off: number, filesz: number, memsz: number, align: number]> = [
    [3, 4, INTERP, interp.length + 1, interp.length + 1, 1],
    [1, 7, 0, loadFilesz, loadMemsz, 0x1000],
    [2, 6, DYNAMIC, dyn.length * dynent, dyn.length * dynent, 8],
    [4, 4, NOTE, 16 + idBytes.length, 16 + idBytes.length, 4],
  ];
  phdrs.forEach(([type, flags, off, filesz, memsz, align], i) => {
    const at = PHOFF + i * phentsize;
    w32(at, type);
    if (cls === 64) {
      w32(at + 4, flags);
      w64(at + 8, off);
      w64(at + 16, BASE + off);
      w64(at + 24, BASE + off);
      w64(at + 32, filesz);
      w64(at + 40, memsz);
      w64(at + 48, align);
    } else {
      w32(at + 4, off);
      w32(at + 8, BASE + off);
      w32(at + 12, BASE + off);
      w32(at + 16, filesz);
      w32(at + 20, memsz);
      w32(at + 24, flags);
      w32(at + 28, align);
    }
  });

  // --- ELF header
  buf.write('\x7fELF', 0, 'latin1');
  w8(4, cls === 64 ? 2 : 1);
  w8(5, le ? 1 : 2);
  w8(6, 1);
  w16(16, 3); // ET_DYN
  w16(18, cls === 64 ? 62 : 3); // EM_X86_64 / EM_386
  w32(20, 1);
  if (cls === 64) {
    w64(24, 0);
    w64(32, PHOFF);
    w64(40, SHOFF);
    w32(48, 0);
    w16(52, 64);
    w16(54, phentsize);
    w16(56, phdrs.length);
    w16(58, shentsize);
    w16(60, sections.length);
    w16(62, sections.length - 1);
  } else {
    w32(24, 0);
    w32(28, PHOFF);
    w32(32, SHOFF);
    w32(36, 0);
    w16(40, 52);
    w16(42, phentsize);
    w16(44, phdrs.length);
    w16(46, shentsize);
    w16(48, sections.length);
    w16(50, sections.length - 1);
  }
  return {
    buf: buf.subarray(0, SHOFF + sections.length * shentsize),
    delta: BASE,
    symbols,
    buildId: idBytes.toString('hex'),
    soname,
    needed,
    interp,
    debugLink,
    loadFilesz,
    loadMemsz,
  };
}
