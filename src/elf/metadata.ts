import {
  ElfImage,
  Endian,
  PT_DYNAMIC,
  PT_INTERP,
  PT_NOTE,
  SHT_DYNAMIC,
  SHT_NOTE,
  SHT_STRTAB,
  findSection,
  invalid,
  StringTable,
  readerFor,
  sectionData,
  segmentData,
} from './image';
import { loadSegmentFor } from './offsets';

/** d_tag values of the dynamic entries soload reads (<elf.h>). */
export const DT_NULL = 0;
export const DT_NEEDED = 1;
export const DT_STRTAB = 5;
export const DT_STRSZ = 10;
export const DT_SONAME = 14;
export const DT_RPATH = 15;
export const DT_RUNPATH = 29;
export const DT_INIT = 12;
export const DT_FLAGS_1 = 0x6ffffffb;
/** DF_1_NODEFLIB in DT_FLAGS_1. */
export const DF_1_NODEFLIB = 0x800;

/** Strings from the dynamic section. */
export interface DynamicInfo {
  /** DT_SONAME. */
  readonly soname?: string;
  /** DT_NEEDED entries, in order. */
  readonly needed: readonly string[];
  /** DT_RPATH (deprecated, still honoured when there is no DT_RUNPATH). */
  readonly rpath?: string;
  /** DT_RUNPATH. */
  readonly runpath?: string;
  /** PT_INTERP: the program interpreter a program asks for (only programs have one). */
  readonly interp?: string;
  /** DT_INIT: virtual address of the object's initialisation function, run once when it is loaded. */
  readonly init?: number;
  /** DT_FLAGS_1 (DF_1_NODEFLIB: ld.so skips its cache and default directories for this object's dependencies). */
  readonly flags1?: number;
  /** NT_GNU_BUILD_ID as lowercase hex (the light reader fills it from PT_NOTE). */
  readonly buildId?: string;
}

/**
 * Decode DT_SONAME, DT_NEEDED, DT_RPATH and DT_RUNPATH. The dynamic array is taken from PT_DYNAMIC
 * (what the loader uses), else from the .dynamic section. Its strings come from DT_STRTAB translated
 * through PT_LOAD (works on objects without section headers), else from .dynamic's sh_link.
 */
export function decodeDynamic(image: ElfImage): DynamicInfo {
  const seg = image.segments.find((s) => s.type === PT_DYNAMIC);
  const sec = image.sections.find((s) => s.type === SHT_DYNAMIC);
  let data: Buffer;
  let base: number;
  if (seg && seg.filesz > 0) {
    data = segmentData(image, seg);
    base = seg.offset;
  } else if (sec) {
    data = sectionData(image, sec);
    base = sec.offset;
  } else {
    return { needed: [] };
  }

  const r = readerFor(image);
  const entsize = image.class === 64 ? 16 : 8;
  const entries: Array<[number, number]> = [];
  for (let off = 0; off + entsize <= data.length; off += entsize) {
    const at = base + off;
    const tag = image.class === 64 ? r.i64(at) : r.u32(at);
    if (tag === DT_NULL) break;
    entries.push([tag, image.class === 64 ? r.u64(at + 8) : r.u32(at + 4)]);
  }
  const value = (tag: number): number | undefined => entries.find(([t]) => t === tag)?.[1];

  let strings: Buffer | undefined;
  const strtabVaddr = value(DT_STRTAB);
  const strsz = value(DT_STRSZ);
  if (strtabVaddr !== undefined && strsz !== undefined) {
    const load = loadSegmentFor(image, strtabVaddr);
    if (load && strtabVaddr + strsz <= load.vaddr + load.filesz) {
      strings = r.slice(strtabVaddr - load.vaddr + load.offset, strsz);
    }
  }
  if (!strings && sec) {
    const linked = image.sections[sec.link];
    if (linked && linked.type === SHT_STRTAB) strings = sectionData(image, linked);
  }
  const hasStrings = entries.some(([t]) => t === DT_NEEDED || t === DT_SONAME || t === DT_RPATH || t === DT_RUNPATH);
  const init = value(DT_INIT);
  if (!strings) {
    if (hasStrings) throw invalid(image.file, 'the dynamic section names strings but its string table cannot be located');
    return { needed: [], ...(init === undefined ? {} : { init }) };
  }
  const strtab = new StringTable(strings, image.file);
  const str = (off: number | undefined): string | undefined => (off === undefined ? undefined : strtab.at(off));

  const soname = str(value(DT_SONAME));
  const rpath = str(value(DT_RPATH));
  const runpath = str(value(DT_RUNPATH));
  return {
    ...(soname === undefined ? {} : { soname }),
    needed: entries.filter(([t]) => t === DT_NEEDED).map(([, v]) => strtab.at(v)),
    ...(rpath === undefined ? {} : { rpath }),
    ...(runpath === undefined ? {} : { runpath }),
    ...(init === undefined ? {} : { init }),
  };
}

/** PT_INTERP contents (the program interpreter path), or undefined. */
export function decodeInterpreter(image: ElfImage): string | undefined {
  const seg = image.segments.find((s) => s.type === PT_INTERP);
  if (!seg) return undefined;
  const data = segmentData(image, seg);
  const end = data.indexOf(0);
  return data.toString('utf8', 0, end === -1 ? data.length : end);
}

/** One ELF note. */
export interface ElfNote {
  readonly name: string;
  readonly type: number;
  readonly desc: Buffer;
}

/**
 * Decode a note area (Elf_Nhdr: namesz u32, descsz u32, type u32, then name and desc, each padded to
 * `align`). The header is the same for both classes; the padding is 4 except in areas aligned to 8
 * (e.g. .note.gnu.property on 64-bit), which use 8.
 */
export function decodeNotes(data: Buffer, endian: Endian, align = 4, file = '<buffer>'): ElfNote[] {
  const pad = align === 8 ? 8 : 4;
  const up = (n: number): number => Math.ceil(n / pad) * pad;
  const u32 = (off: number): number => (endian === 'le' ? data.readUInt32LE(off) : data.readUInt32BE(off));
  const notes: ElfNote[] = [];
  let off = 0;
  while (off + 12 <= data.length) {
    const namesz = u32(off);
    const descsz = u32(off + 4);
    const type = u32(off + 8);
    const nameAt = off + 12;
    // Padding is relative to the note start: with 8-byte alignment a 4-byte "GNU" name is followed by
    // 0 pad bytes (12 + 4 = 16), not 4.
    const descAt = off + up(12 + namesz);
    if (descAt + descsz > data.length) throw invalid(file, `note at ${off} extends past its note area`);
    const rawName = data.subarray(nameAt, nameAt + namesz);
    const nul = rawName.indexOf(0);
    notes.push({ name: rawName.toString('utf8', 0, nul === -1 ? rawName.length : nul), type, desc: data.subarray(descAt, descAt + descsz) });
    off = descAt + up(descsz);
  }
  return notes;
}

const NT_GNU_BUILD_ID = 3;

/**
 * The GNU build ID (NT_GNU_BUILD_ID) as lowercase hex, from SHT_NOTE sections (normally
 * .note.gnu.build-id) or, when the object has no section headers, from PT_NOTE segments.
 */
export function decodeBuildId(image: ElfImage): string | undefined {
  const areas: Array<{ data: Buffer; align: number }> = [];
  for (const s of image.sections) {
    if (s.type === SHT_NOTE && s.offset + s.size <= image.buf.length) areas.push({ data: sectionData(image, s), align: s.addralign });
  }
  if (areas.length === 0) {
    for (const p of image.segments) {
      if (p.type === PT_NOTE) areas.push({ data: segmentData(image, p), align: p.align });
    }
  }
  // Real note areas are disjoint, so together they are at most the file; thousands of headers naming
  // the same large area are not, and would cost headers × area size. Scan at most the file's size.
  let budget = image.buf.length;
  for (const area of areas) {
    budget -= area.data.length;
    if (budget < 0) break;
    let notes: ElfNote[];
    try {
      notes = decodeNotes(area.data, image.endian, area.align, image.file);
    } catch {
      // A malformed note area of some other vendor must not make the whole object unusable.
      continue;
    }
    const note = notes.find((n) => n.type === NT_GNU_BUILD_ID && n.name === 'GNU');
    if (note && note.desc.length > 0) return note.desc.toString('hex');
  }
  return undefined;
}

/** A .gnu_debuglink: the debug file's base name and the CRC-32 of its whole contents. */
export interface DebugLink {
  readonly name: string;
  readonly crc: number;
}

/** Decode .gnu_debuglink: NUL-terminated name, padding to 4, then a CRC-32 in the file's byte order. */
export function decodeDebugLink(image: ElfImage): DebugLink | undefined {
  const sec = findSection(image, '.gnu_debuglink');
  if (!sec) return undefined;
  const data = sectionData(image, sec);
  const nul = data.indexOf(0);
  if (nul <= 0) throw invalid(image.file, '.gnu_debuglink has no file name');
  const crcAt = Math.ceil((nul + 1) / 4) * 4;
  if (crcAt + 4 > data.length) throw invalid(image.file, '.gnu_debuglink has no CRC');
  return { name: data.toString('utf8', 0, nul), crc: readerFor(image).u32(sec.offset + crcAt) };
}

let crcTable: Uint32Array | undefined;

/**
 * CRC-32 (IEEE 802.3, reflected, as zlib's crc32) — the checksum .gnu_debuglink stores. Written out
 * because zlib.crc32 only exists from Node 20.15 and soload supports 20.6.
 */
export function crc32(data: Uint8Array, seed = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = ~seed >>> 0;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return ~crc >>> 0;
}
