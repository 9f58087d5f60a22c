import { DT_FLAGS_1, DT_NEEDED, DT_NULL, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_STRSZ, DT_STRTAB, type DynamicInfo } from './metadata';
import { escapePathBytes } from '../util/path-bytes';

/** Reads `length` bytes at file offset `offset` (short at end of file). */
export type FileRead = (offset: number, length: number) => Buffer;

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const PT_NOTE = 4;
const NT_GNU_BUILD_ID = 3;
/** A build-id note is 20 bytes of SHA-1 (or 16 of md5/uuid); PT_NOTE segments are a few hundred bytes. */
const MAX_NOTES = 64 * 1024;
/** Sanity bounds: a real dynamic array or string table is far smaller. */
const MAX_DYNAMIC = 64 * 1024;
/** PATH_MAX: no DT_NEEDED/RUNPATH string a loader accepts is longer. */
const MAX_NAME = 4096;
const MAX_PHNUM = 256;

/**
 * DT_NEEDED, DT_SONAME, DT_RPATH and DT_RUNPATH read the way ld.so reads them — ELF header,
 * program headers, PT_DYNAMIC and the DT_STRTAB bytes — so a lookup costs a few small reads
 * instead of the whole file (the start-up classification of every loaded object asks this on the
 * hot path). Pure over `read`. Undefined when the file is not an ELF object with a dynamic section.
 */
export function readDynamicInfo(read: FileRead): DynamicInfo | undefined {
  const eh = read(0, 64);
  if (eh.length < 52 || eh.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const is64 = eh[4] === 2;
  const le = eh[5] === 1;
  const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const word = (b: Buffer, o: number) => (is64 ? Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)) : u32(b, o));
  if (is64 && eh.length < 64) return undefined;
  const phoff = word(eh, is64 ? 32 : 28);
  const phentsize = u16(eh, is64 ? 54 : 42);
  const phnum = u16(eh, is64 ? 56 : 44);
  if (phnum === 0 || phnum > MAX_PHNUM || phentsize < (is64 ? 56 : 32)) return undefined;
  const ph = read(phoff, phentsize * phnum);
  if (ph.length < phentsize * phnum) return undefined;
  const segs = Array.from({ length: phnum }, (_, i) => {
    const o = i * phentsize;
    return is64
      ? { type: u32(ph, o), offset: word(ph, o + 8), vaddr: word(ph, o + 16), filesz: word(ph, o + 32), align: word(ph, o + 48) }
      : { type: u32(ph, o), offset: u32(ph, o + 4), vaddr: u32(ph, o + 8), filesz: u32(ph, o + 16), align: u32(ph, o + 28) };
  });
  let buildId: string | undefined;
  for (const n of segs) {
    if (n.type !== PT_NOTE || n.filesz === 0 || n.filesz > MAX_NOTES || buildId !== undefined) continue;
    const notes = read(n.offset, n.filesz);
    // Elf_Nhdr is three u32 in both classes; name and desc are padded to the segment's alignment
    // (8 for .note.gnu.property on 64-bit, else 4).
    const pad = n.align === 8 ? 8 : 4;
    const up = (x: number) => Math.ceil(x / pad) * pad;
    for (let o = 0; o + 12 <= notes.length; ) {
      const namesz = u32(notes, o);
      const descsz = u32(notes, o + 4);
      const type = u32(notes, o + 8);
      const descAt = o + 12 + up(namesz);
      if (descAt + descsz > notes.length) break;
      if (type === NT_GNU_BUILD_ID && namesz === 4 && notes.toString('latin1', o + 12, o + 15) === 'GNU' && descsz > 0 && descsz <= 64) {
        buildId = notes.toString('hex', descAt, descAt + descsz);
        break;
      }
      o = descAt + up(descsz);
    }
  }
  const withBuildId = buildId === undefined ? {} : { buildId };
  const ip = segs.find((s) => s.type === PT_INTERP);
  let interp: string | undefined;
  if (ip && ip.filesz > 1 && ip.filesz <= MAX_NAME) {
    const raw = read(ip.offset, ip.filesz);
    const nul = raw.indexOf(0);
    interp = escapePathBytes(raw.subarray(0, nul < 0 ? raw.length : nul));
  }
  const withInterp = { ...(interp === undefined ? {} : { interp }), ...withBuildId };
  const dyn = segs.find((s) => s.type === PT_DYNAMIC);
  if (!dyn || dyn.filesz === 0 || dyn.filesz > MAX_DYNAMIC) return dyn ? undefined : { needed: [], ...withInterp };
  const d = read(dyn.offset, dyn.filesz);
  const ent = is64 ? 16 : 8;
  const entries: Array<[number, number]> = [];
  for (let o = 0; o + ent <= d.length; o += ent) {
    const tag = is64 ? Number(le ? d.readBigInt64LE(o) : d.readBigInt64BE(o)) : u32(d, o);
    if (tag === DT_NULL) break;
    entries.push([tag, word(d, o + (is64 ? 8 : 4))]);
  }
  const value = (tag: number) => entries.find(([t]) => t === tag)?.[1];
  const strVaddr = value(DT_STRTAB);
  const strsz = value(DT_STRSZ);
  if (strVaddr === undefined || strsz === undefined) return { needed: [], ...withInterp };
  const load = segs.find((s) => s.type === PT_LOAD && strVaddr >= s.vaddr && strVaddr + strsz <= s.vaddr + s.filesz);
  if (!load) return undefined;
  const strOff = strVaddr - load.vaddr + load.offset;
  // Read each string where it is instead of the whole table (a large program's .dynstr is
  // megabytes of exported symbol names; the few names wanted here are a few bytes each).
  const str = (off: number | undefined): string | undefined => {
    if (off === undefined || off >= strsz) return undefined;
    let acc = Buffer.alloc(0);
    for (let at = off; at < strsz && acc.length < MAX_NAME; at += 256) {
      const chunk = read(strOff + at, Math.min(256, strsz - at));
      if (chunk.length === 0) break;
      const nul = chunk.indexOf(0);
      acc = Buffer.concat([acc, nul < 0 ? chunk : chunk.subarray(0, nul)]);
      if (nul >= 0) break;
    }
    // names are bytes: soload's path escaping keeps them exact (util/path-bytes.ts)
    return escapePathBytes(acc);
  };
  const soname = str(value(DT_SONAME));
  const flags1 = value(DT_FLAGS_1);
  const rpath = str(value(DT_RPATH));
  const runpath = str(value(DT_RUNPATH));
  return {
    ...(soname === undefined ? {} : { soname }),
    needed: entries.filter(([t]) => t === DT_NEEDED).map(([, v]) => str(v) ?? ''),
    ...(rpath === undefined ? {} : { rpath }),
    ...(runpath === undefined ? {} : { runpath }),
    ...(flags1 === undefined ? {} : { flags1 }),
    ...withInterp,
  };
}
