import {
  ElfImage,
  SectionHeader,
  SHT_GNU_VERDEF,
  SHT_GNU_VERSYM,
  SHT_STRTAB,
  StringTable,
  invalid,
  readerFor,
  sectionData,
} from './image';

/** st_info type, named. `ifunc` (STT_GNU_IFUNC) symbols point at a resolver, not at the implementation. */
export type SymbolType = 'notype' | 'object' | 'func' | 'section' | 'file' | 'common' | 'tls' | 'ifunc' | 'other';
/** st_info binding, named. `unique` is STB_GNU_UNIQUE. */
export type SymbolBind = 'local' | 'global' | 'weak' | 'unique' | 'other';

/** One decoded Elf32_Sym/Elf64_Sym. */
export interface ElfSymbol {
  /** Name without any `@VERSION` suffix. */
  readonly name: string;
  /** Version name (from .gnu.version/.gnu.version_d, or from a `name@V`/`name@@V` .symtab entry). */
  readonly version?: string;
  /**
   * True for the default version (`name@@V`) and for unversioned symbols: what an unversioned
   * reference binds to. False for hidden/compat versions (`name@V`).
   */
  readonly defaultVersion: boolean;
  readonly value: number;
  readonly size: number;
  readonly type: SymbolType;
  readonly bind: SymbolBind;
  /** st_shndx: 0 (SHN_UNDEF) means defined elsewhere; 0xfff1 SHN_ABS; 0xfff2 SHN_COMMON. */
  readonly shndx: number;
}

export const SHN_UNDEF = 0;
export const SHN_ABS = 0xfff1;
export const SHN_COMMON = 0xfff2;

const TYPES: Record<number, SymbolType> = { 0: 'notype', 1: 'object', 2: 'func', 3: 'section', 4: 'file', 5: 'common', 6: 'tls', 10: 'ifunc' };
const BINDS: Record<number, SymbolBind> = { 0: 'local', 1: 'global', 2: 'weak', 10: 'unique' };

/** Per-symbol version info for a .dynsym: `versym[i]` is the raw .gnu.version entry of symbol i. */
export interface SymbolVersions {
  readonly versym: Uint16Array;
  /** Version index → version name, from .gnu.version_d (the base/file version is omitted). */
  readonly names: ReadonlyMap<number, string>;
}

/** Size of one symbol entry. sh_entsize is not trusted: elfy misreads it and some tools leave it 0. */
export function symbolEntrySize(image: ElfImage): number {
  return image.class === 64 ? 24 : 16;
}

function stringTableOf(image: ElfImage, section: SectionHeader): StringTable {
  const strtab = image.sections[section.link];
  if (!strtab || strtab.type !== SHT_STRTAB) {
    throw invalid(image.file, `section ${section.name} links to section ${section.link}, which is not a string table`);
  }
  return new StringTable(sectionData(image, strtab), image.file);
}

/**
 * Decode .gnu.version (Elf_Versym[]) and .gnu.version_d (Elf_Verdef/Elf_Verdaux chains) for `dynsym`.
 * Returns undefined when the object has no symbol versioning. .gnu.version_r (needed versions) is not
 * decoded: it only names versions of undefined symbols, which have no address in this file.
 */
export function decodeSymbolVersions(image: ElfImage, dynsym: SectionHeader): SymbolVersions | undefined {
  const versymSection = image.sections.find((s) => s.type === SHT_GNU_VERSYM && s.link === dynsym.index);
  if (!versymSection) return undefined;
  const r = readerFor(image);
  const raw = sectionData(image, versymSection);
  const versym = new Uint16Array(Math.floor(raw.length / 2));
  for (let i = 0; i < versym.length; i++) versym[i] = image.endian === 'le' ? raw.readUInt16LE(i * 2) : raw.readUInt16BE(i * 2);

  const names = new Map<number, string>();
  const verdef = image.sections.find((s) => s.type === SHT_GNU_VERDEF);
  if (verdef) {
    const data = sectionData(image, verdef);
    const strings = stringTableOf(image, verdef);
    // Elf32_Verdef and Elf64_Verdef are identical: vd_version u16, vd_flags u16, vd_ndx u16,
    // vd_cnt u16, vd_hash u32, vd_aux u32, vd_next u32; Verdaux: vda_name u32, vda_next u32.
    // sh_info is the entry count; vd_next is relative, 0 on the last entry.
    // Some producers leave sh_info 0; then the vd_next chain alone bounds the walk.
    const entries = verdef.info > 0 ? verdef.info : Math.floor(data.length / 20);
    let off = 0;
    for (let n = 0; n < entries && off + 20 <= data.length; n++) {
      const at = verdef.offset + off;
      const flags = r.u16(at + 2);
      const ndx = r.u16(at + 4);
      const aux = r.u32(at + 12);
      const next = r.u32(at + 16);
      const VER_FLG_BASE = 1;
      if ((flags & VER_FLG_BASE) === 0) {
        if (off + aux + 8 > data.length) throw invalid(image.file, 'Elf_Verdaux entry outside .gnu.version_d');
        names.set(ndx, strings.at(r.u32(at + aux)));
      }
      if (next === 0) break;
      off += next;
    }
  }
  return { versym, names };
}

/**
 * Decode every entry of a symbol table section (SHT_SYMTAB or SHT_DYNSYM) except index 0.
 * Strings come from the section at sh_link. With `versions` (for .dynsym), each symbol gets its
 * version; without, a `name@V`/`name@@V` name (GNU ld writes these into .symtab) is split instead.
 */
export function decodeSymbols(image: ElfImage, table: SectionHeader, versions?: SymbolVersions): ElfSymbol[] {
  const data = sectionData(image, table);
  const strings = stringTableOf(image, table);
  const r = readerFor(image);
  const entsize = symbolEntrySize(image);
  const count = Math.floor(data.length / entsize);
  const out: ElfSymbol[] = [];
  for (let i = 1; i < count; i++) {
    const at = table.offset + i * entsize;
    let nameOff: number, info: number, shndx: number, value: number, size: number;
    if (image.class === 64) {
      // Elf64_Sym: st_name u32, st_info u8, st_other u8, st_shndx u16, st_value u64, st_size u64
      nameOff = r.u32(at);
      info = r.u8(at + 4);
      shndx = r.u16(at + 6);
      value = r.u64(at + 8);
      size = r.u64(at + 16);
    } else {
      // Elf32_Sym: st_name u32, st_value u32, st_size u32, st_info u8, st_other u8, st_shndx u16
      nameOff = r.u32(at);
      value = r.u32(at + 4);
      size = r.u32(at + 8);
      info = r.u8(at + 12);
      shndx = r.u16(at + 14);
    }
    let name = strings.at(nameOff);
    let version: string | undefined;
    let defaultVersion = true;
    if (versions) {
      const raw = i < versions.versym.length ? versions.versym[i] : 1;
      const VERSYM_HIDDEN = 0x8000;
      // Indexes 0 (local) and 1 (global/base) mean "unversioned".
      version = versions.names.get(raw & 0x7fff);
      defaultVersion = (raw & VERSYM_HIDDEN) === 0;
    } else {
      const atSign = name.indexOf('@');
      if (atSign > 0) {
        const isDefault = name.startsWith('@@', atSign);
        version = name.slice(atSign + (isDefault ? 2 : 1)) || undefined;
        defaultVersion = isDefault;
        name = name.slice(0, atSign);
      }
    }
    out.push({
      name,
      ...(version === undefined ? {} : { version }),
      defaultVersion,
      value,
      size,
      type: TYPES[info & 0xf] ?? 'other',
      bind: BINDS[info >> 4] ?? 'other',
      shndx,
    });
  }
  return out;
}

/** A parsed lookup key: `name`, `name@VERSION` or `name@@VERSION`. */
export interface SymbolQuery {
  readonly name: string;
  readonly version?: string;
  /** True for `name@@VERSION`: only the default version of `name` matches. */
  readonly defaultOnly: boolean;
}

/** Split `name`, `name@VERSION`, `name@@VERSION` into a SymbolQuery. */
export function parseSymbolQuery(query: string): SymbolQuery {
  const at = query.indexOf('@');
  if (at <= 0) return { name: query, defaultOnly: false };
  const defaultOnly = query.startsWith('@@', at);
  const version = query.slice(at + (defaultOnly ? 2 : 1));
  return version ? { name: query.slice(0, at), version, defaultOnly } : { name: query.slice(0, at), defaultOnly: false };
}

/** Symbols grouped by bare name; only those that can be located in this file (defined, not ABS/section/file). */
export type SymbolIndex = ReadonlyMap<string, readonly ElfSymbol[]>;

/** Build a SymbolIndex, dropping undefined, absolute, common, section and file symbols. */
export function indexSymbols(symbols: readonly ElfSymbol[]): SymbolIndex {
  const index = new Map<string, ElfSymbol[]>();
  for (const s of symbols) {
    if (!s.name || s.shndx === SHN_UNDEF || s.shndx === SHN_ABS || s.shndx === SHN_COMMON) continue;
    if (s.type === 'section' || s.type === 'file') continue;
    const list = index.get(s.name);
    if (list) list.push(s);
    else index.set(s.name, [s]);
  }
  return index;
}

/** Outcome of looking a query up in one table. */
export type SymbolMatch =
  | { readonly kind: 'found'; readonly symbol: ElfSymbol }
  | { readonly kind: 'missing' }
  | { readonly kind: 'ambiguous'; readonly candidates: readonly ElfSymbol[] };

/**
 * Find `query` in `index`.
 *
 * - `name@@V` matches only the default version V; `name@V` matches version V whether default or not
 *   (readelf prints `dlopen@GLIBC_2.34` style names for both, users copy either).
 * - A plain `name` prefers the default version/unversioned symbol, like the dynamic linker does for
 *   an unversioned reference; with only hidden versions it accepts them if they share one address
 *   (glibc keeps compat aliases at the same address, e.g. dlopen@GLIBC_2.2.5 and dlopen@@GLIBC_2.34).
 * - Global/weak symbols win over local ones (static functions in different objects can share a name).
 * Candidates at different addresses that the rules cannot separate are reported as ambiguous.
 */
export function findSymbol(index: SymbolIndex, query: SymbolQuery): SymbolMatch {
  const all = index.get(query.name);
  if (!all) return { kind: 'missing' };
  let candidates: readonly ElfSymbol[];
  if (query.version !== undefined) {
    candidates = all.filter((s) => s.version === query.version && (!query.defaultOnly || s.defaultVersion));
  } else {
    const defaults = all.filter((s) => s.defaultVersion);
    candidates = defaults.length > 0 ? defaults : all;
  }
  if (candidates.length === 0) return { kind: 'missing' };
  const nonLocal = candidates.filter((s) => s.bind !== 'local');
  if (nonLocal.length > 0) candidates = nonLocal;
  const addresses = new Set(candidates.map((s) => s.value));
  if (addresses.size > 1) return { kind: 'ambiguous', candidates };
  return { kind: 'found', symbol: candidates[0] };
}

/** `name`, `name@V` or `name@@V` as readelf prints it. */
export function formatSymbol(s: Pick<ElfSymbol, 'name' | 'version' | 'defaultVersion'>): string {
  if (s.version === undefined) return s.name;
  return `${s.name}${s.defaultVersion ? '@@' : '@'}${s.version}`;
}
