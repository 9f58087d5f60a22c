import { Parser as ElfyParser, type ElfyFile } from 'elfy';
import { ErrorCodes, SoloadError } from '../errors';

/** ELF constants soload needs (values from the System V gABI and the GNU extensions). */
export const PT_LOAD = 1;
export const PT_DYNAMIC = 2;
export const PT_INTERP = 3;
export const PT_NOTE = 4;
export const SHT_SYMTAB = 2;
export const SHT_STRTAB = 3;
export const SHT_DYNAMIC = 6;
export const SHT_NOTE = 7;
export const SHT_NOBITS = 8;
export const SHT_DYNSYM = 11;
export const SHT_GNU_VERDEF = 0x6ffffffd;
export const SHT_GNU_VERNEED = 0x6ffffffe;
export const SHT_GNU_VERSYM = 0x6fffffff;

/** ELFCLASS32 or ELFCLASS64. */
export type ElfClass = 32 | 64;
/** Byte order of every multi-byte field in the file. */
export type Endian = 'le' | 'be';

/** One program header (segment). Addresses above 2^53 lose precision; user-space objects never have them. */
export interface ProgramHeader {
  /** p_type, raw (PT_LOAD = 1, …). */
  readonly type: number;
  /** p_flags, raw (PF_X = 1, PF_W = 2, PF_R = 4). */
  readonly flags: number;
  readonly offset: number;
  readonly vaddr: number;
  readonly filesz: number;
  readonly memsz: number;
  readonly align: number;
}

/** One section header, with its name resolved through .shstrtab. */
export interface SectionHeader {
  readonly index: number;
  readonly name: string;
  /** sh_type, raw (SHT_DYNSYM = 11, …). */
  readonly type: number;
  readonly flags: number;
  readonly addr: number;
  readonly offset: number;
  readonly size: number;
  readonly link: number;
  readonly info: number;
  readonly addralign: number;
  readonly entsize: number;
}

/**
 * A parsed ELF file: header fields plus program and section headers, and the buffer they came from
 * (the pure decoders read section contents from it). Do not cache an ElfImage: it pins the buffer.
 */
export interface ElfImage {
  /** Name used in error messages (normally the path). */
  readonly file: string;
  readonly buf: Buffer;
  readonly class: ElfClass;
  readonly endian: Endian;
  /** e_type (ET_EXEC = 2, ET_DYN = 3, …). */
  readonly type: number;
  /** e_machine (EM_X86_64 = 62, EM_386 = 3, EM_AARCH64 = 183, …). */
  readonly machineId: number;
  /** elfy's name for e_machine (e.g. 'amd64', '386', 'AArch64'), or `unknown(N)`. */
  readonly machine: string;
  readonly segments: readonly ProgramHeader[];
  readonly sections: readonly SectionHeader[];
}

/** Endian- and class-aware field reader over a buffer, raising ELF_INVALID instead of RangeError. */
export class ElfReader {
  constructor(
    readonly buf: Buffer,
    readonly endian: Endian,
    readonly file: string,
  ) {}

  private check(off: number, len: number): void {
    if (!Number.isInteger(off) || off < 0 || off + len > this.buf.length) {
      throw invalid(this.file, `field at offset ${off} (+${len}) lies outside the file (${this.buf.length} bytes)`);
    }
  }

  u8(off: number): number {
    this.check(off, 1);
    return this.buf[off];
  }

  u16(off: number): number {
    this.check(off, 2);
    return this.endian === 'le' ? this.buf.readUInt16LE(off) : this.buf.readUInt16BE(off);
  }

  u32(off: number): number {
    this.check(off, 4);
    return this.endian === 'le' ? this.buf.readUInt32LE(off) : this.buf.readUInt32BE(off);
  }

  u64(off: number): number {
    this.check(off, 8);
    return Number(this.endian === 'le' ? this.buf.readBigUInt64LE(off) : this.buf.readBigUInt64BE(off));
  }

  /** Signed 64-bit (d_tag is an Elf64_Sxword); DT_* tags soload reads are small positives. */
  i64(off: number): number {
    this.check(off, 8);
    return Number(this.endian === 'le' ? this.buf.readBigInt64LE(off) : this.buf.readBigInt64BE(off));
  }

  /** A word of the file's class: Elf32_Word/Addr or Elf64_Xword/Addr. */
  word(cls: ElfClass, off: number): number {
    return cls === 64 ? this.u64(off) : this.u32(off);
  }

  slice(off: number, len: number): Buffer {
    this.check(off, len);
    return this.buf.subarray(off, off + len);
  }
}

/** Reader for an image's buffer. */
export function readerFor(image: ElfImage): ElfReader {
  return new ElfReader(image.buf, image.endian, image.file);
}

/**
 * Why a file could not be read as an ELF object (`details.reason` of ELF_INVALID, the `reason` of the
 * soload.elf.invalid metric): `unreadable` (cannot be opened), `not_elf` (no ELF magic: e.g. a Java
 * `.jsa` archive the JVM maps executable), `headers` (truncated or corrupt ELF/program/section
 * headers), `contents` (a table, string or note the headers point to is outside the file or corrupt).
 */
export type ElfInvalidReason = 'unreadable' | 'not_elf' | 'headers' | 'contents';

/** Every ElfInvalidReason, in the order the metric reports them. */
export const ELF_INVALID_REASONS: readonly ElfInvalidReason[] = ['unreadable', 'not_elf', 'headers', 'contents'];

/** SoloadError ELF_INVALID naming the file. */
export function invalid(file: string, why: string, cause?: unknown, reason: ElfInvalidReason = 'contents'): SoloadError {
  return new SoloadError(
    ErrorCodes.ELF_INVALID,
    `${file} is not a valid ELF object: ${why}`,
    { file, reason },
    cause === undefined ? undefined : { cause },
  );
}

/**
 * Parse ELF header, program headers and section headers of `buf` with elfy.
 *
 * elfy@1.0.0 quirks handled here: on ELFCLASS64 it reads sh_addralign/sh_entsize from offsets 46/54
 * instead of 48/56; it maps p_type/sh_type/flags to names through lossy tables (unknown types become
 * undefined, colliding ones are overwritten); and it silently clamps section data to the buffer.
 * So elfy supplies the header layout, names and offsets, and the raw type/flags/addralign/entsize
 * words are re-read from the header bytes. Section contents are bounds-checked when read.
 *
 * @param buf whole file contents
 * @param nameForErrors file name used in ELF_INVALID messages
 * @throws SoloadError ELF_INVALID when `buf` is not a (complete) ELF file
 */
export function parseElf(buf: Buffer, nameForErrors: string): ElfImage {
  if (buf.length < 4 || buf[0] !== 0x7f || buf[1] !== 0x45 || buf[2] !== 0x4c || buf[3] !== 0x46) {
    throw invalid(nameForErrors, 'no ELF magic (\\x7fELF) at the start of the file', undefined, 'not_elf');
  }
  let parsed: ElfyFile;
  try {
    // elfy.parse() would also resolve section names when the file has no section headers (an
    // sstrip'ed object is still loadable) and crash on the missing .shstrtab; run its steps instead.
    const parser = new ElfyParser();
    const header = parser.parseHeader(buf);
    const body = parser.parseBody(buf, header);
    parsed = { ...header, body: body.sections.length > 0 ? parser.resolveBody(body, header) : body };
  } catch (err) {
    throw invalid(nameForErrors, `truncated or corrupt headers (${(err as Error).message})`, err, 'headers');
  }
  const cls: ElfClass = parsed.class === '64' ? 64 : 32;
  const endian: Endian = parsed.endian === 'lsb' ? 'le' : 'be';
  const r = new ElfReader(buf, endian, nameForErrors);

  const phentMin = cls === 64 ? 56 : 32;
  const shentMin = cls === 64 ? 64 : 40;
  if (parsed.body.programs.length > 0 && parsed.phentsize < phentMin) {
    throw invalid(nameForErrors, `e_phentsize ${parsed.phentsize} is smaller than a program header (${phentMin})`, undefined, 'headers');
  }
  if (parsed.body.sections.length > 0 && parsed.shentsize < shentMin) {
    throw invalid(nameForErrors, `e_shentsize ${parsed.shentsize} is smaller than a section header (${shentMin})`, undefined, 'headers');
  }

  const segments: ProgramHeader[] = parsed.body.programs.map((p, i) => {
    const base = parsed.phoff + i * parsed.phentsize;
    return Object.freeze({
      type: r.u32(base),
      flags: r.u32(cls === 64 ? base + 4 : base + 24),
      offset: p.offset,
      vaddr: p.vaddr,
      filesz: p.filesz,
      memsz: p.memsz,
      align: p.align,
    });
  });

  const sections: SectionHeader[] = parsed.body.sections.map((s, i) => {
    const base = parsed.shoff + i * parsed.shentsize;
    return Object.freeze({
      index: i,
      name: s.name,
      type: r.u32(base + 4),
      flags: r.word(cls, base + 8),
      addr: s.addr,
      offset: s.off,
      size: s.size,
      link: s.link,
      info: s.info,
      addralign: r.word(cls, cls === 64 ? base + 48 : base + 32),
      entsize: r.word(cls, cls === 64 ? base + 56 : base + 36),
    });
  });

  return Object.freeze({
    file: nameForErrors,
    buf,
    class: cls,
    endian,
    type: r.u16(16),
    machineId: r.u16(18),
    machine: parsed.machine ?? `unknown(${r.u16(18)})`,
    segments: Object.freeze(segments),
    sections: Object.freeze(sections),
  });
}

/** Contents of a section; ELF_INVALID when it is SHT_NOBITS or extends past the end of the file. */
export function sectionData(image: ElfImage, section: SectionHeader): Buffer {
  if (section.type === SHT_NOBITS) {
    throw invalid(image.file, `section ${section.name || section.index} has no file contents (SHT_NOBITS)`);
  }
  if (section.offset + section.size > image.buf.length) {
    throw invalid(
      image.file,
      `section ${section.name || section.index} (offset ${section.offset}, size ${section.size}) extends past the end of the file (${image.buf.length} bytes)`,
    );
  }
  return image.buf.subarray(section.offset, section.offset + section.size);
}

/** Contents of a segment's file image (p_offset .. p_offset+p_filesz), bounds-checked. */
export function segmentData(image: ElfImage, segment: ProgramHeader): Buffer {
  if (segment.offset + segment.filesz > image.buf.length) {
    throw invalid(
      image.file,
      `segment at offset ${segment.offset} (filesz ${segment.filesz}) extends past the end of the file (${image.buf.length} bytes)`,
    );
  }
  return image.buf.subarray(segment.offset, segment.offset + segment.filesz);
}

/** First section with this name, if any. */
export function findSection(image: ElfImage, name: string): SectionHeader | undefined {
  return image.sections.find((s) => s.name === name);
}

/** Longest string read from a string table: far above PATH_MAX and the longest C++ symbol names. */
export const MAX_STRING = 64 * 1024;

/** End (exclusive) of the string at `off`: its NUL, or the table's end; ELF_INVALID when over MAX_STRING. */
function stringEnd(table: Buffer, off: number, file: string): number {
  if (off >= table.length && !(off === 0 && table.length === 0)) {
    throw invalid(file, `string offset ${off} is outside its string table (${table.length} bytes)`);
  }
  // Scan at most MAX_STRING bytes: a table without NULs must not cost a scan of the whole table per entry.
  const limit = Math.min(table.length, off + MAX_STRING + 1);
  const rel = table.subarray(off, limit).indexOf(0);
  if (rel !== -1) return off + rel;
  if (limit < table.length) throw invalid(file, `the string at offset ${off} of its string table is longer than ${MAX_STRING} bytes (no NUL terminator)`);
  return table.length;
}

/** NUL-terminated string at `off` in a string table; ELF_INVALID if `off` is outside it or the string is over MAX_STRING. */
export function readCString(table: Buffer, off: number, file: string): string {
  return table.toString('utf8', off, stringEnd(table, off, file));
}

/**
 * The strings of one string table, read by offset for a whole table of entries (symbols, DT_NEEDED,
 * relocations): each offset is decoded once, and the bytes decoded in all are bounded by four times
 * the table plus 1 MiB. Without the bound, entries pointing into strings that lack their NUL (or
 * into the middle of one long string) cost entries × length time and memory: a few-MiB file could
 * make soload decode gigabytes. Real tables stay far below it (tail merging shares a few suffixes).
 */
export class StringTable {
  private readonly cache = new Map<number, string>();
  private budget: number;

  constructor(
    readonly table: Buffer,
    readonly file: string,
  ) {
    this.budget = 4 * table.length + 1024 * 1024;
  }

  /** The string at `off` (ELF_INVALID when outside the table, over MAX_STRING or over the budget). */
  at(off: number): string {
    const hit = this.cache.get(off);
    if (hit !== undefined) return hit;
    const end = stringEnd(this.table, off, this.file);
    this.budget -= end - off + 1;
    if (this.budget < 0) {
      throw invalid(this.file, `its entries point into a ${this.table.length}-byte string table for more than four times its size in strings (strings without NUL terminators)`);
    }
    const s = this.table.toString('utf8', off, end);
    this.cache.set(off, s);
    return s;
  }
}
