import * as fs from 'node:fs';
import * as path from 'node:path';
import { ErrorCodes, SoloadError } from '../errors';
import { ELF_INVALID_REASONS, ElfClass, ElfImage, ElfInvalidReason, Endian, ProgramHeader, SHT_DYNSYM, SHT_SYMTAB, invalid, parseElf } from './image';
import { DebugLink, DynamicInfo, crc32, decodeBuildId, decodeDebugLink, decodeDynamic, decodeInterpreter } from './metadata';
import { readDynamicInfo } from './dynamic-lite';
import { SegmentLayout, fetchOffsetFor, vaddrToFileOffset } from './offsets';
import { globDatSlots } from './relocations';
import { fsName } from '../util/path-bytes';
import {
  ElfSymbol,
  SymbolIndex,
  SymbolType,
  decodeSymbolVersions,
  decodeSymbols,
  findSymbol,
  formatSymbol,
  indexSymbols,
  parseSymbolQuery,
} from './symbols';

/** Which table a symbol was found in. */
export type SymbolSource = 'dynsym' | 'symtab' | 'debug-build-id' | 'debug-link';

/** Metadata of an ELF file, as returned by ElfSymbolResolver.inspect(). Holds no file contents. */
export interface ElfInfo extends SegmentLayout {
  /** The path as passed to inspect(). */
  readonly file: string;
  readonly class: ElfClass;
  readonly endian: Endian;
  /** e_type (ET_EXEC = 2, ET_DYN = 3). */
  readonly type: number;
  /** elfy's e_machine name, e.g. 'amd64', '386', 'AArch64'. */
  readonly machine: string;
  /** e_machine, raw (EM_X86_64 = 62). */
  readonly machineId: number;
  /** DT_SONAME. */
  readonly soname?: string;
  /** DT_NEEDED, in order. */
  readonly needed: readonly string[];
  readonly rpath?: string;
  readonly runpath?: string;
  /** DT_INIT: vaddr of the object's initialisation function. */
  readonly init?: number;
  /** PT_INTERP (programs, and glibc's libc.so.6 which is also runnable). */
  readonly interpreter?: string;
  /** NT_GNU_BUILD_ID as lowercase hex. */
  readonly buildId?: string;
  readonly debugLink?: DebugLink;
  /** All program headers. */
  readonly segments: readonly ProgramHeader[];
  /** Number of locatable (defined, named) symbols per table; `symtab` is 0 in a stripped file. */
  readonly symbolCounts: { readonly dynsym: number; readonly symtab: number };
}

/** A symbol found in a file, before translating its address to a file offset. */
export interface LocatedSymbol {
  /** The object the symbol belongs to (not the debug file). */
  readonly file: string;
  /** Bare symbol name. */
  readonly symbol: string;
  readonly version?: string;
  /** False for a hidden/compat version (`name@V`). */
  readonly defaultVersion: boolean;
  readonly vaddr: number;
  readonly size: number;
  /** `ifunc` means vaddr is the IFUNC resolver (runs once at relocation), not the implementation. */
  readonly type: SymbolType;
  readonly table: SymbolSource;
  /** The separate debug file the symbol came from, for the debug-* tables. */
  readonly debugFile?: string;
}

/** A symbol with the file offset a uprobe needs. */
export interface ResolvedSymbol extends LocatedSymbol {
  readonly fileOffset: number;
}

/** Options of ElfSymbolResolver. */
export interface ElfSymbolResolverOptions {
  /** Root of the separate debug-info tree. Default `/usr/lib/debug`. */
  debugRoot?: string;
  /**
   * More debug-info trees searched after `debugRoot`, same layout (`.build-id/xx/yyyy.debug`): the
   * debuginfod download cache, which is laid out that way so no other lookup is needed.
   */
  extraDebugRoots?: string[];
  /** Parsed files kept (least recently used are dropped). Default 128. */
  maxEntries?: number;
}

/** Cache counters, for tests and `soload check`. */
export interface ResolverStats {
  readonly hits: number;
  readonly misses: number;
  readonly entries: number;
}

interface Entry {
  readonly info: Omit<ElfInfo, 'file'>;
  readonly dynsym: SymbolIndex;
  readonly symtab: SymbolIndex;
  /** GOT slots of imported data symbols (GLOB_DAT relocations), by name. */
  readonly got: ReadonlyMap<string, number>;
}

interface DebugEntry {
  readonly buildId?: string;
  readonly crc: number;
  readonly symbols: SymbolIndex;
}

interface DebugCandidate {
  readonly table: 'debug-build-id' | 'debug-link';
  readonly path: string;
  readonly symbols: SymbolIndex;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** DT_NEEDED look-ups are per loaded object: far more files than symbol look-ups, and tiny entries. */
const DYNAMIC_CACHE_ENTRIES = 4096;

function countSymbols(index: SymbolIndex): number {
  let n = 0;
  for (const list of index.values()) n += list.length;
  return n;
}

function symbolTables(image: ElfImage, type: number): SymbolIndex {
  const out: ElfSymbol[] = [];
  // In a debug file the stripped-away tables keep their headers but become SHT_NOBITS, so the type test skips them.
  const tables = image.sections.filter((s) => s.type === type);
  // The gABI allows one table of each kind. Many headers naming the same bytes would make the work
  // (and the symbols kept) grow with headers × table size: up to 65535 × a file's worth.
  if (tables.length > 1) {
    throw invalid(image.file, `it has ${tables.length} ${type === SHT_DYNSYM ? 'SHT_DYNSYM' : 'SHT_SYMTAB'} sections (at most one is allowed)`);
  }
  for (const s of tables) {
    const versions = type === SHT_DYNSYM ? decodeSymbolVersions(image, s) : undefined;
    out.push(...decodeSymbols(image, s, versions));
  }
  return indexSymbols(out);
}

function decodeEntry(image: ElfImage): Entry {
  const dynsym = symbolTables(image, SHT_DYNSYM);
  const symtab = symbolTables(image, SHT_SYMTAB);
  const dyn = decodeDynamic(image);
  const interpreter = decodeInterpreter(image);
  const buildId = decodeBuildId(image);
  const debugLink = decodeDebugLink(image);
  const info: Omit<ElfInfo, 'file'> = {
    class: image.class,
    endian: image.endian,
    type: image.type,
    machine: image.machine,
    machineId: image.machineId,
    ...(dyn.soname === undefined ? {} : { soname: dyn.soname }),
    needed: Object.freeze([...dyn.needed]),
    ...(dyn.rpath === undefined ? {} : { rpath: dyn.rpath }),
    ...(dyn.runpath === undefined ? {} : { runpath: dyn.runpath }),
    ...(dyn.init === undefined ? {} : { init: dyn.init }),
    ...(interpreter === undefined ? {} : { interpreter }),
    ...(buildId === undefined ? {} : { buildId }),
    ...(debugLink === undefined ? {} : { debugLink: Object.freeze({ ...debugLink }) }),
    segments: image.segments,
    symbolCounts: Object.freeze({ dynsym: countSymbols(dynsym), symtab: countSymbols(symtab) }),
  };
  return { info: Object.freeze(info), dynsym, symtab, got: globDatSlots(image) };
}

function decodeDebugEntry(image: ElfImage): DebugEntry {
  const symbols = new Map<string, ElfSymbol[]>();
  for (const type of [SHT_SYMTAB, SHT_DYNSYM]) {
    for (const [name, list] of symbolTables(image, type)) symbols.set(name, [...(symbols.get(name) ?? []), ...list]);
  }
  const buildId = decodeBuildId(image);
  return { ...(buildId === undefined ? {} : { buildId }), crc: crc32(image.buf), symbols };
}

/**
 * Finds symbols in ELF shared objects and executables and translates them to the file offsets
 * uprobes need. Looks in .dynsym, then .symtab, then a separate debug file (by build ID, then by
 * .gnu_debuglink). Parsed files are cached by (dev, ino, mtime, size); the cache keeps decoded
 * symbols and headers only, never file contents.
 */
export class ElfSymbolResolver {
  /** Root of the separate debug-info tree searched for stripped files. */
  readonly debugRoot: string;
  /** Every debug-info tree searched, `debugRoot` first. */
  readonly debugRoots: readonly string[];
  private readonly maxEntries: number;
  private readonly cache = new Map<string, Entry>();
  private readonly debugCache = new Map<string, DebugEntry>();
  private readonly dynamicCache = new Map<string, DynamicInfo>();
  private hits = 0;
  private misses = 0;
  /**
   * Per cache, the ELF_INVALID a file version (same key as the cache) failed with: a hostile file
   * (65535 section headers over 12 MB take ~0.3 s to refuse) is decoded once, not at every question.
   */
  private readonly failures = new Map<Map<string, unknown>, Map<string, SoloadError>>();
  private readonly invalidCounts = Object.fromEntries(ELF_INVALID_REASONS.map((r) => [r, 0])) as Record<ElfInvalidReason, number>;

  /** @param opts.debugRoot debug-info root (default `/usr/lib/debug`); opts.maxEntries cache size (default 128) */
  constructor(opts: ElfSymbolResolverOptions = {}) {
    this.debugRoot = opts.debugRoot ?? '/usr/lib/debug';
    this.debugRoots = [this.debugRoot, ...(opts.extraDebugRoots ?? []).filter((d) => d !== this.debugRoot)];
    this.maxEntries = Math.max(1, opts.maxEntries ?? 128);
  }

  /**
   * Header, segments, DT_SONAME/DT_NEEDED, PT_INTERP, build ID and debug link of `file`.
   * @throws SoloadError ELF_INVALID when the file cannot be read or is not a valid ELF object
   */
  inspect(file: string): ElfInfo {
    return { ...this.entry(file).info, file };
  }

  /**
   * DT_NEEDED/DT_SONAME/DT_RPATH/DT_RUNPATH of `file`, read like ld.so reads them (headers,
   * PT_DYNAMIC, the string table: a few small reads, not the whole file) and cached by (dev, inode,
   * mtime, size). This is what the capture stage asks for every object at start-up.
   * @throws SoloadError ELF_INVALID when the file cannot be read or has no valid dynamic section
   */
  dynamicInfo(file: string): DynamicInfo {
    return this.cached(file, this.dynamicCache, DYNAMIC_CACHE_ENTRIES, false, (fd, size) => {
      let magic = false;
      const info = readDynamicInfo((offset, length) => {
        const buf = Buffer.alloc(Math.max(0, Math.min(length, size - offset)));
        const n = buf.length ? fs.readSync(fd, buf, 0, buf.length, offset) : 0;
        if (offset === 0 && n >= 4 && buf.readUInt32BE(0) === 0x7f454c46) magic = true;
        return buf.subarray(0, n);
      });
      if (!info) {
        throw magic
          ? invalid(file, 'its headers or dynamic section cannot be read', undefined, 'contents')
          : invalid(file, 'no ELF magic (\\x7fELF) at the start of the file', undefined, 'not_elf');
      }
      return Object.freeze({ ...info, needed: Object.freeze([...info.needed]) });
    });
  }


  /**
   * Find `symbol` (`name`, `name@VERSION` or `name@@VERSION`) in `file` without requiring it to have a
   * file offset (use this for .bss targets of fetchOffset()).
   * @throws SoloadError SYMBOL_NOT_FOUND (message lists the tables searched), ELF_INVALID
   */
  lookup(file: string, symbol: string): LocatedSymbol {
    return this.locate(file, this.entry(file), symbol);
  }

  private locate(file: string, entry: Entry, symbol: string): LocatedSymbol {
    const query = parseSymbolQuery(symbol);
    const searched: string[] = [];

    const tables: Array<[SymbolSource, SymbolIndex, string]> = [
      ['dynsym', entry.dynsym, entry.info.symbolCounts.dynsym > 0 ? '.dynsym' : '.dynsym (empty or absent)'],
      ['symtab', entry.symtab, entry.info.symbolCounts.symtab > 0 ? '.symtab' : '.symtab (absent: the file is stripped)'],
    ];
    for (const [table, index, label] of tables) {
      searched.push(label);
      const found = this.pick(file, symbol, index, query, table);
      if (found) return { file, ...found, table };
    }
    for (const cand of this.debugCandidates(file, entry.info, searched)) {
      const found = this.pick(file, symbol, cand.symbols, query, cand.table);
      if (found) return { file, ...found, table: cand.table, debugFile: cand.path };
    }
    throw new SoloadError(
      ErrorCodes.SYMBOL_NOT_FOUND,
      `Symbol "${symbol}" not found in ${file}. Searched: ${searched.join('; ')}. ` +
        "Install the distribution's debug symbols for this library (e.g. libc6-dbg on Debian/Ubuntu, " +
        `glibc-debuginfo on Fedora/RHEL) so a debug file appears under ${this.debugRoot}, ` +
        "or set the probe's `offset` explicitly in the config.",
      { file, symbol, searched },
    );
  }

  /**
   * Find `symbol` in `file` and translate its address to a file offset through PT_LOAD.
   * @throws SoloadError SYMBOL_NOT_FOUND, SYMBOL_NOT_MAPPED (.bss or TLS symbol), ELF_INVALID
   */
  resolve(file: string, symbol: string): ResolvedSymbol {
    const entry = this.entry(file);
    const found = this.locate(file, entry, symbol);
    if (found.type === 'tls') {
      throw new SoloadError(
        ErrorCodes.SYMBOL_NOT_MAPPED,
        `Symbol "${symbol}" in ${file} is thread-local: its value ${hex(found.vaddr)} is an offset in each thread's TLS block, not an address in the file.`,
        { file, symbol, vaddr: found.vaddr },
      );
    }
    try {
      return { ...found, fileOffset: vaddrToFileOffset({ file, segments: entry.info.segments }, found.vaddr) };
    } catch (err) {
      if (err instanceof SoloadError && err.code === ErrorCodes.SYMBOL_NOT_MAPPED) {
        throw new SoloadError(err.code, `Symbol "${symbol}" (${hex(found.vaddr)}) in ${file}: ${err.message}`, {
          ...err.details,
          symbol,
        });
      }
      throw err;
    }
  }

  /**
   * OFFSET for a `@+OFFSET` fetch argument of a uprobe on `probeSymbol` that reads `targetSymbol`
   * (see fetchOffsetFor for why this differs from the target's file offset).
   * @throws SoloadError SYMBOL_NOT_FOUND, SYMBOL_NOT_MAPPED, ELF_INVALID
   */
  fetchOffset(file: string, probeSymbol: string, targetSymbol: string): number {
    const entry = this.entry(file);
    const probe = this.locate(file, entry, probeSymbol);
    const target = this.locate(file, entry, targetSymbol);
    return fetchOffsetFor({ file, segments: entry.info.segments }, probe.vaddr, target.vaddr);
  }

  /**
   * The `@+OFFSET` at which a probe on `probeSymbol` in `file` reads the GOT slot that holds the
   * address of the imported `importedSymbol` (so `+0(@+OFFSET)` is that variable in the probed
   * process: how a probe in libc.so.6 reaches ld.so's `_rtld_global`).
   * @throws SoloadError SYMBOL_NOT_FOUND when `file` imports no such data symbol
   */
  gotFetchOffset(file: string, probeSymbol: string, importedSymbol: string): number {
    const entry = this.entry(file);
    const slot = entry.got.get(importedSymbol);
    if (slot === undefined) {
      throw new SoloadError(ErrorCodes.SYMBOL_NOT_FOUND, `${file} has no GOT slot for ${importedSymbol} (no GLOB_DAT relocation against it): this libc build does not reach the loader's state that way.`, { file, symbol: importedSymbol });
    }
    const probe = this.locate(file, entry, probeSymbol);
    return fetchOffsetFor({ file, segments: entry.info.segments }, probe.vaddr, slot);
  }

  /**
   * Files that could not be used as ELF objects since this resolver was made, by reason. A file
   * version (dev, inode, mtime, size) counts once per kind of read (full parse, light DT_NEEDED read):
   * its failure is remembered, so asking again neither re-reads nor re-counts it (a file that cannot be
   * opened counts at every attempt). Feeds soload.elf.invalid.
   */
  invalidReads(): Readonly<Record<ElfInvalidReason, number>> {
    return { ...this.invalidCounts };
  }

  /** Cache counters. */
  stats(): ResolverStats {
    return { hits: this.hits, misses: this.misses, entries: this.cache.size };
  }

  /** Forget all parsed files. */
  clear(): void {
    this.cache.clear();
    this.debugCache.clear();
    this.failures.clear();
  }

  private pick(
    file: string,
    symbol: string,
    index: SymbolIndex,
    query: ReturnType<typeof parseSymbolQuery>,
    table: SymbolSource,
  ): Omit<LocatedSymbol, 'file' | 'table'> | undefined {
    const match = findSymbol(index, query);
    if (match.kind === 'missing') return undefined;
    if (match.kind === 'ambiguous') {
      const list = match.candidates.map((s) => `${formatSymbol(s)} at ${hex(s.value)}`).join(', ');
      throw new SoloadError(
        ErrorCodes.SYMBOL_NOT_FOUND,
        `Symbol "${symbol}" is ambiguous in ${file} (${table}): ${list}. ` +
          'Name one version explicitly (e.g. "name@@VERSION"), or set the probe\'s `offset` explicitly in the config.',
        { file, symbol, table, candidates: match.candidates.map((s) => ({ name: formatSymbol(s), vaddr: s.value })) },
      );
    }
    const s = match.symbol;
    return {
      symbol: s.name,
      ...(s.version === undefined ? {} : { version: s.version }),
      defaultVersion: s.defaultVersion,
      vaddr: s.value,
      size: s.size,
      type: s.type,
    };
  }

  /** Yields the usable separate debug files of `file`, recording every place looked at in `searched`. */
  private *debugCandidates(file: string, info: Omit<ElfInfo, 'file'>, searched: string[]): Generator<DebugCandidate> {
    if (!info.buildId && !info.debugLink) {
      searched.push('separate debug file (the file has neither a build ID nor a .gnu_debuglink)');
      return;
    }
    if (info.buildId) {
      for (const root of this.debugRoots) {
        const p = path.join(root, '.build-id', info.buildId.slice(0, 2), `${info.buildId.slice(2)}.debug`);
        const dbg = this.debugEntry(p);
        if (!dbg) searched.push(`debug file by build ID ${p} (not present)`);
        else if (dbg.buildId !== info.buildId) {
          // A stale file left by an older package version would give wrong addresses.
          searched.push(`debug file by build ID ${p} (ignored: its build ID is ${dbg.buildId ?? 'missing'})`);
        } else {
          searched.push(`debug file by build ID ${p}`);
          yield { table: 'debug-build-id', path: p, symbols: dbg.symbols };
        }
      }
    }
    if (info.debugLink) {
      const { name, crc } = info.debugLink;
      const dirs = new Set([path.dirname(path.resolve(file))]);
      try {
        dirs.add(path.dirname(fs.realpathSync(file)));
      } catch {
        // The file was read a moment ago; if realpath fails now, the given directory still counts.
      }
      const places: string[] = [];
      for (const dir of dirs) places.push(path.join(dir, name), path.join(dir, '.debug', name), path.join(this.debugRoot, dir, name));
      for (const p of new Set(places)) {
        if (path.resolve(p) === path.resolve(file)) continue;
        const dbg = this.debugEntry(p);
        if (!dbg) searched.push(`debug link ${p} (not present)`);
        else if (dbg.crc !== crc) {
          searched.push(`debug link ${p} (ignored: CRC ${hex(dbg.crc)} differs from .gnu_debuglink's ${hex(crc)})`);
        } else {
          searched.push(`debug link ${p}`);
          yield { table: 'debug-link', path: p, symbols: dbg.symbols };
        }
      }
    }
  }

  private entry(file: string): Entry {
    return this.load(file, this.cache, true, (image) => decodeEntry(image)) as Entry;
  }

  /** Parsed debug file at `p`, or undefined when there is no regular file there. */
  private debugEntry(p: string): DebugEntry | undefined {
    try {
      if (!fs.statSync(p).isFile()) return undefined;
    } catch {
      return undefined;
    }
    return this.load(p, this.debugCache, false, (image) => decodeDebugEntry(image));
  }

  private load<T>(file: string, cache: Map<string, T>, count: boolean, decode: (image: ElfImage) => T): T {
    return this.cached(file, cache, this.maxEntries, count, (fd) => decode(parseElf(fs.readFileSync(fd), file)));
  }

  /**
   * Opens `file`, and returns the value cached for its (dev, inode, mtime, size) or computes it from
   * the open descriptor. A name with non-UTF-8 bytes arrives spelled with `\xNN` escapes
   * (pipe/decode.ts): those bytes are what is opened.
   */
  private cached<T>(file: string, cache: Map<string, T>, max: number, count: boolean, compute: (fd: number, size: number) => T): T {
    let fd: number;
    try {
      // the escaped text itself could name another file someone created: only the bytes it stands for
      fd = fs.openSync(fsName(file), 'r');
    } catch (err) {
      this.invalidCounts.unreadable++;
      throw invalid(file, `cannot open it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, err, 'unreadable');
    }
    try {
      const st = fs.fstatSync(fd);
      const key = `${st.dev}:${st.ino}:${st.mtimeMs}:${st.size}`;
      const hit = cache.get(key);
      if (hit !== undefined) {
        if (count) this.hits++;
        cache.delete(key);
        cache.set(key, hit);
        return hit;
      }
      let failed = this.failures.get(cache);
      const known = failed?.get(key);
      if (known !== undefined) throw known;
      if (count) this.misses++;
      let value: T;
      try {
        value = compute(fd, st.size);
      } catch (err) {
        if (err instanceof SoloadError && err.code === ErrorCodes.ELF_INVALID) {
          const reason = err.details.reason as ElfInvalidReason | undefined;
          this.invalidCounts[reason !== undefined && reason in this.invalidCounts ? reason : 'contents']++;
          if (!failed) this.failures.set(cache, (failed = new Map()));
          failed.set(key, err);
          while (failed.size > max) failed.delete(failed.keys().next().value as string);
        } else if (!(err instanceof SoloadError) && (err as NodeJS.ErrnoException).code !== undefined) {
          // A read error (EIO, EISDIR) on a file that opened: unreadable, like one that did not open.
          this.invalidCounts.unreadable++;
          throw invalid(file, `cannot read it (${(err as NodeJS.ErrnoException).code})`, err, 'unreadable');
        }
        throw err;
      }
      cache.set(key, value);
      while (cache.size > max) cache.delete(cache.keys().next().value as string);
      return value;
    } finally {
      fs.closeSync(fd);
    }
  }

}
