/**
 * `/etc/ld.so.cache`, the index ldconfig writes and glibc's ld.so consults (after DT_RPATH,
 * LD_LIBRARY_PATH and DT_RUNPATH, before the default directories) to turn a DT_NEEDED name such as
 * `libz.so.1` into a path. Pure over a Buffer; the caller reads the file (inside the process's root).
 *
 * Layouts read (glibc's sysdeps/generic/dl-cache.h, elf/cache.c):
 * - "new" only: header `glibc-ld.so.cache` `1.1` (48 bytes), 24-byte entries; string offsets are
 *   relative to the header, i.e. to the file start. ldconfig ≥ 2.32 writes only this.
 * - "old" `ld.so-1.7.0` (16-byte header, 12-byte entries; string offsets relative to the end of the
 *   entry array), optionally with a new-format table hidden at the start of its string table
 *   (aligned to 8; older ldconfig's default "compat" format). As glibc does, the embedded new table is
 *   used when present, and its string offsets are relative to the embedded header.
 *
 * Byte order: the new header's flags byte says which one ldconfig wrote, and both are honoured.
 * A file without that information (old format, or flags 0 from an older ldconfig) is read in the
 * host's byte order, which is what the loader on the same kernel does.
 */
import { endianness } from 'node:os';
import { ErrorCodes, SoloadError } from '../errors';

/** FLAG_ELF_LIBC6 (ldconfig.h): a glibc (libc6) ELF library. The low byte is the library type. */
export const LDCACHE_FLAG_ELF_LIBC6 = 0x0003;
/** FLAG_ELF: an ELF library of unknown libc, accepted by loaders that use the generic check. */
export const LDCACHE_FLAG_ELF = 0x0001;
/** FLAG_X8664_LIB64: x86-64 (LP64). */
export const LDCACHE_FLAG_X8664_LIB64 = 0x0300;
/** FLAG_X8664_LIBX32: x86-64 x32 ABI (ELFCLASS32 EM_X86_64). */
export const LDCACHE_FLAG_X8664_LIBX32 = 0x0800;
/** FLAG_AARCH64_LIB64: AArch64 (LP64). */
export const LDCACHE_FLAG_AARCH64_LIB64 = 0x0a00;

/** One library entry of the cache, in file order. */
export interface LdCacheEntry {
  /** The name a DT_NEEDED/dlopen lookup matches (the library's soname or file name). */
  name: string;
  /** Path ldconfig recorded, as it found it (through the directories of ld.so.conf, unresolved). */
  path: string;
  /** ldconfig's flags: library type in the low byte, ABI in `0xff00` (LDCACHE_FLAG_*). */
  flags: number;
  /** The entry's hwcap word (new format only; 0 for an ordinary entry). */
  hwcap: bigint;
  /**
   * For an entry in a `glibc-hwcaps/<name>/` subdirectory (glibc ≥ 2.33): that name, e.g.
   * `x86-64-v3`. ld.so uses such an entry instead of the ordinary one only when the CPU supports it.
   */
  hwcaps?: string;
}

/** A parsed cache. */
export interface LdCache {
  /** Which table was read: new only, old only, or the new table embedded in an old one. */
  format: 'new' | 'old' | 'old+new';
  /** Every entry, in file order (ldconfig sorts them; see lookup()). */
  entries: readonly LdCacheEntry[];
  /** The ldconfig that wrote the file, e.g. `ldconfig (Debian GLIBC 2.36-9+deb12u4) ...`, when recorded. */
  generator?: string;
  /**
   * Defects ld.so tolerates (a malformed extension section: hwcaps names are then unknown, as they
   * are to ld.so, but the entries stay usable). Empty for a clean file.
   */
  problems: readonly string[];
  /**
   * Entries for `name`, in cache order. Names compare as glibc's `_dl_cache_libcmp` compares them:
   * runs of digits by numeric value (`libfoo.so.01` finds `libfoo.so.1`), the rest bytewise.
   * `flags` keeps entries whose flags equal the value (or one of the values, see ldCacheFlagsFor()).
   *
   * Order is ld.so's preference order: ldconfig stores, for one name, higher flags first and
   * glibc-hwcaps entries before the ordinary one. ld.so takes the best glibc-hwcaps entry the CPU
   * supports, else the first ordinary entry of the right flags, and never looks at later ones.
   */
  entriesFor(name: string, flags?: number | readonly number[]): LdCacheEntry[];
  /** Paths of entriesFor(name, flags). */
  lookup(name: string, flags?: number | readonly number[]): string[];
}

const MAGIC_OLD = 'ld.so-1.7.0';
const MAGIC_NEW = 'glibc-ld.so.cache1.1';
const OLD_HEADER = 16;
const OLD_ENTRY = 12;
const NEW_HEADER = 48;
const NEW_ENTRY = 24;
const EXTENSION_MAGIC = 0xeaa42174; // (uint32_t) -358342284
const EXT_TAG_GENERATOR = 0;
const EXT_TAG_GLIBC_HWCAPS = 1;
const HWCAP_EXTENSION = 1n << 62n;
const ISA_LEVEL_MASK = 0x3ffn;

/** Thrown for a file that is not a usable ld.so.cache (SOLOAD_ERR_LDCACHE_INVALID); the message starts with `ld.so.cache:`. */
function bad(what: string): never {
  throw new SoloadError(ErrorCodes.LDCACHE_INVALID, `ld.so.cache: ${what}`);
}

interface Reader {
  u32(off: number): number;
  i32(off: number): number;
  u64(off: number): bigint;
}

function reader(buf: Buffer, little: boolean): Reader {
  return little
    ? { u32: (o) => buf.readUInt32LE(o), i32: (o) => buf.readInt32LE(o), u64: (o) => buf.readBigUInt64LE(o) }
    : { u32: (o) => buf.readUInt32BE(o), i32: (o) => buf.readInt32BE(o), u64: (o) => buf.readBigUInt64BE(o) };
}

const HOST_LITTLE = endianness() === 'LE';

/** NUL-terminated string at `base + off`, which must lie inside the buffer. */
function cString(buf: Buffer, base: number, off: number, what: string): string {
  const at = base + off;
  if (off < 0 || at >= buf.length) bad(`${what} string offset ${off} is outside the file`);
  const nul = buf.indexOf(0, at);
  if (nul < 0) bad(`${what} string at ${at} is not terminated`);
  return buf.toString('utf8', at, nul);
}

/**
 * The key under which `_dl_cache_libcmp` considers two names equal: leading zeros of every digit
 * run dropped, so equal numbers compare equal however they are written.
 */
function libcmpKey(name: string): string {
  return /\d/.test(name) ? name.replace(/\d+/g, (d) => d.replace(/^0+(?=\d)/, '')) : name;
}

function parseNew(buf: Buffer, base: number, problems: string[]): { entries: LdCacheEntry[]; generator?: string } {
  if (buf.length - base < NEW_HEADER) bad(`new-format header truncated (${buf.length - base} bytes)`);
  const endianBits = buf[base + 28]! & 3;
  if (endianBits === 1) bad('header flags mark the cache invalid (endian_invalid)');
  const r = reader(buf, endianBits === 0 ? HOST_LITTLE : endianBits === 2);
  const nlibs = r.u32(base + 20);
  // Bounded by the buffer before anything is allocated, as ld.so checks it.
  if (Math.floor((buf.length - base - NEW_HEADER) / NEW_ENTRY) < nlibs) bad(`${nlibs} entries do not fit in ${buf.length} bytes`);
  const extensionOffset = r.u32(base + 32);
  const raw: Array<{ flags: number; name: string; path: string; hwcap: bigint }> = [];
  for (let i = 0; i < nlibs; i++) {
    const o = base + NEW_HEADER + i * NEW_ENTRY;
    raw.push({
      flags: r.i32(o),
      name: cString(buf, base, r.u32(o + 4), `entry ${i} name`),
      path: cString(buf, base, r.u32(o + 8), `entry ${i} path`),
      hwcap: r.u64(o + 16),
    });
  }
  // Extension directory: offsets are from the file start (cache_extension_load gets the file base).
  let generator: string | undefined;
  let hwcapsNames: Array<string | undefined> | undefined;
  if (extensionOffset !== 0) {
    const ext = readExtensions(buf, r, extensionOffset);
    if (typeof ext === 'string') problems.push(ext);
    else {
      generator = ext.generator;
      hwcapsNames = ext.hwcaps;
    }
  }
  const entries = raw.map((e): LdCacheEntry => {
    const entry: LdCacheEntry = { name: e.name, path: e.path, flags: e.flags, hwcap: e.hwcap };
    // dl_cache_hwcap_extension: only the extension bit set in the upper word, ignoring ISA-level bits.
    if (((e.hwcap >> 32n) & ~ISA_LEVEL_MASK) === HWCAP_EXTENSION >> 32n) {
      const name = hwcapsNames?.[Number(e.hwcap & 0xffffffffn)];
      if (name !== undefined) entry.hwcaps = name;
    }
    return entry;
  });
  return generator === undefined ? { entries } : { entries, generator };
}

function readExtensions(buf: Buffer, r: Reader, at: number): { generator?: string; hwcaps?: Array<string | undefined> } | string {
  if (at % 4 !== 0) return `extension offset ${at} is misaligned`;
  if (at + 8 > buf.length) return `extension directory at ${at} is outside the file`;
  if (r.u32(at) !== EXTENSION_MAGIC) return `extension directory at ${at} has a wrong magic`;
  const count = r.u32(at + 4);
  if (Math.floor((buf.length - at - 8) / 16) < count) return `${count} extension sections do not fit in the file`;
  const out: { generator?: string; hwcaps?: Array<string | undefined> } = {};
  for (let i = 0; i < count; i++) {
    const s = at + 8 + i * 16;
    const tag = r.u32(s);
    const offset = r.u32(s + 8);
    const size = r.u32(s + 12);
    if (offset + size > buf.length) return `extension section ${i} is outside the file`;
    if (tag === EXT_TAG_GENERATOR) out.generator = buf.toString('utf8', offset, offset + size).replace(/\0+$/, '');
    else if (tag === EXT_TAG_GLIBC_HWCAPS && size > 0 && offset % 4 === 0 && size % 4 === 0) {
      // An array of string-table indices (from the file start), one per glibc-hwcaps subdirectory.
      out.hwcaps = Array.from({ length: size / 4 }, (_, k) => {
        const idx = r.u32(offset + k * 4);
        if (idx >= buf.length) return undefined;
        const nul = buf.indexOf(0, idx);
        return nul < 0 ? undefined : buf.toString('utf8', idx, nul);
      });
    }
  }
  return out;
}

function parseOld(buf: Buffer): { entries: LdCacheEntry[]; newAt?: number } {
  if (buf.length < OLD_HEADER) bad(`old-format header truncated (${buf.length} bytes)`);
  const r = reader(buf, HOST_LITTLE);
  const nlibs = r.u32(12);
  if (Math.floor((buf.length - OLD_HEADER) / OLD_ENTRY) < nlibs) bad(`${nlibs} old-format entries do not fit in ${buf.length} bytes`);
  const end = OLD_HEADER + nlibs * OLD_ENTRY;
  // The new table sits at ALIGN_CACHE(end): 8 where struct cache_file_new is 8-aligned, 4 on
  // i386 and others. ldconfig pads the old table to an even count so both agree; try both anyway.
  for (const align of [8, 4]) {
    const at = Math.ceil(end / align) * align;
    if (buf.length >= at + NEW_HEADER && buf.toString('latin1', at, at + MAGIC_NEW.length) === MAGIC_NEW) return { entries: [], newAt: at };
  }
  const entries: LdCacheEntry[] = [];
  for (let i = 0; i < nlibs; i++) {
    const o = OLD_HEADER + i * OLD_ENTRY;
    entries.push({
      flags: r.i32(o),
      name: cString(buf, end, r.u32(o + 4), `entry ${i} name`),
      path: cString(buf, end, r.u32(o + 8), `entry ${i} path`),
      hwcap: 0n,
    });
  }
  return { entries };
}

/**
 * Parses an ld.so.cache file.
 * @throws Error whose message starts with `ld.so.cache:` when the buffer is not a cache ld.so would
 *   use (wrong magic, truncated, entry count or string offsets beyond the buffer, cache marked invalid)
 */
export function parseLdCache(buf: Buffer): LdCache {
  const problems: string[] = [];
  let format: LdCache['format'];
  let parsed: { entries: LdCacheEntry[]; generator?: string };
  if (buf.length >= MAGIC_NEW.length && buf.toString('latin1', 0, MAGIC_NEW.length) === MAGIC_NEW) {
    format = 'new';
    parsed = parseNew(buf, 0, problems);
  } else if (buf.length >= MAGIC_OLD.length && buf.toString('latin1', 0, MAGIC_OLD.length) === MAGIC_OLD) {
    const old = parseOld(buf);
    if (old.newAt === undefined) {
      format = 'old';
      parsed = old;
    } else {
      format = 'old+new';
      parsed = parseNew(buf, old.newAt, problems);
    }
  } else {
    bad(buf.length < MAGIC_OLD.length ? `truncated (${buf.length} bytes)` : 'not a cache file (unknown magic)');
  }
  const byName = new Map<string, LdCacheEntry[]>();
  for (const e of parsed.entries) {
    const k = libcmpKey(e.name);
    const list = byName.get(k);
    if (list) list.push(e);
    else byName.set(k, [e]);
  }
  const entriesFor = (name: string, flags?: number | readonly number[]): LdCacheEntry[] => {
    const list = byName.get(libcmpKey(name)) ?? [];
    if (flags === undefined) return list.slice();
    const ok = typeof flags === 'number' ? [flags] : flags;
    return list.filter((e) => ok.includes(e.flags));
  };
  const cache: LdCache = {
    format,
    entries: parsed.entries,
    problems,
    entriesFor,
    lookup: (name, flags) => entriesFor(name, flags).map((e) => e.path),
  };
  if (parsed.generator !== undefined) cache.generator = parsed.generator;
  return cache;
}

/**
 * The cache flags the loader of an ABI accepts, preferred first, as its `_dl_cache_check_flags`
 * does: x86-64 `0x303` (libc6,x86-64), x32 `0x803`, AArch64 `0xa03`; i386 uses glibc's generic
 * check, which takes libc6 (`0x003`) and plain ELF (`0x001`) entries. Undefined for a combination
 * glibc has no loader for (i386 with ELFCLASS64, AArch64 ILP32).
 */
export function ldCacheFlagsFor(machine: 'x86_64' | 'i386' | 'aarch64', elfClass: 32 | 64): readonly number[] | undefined {
  if (machine === 'x86_64') return [LDCACHE_FLAG_ELF_LIBC6 | (elfClass === 64 ? LDCACHE_FLAG_X8664_LIB64 : LDCACHE_FLAG_X8664_LIBX32)];
  if (machine === 'aarch64') return elfClass === 64 ? [LDCACHE_FLAG_ELF_LIBC6 | LDCACHE_FLAG_AARCH64_LIB64] : undefined;
  return elfClass === 32 ? [LDCACHE_FLAG_ELF_LIBC6, LDCACHE_FLAG_ELF] : undefined;
}

const ABI_LABELS: Record<number, string> = {
  0x0100: ',64bit',
  0x0300: ',x86-64',
  0x0400: ',64bit',
  0x0500: ',64bit',
  0x0600: ',N32',
  0x0700: ',64bit',
  0x0800: ',x32',
  0x0900: ',hard-float',
  0x0a00: ',AArch64',
  0x0b00: ',soft-float',
  0x0c00: ',nan2008',
  0x0d00: ',N32,nan2008',
  0x0e00: ',64bit,nan2008',
  0x0f00: ',soft-float',
  0x1000: ',double-float',
  0x1100: ',soft-float',
  0x1200: ',double-float',
};

/** The flags as `ldconfig -p` prints them, e.g. `libc6,x86-64` (for diagnostics). */
export function ldCacheFlagsLabel(flags: number): string {
  const type = (flags & 0xff) === LDCACHE_FLAG_ELF_LIBC6 ? 'libc6' : 'unknown or unsupported flag';
  const abi = flags & 0xff00;
  return type + (abi === 0 ? '' : ABI_LABELS[abi] ?? `,${abi}`);
}
