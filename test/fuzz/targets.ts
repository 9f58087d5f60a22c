import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCodes, SoloadError } from '../../src/errors';
import { decodeBuildId, decodeDebugLink, decodeDynamic, decodeInterpreter, decodeSymbols, decodeSymbolVersions, fetchOffsetFor, findSymbol, indexSymbols, parseElf, parseSymbolQuery, vaddrToFileOffset, ElfSymbolResolver, type ElfSymbol } from '../../src/elf';
import { SHT_DYNSYM, SHT_SYMTAB } from '../../src/elf/image';
import { readDynamicInfo } from '../../src/elf/dynamic-lite';
import { globDatSlots } from '../../src/elf/relocations';
import { parseLdCache } from '../../src/elf/ldcache';
import { LineSplitter, TraceStreamParser, parseTraceLine, type ProbeSchemaMap } from '../../src/pipe';
import type { TraceRecord } from '../../src/types';

/** A property of a target did not hold for an input: the fuzzer's "crash". */
export class PropertyViolation extends Error {
  constructor(
    readonly property: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${property}: ${message}`, options);
    this.name = 'PropertyViolation';
  }
}

/** A fuzz target: runs one input through the code under test, checking its properties. */
export interface FuzzTarget {
  readonly name: string;
  /**
   * Runs `input`; returns a digest of everything observable about the result (two runs of the same
   * input must return the same digest). Throws PropertyViolation when a property does not hold.
   */
  run(input: Buffer): string;
}

const bigintSafe = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? `${v}n` : v);

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}${err instanceof SoloadError ? ` ${err.code}` : ''}: ${err.message.slice(0, 300)}\n${(err.stack ?? '').split('\n').slice(1, 6).join('\n')}`;
  return String(err);
}

/** A record must have the shape the rest of soload relies on. */
function checkRecord(r: TraceRecord): void {
  const ok =
    typeof r.comm === 'string' &&
    Number.isSafeInteger(r.tid) &&
    r.tid >= 0 &&
    Number.isSafeInteger(r.cpu) &&
    r.cpu >= 0 &&
    (r.tgid === undefined || (Number.isSafeInteger(r.tgid) && r.tgid >= 0)) &&
    typeof r.timestampNs === 'bigint' &&
    r.timestampNs >= 0n &&
    typeof r.event === 'string' &&
    r.event.length > 0 &&
    typeof r.location === 'string' &&
    typeof r.fields === 'object' &&
    r.fields !== null &&
    Object.values(r.fields).every((v) => v === null || typeof v === 'string');
  if (!ok) throw new PropertyViolation('record-shape', `malformed record ${JSON.stringify(r, bigintSafe).slice(0, 500)}`);
}

interface StreamResult {
  digest: string;
  records: number;
}

/** Feeds `input` to a TraceStreamParser in the chunks `sizes` cuts it into (cycled); digest of all it produced. */
function stream(input: Buffer, schemas: ProbeSchemaMap, maxLineLength: number, sizes: readonly number[]): StreamResult {
  const h: Hash = createHash('sha1');
  let records = 0;
  let internal: string | undefined;
  const parser = new TraceStreamParser({
    schemas,
    maxLineLength,
    onRecord: (r) => {
      checkRecord(r);
      records++;
      h.update(JSON.stringify(r, bigintSafe));
      h.update('\0');
    },
    onLost: (l) => void h.update(`L${l.cpu}:${l.lost}:${l.exact}\0`),
    onMalformed: (line, reason) => {
      if (reason === 'internal parser error') internal = line;
      // A malformed line is never longer than the cap (cut lines) or a join of at most maxJoin lines.
      h.update(`M${reason}\0${line.length}\0`);
    },
    onCallbackError: (err) => {
      throw err;
    },
  });
  try {
    let i = 0;
    for (let p = 0; p < input.length; i++) {
      const n = sizes[i % sizes.length];
      parser.write(input.subarray(p, p + n));
      p += n;
    }
    parser.end();
  } catch (err) {
    if (err instanceof PropertyViolation) throw err;
    throw new PropertyViolation('stream-no-throw', `TraceStreamParser threw: ${describe(err)}`, { cause: err });
  }
  if (internal !== undefined) throw new PropertyViolation('parse-no-internal-error', `the parser's own guard fired on ${JSON.stringify(internal.slice(0, 300))}`);
  const st = parser.stats;
  if (st.bytes !== input.length) throw new PropertyViolation('stream-counters', `bytes ${st.bytes} != input ${input.length}`);
  let newlines = 0;
  for (let p = input.indexOf(10); p !== -1; p = input.indexOf(10, p + 1)) newlines++;
  const lines = newlines + (input.length > 0 && input[input.length - 1] !== 10 ? 1 : 0);
  if (st.lines !== lines) throw new PropertyViolation('stream-counters', `lines ${st.lines} != physical lines ${lines}`);
  if (st.records + st.malformed + st.comments + st.lostReports > st.lines) {
    throw new PropertyViolation('stream-counters', `more outcomes than lines: ${JSON.stringify(st)}`);
  }
  h.update(JSON.stringify(st));
  return { digest: h.digest('hex'), records };
}

/**
 * trace_pipe bytes → records. Properties: nothing throws; the parser's internal-error guard never
 * fires; every record has its documented shape; the counters add up; and the records, notices and
 * malformed lines are the same whether the bytes arrive in one write or in small odd-sized reads
 * (the segment fast path and the line splitter must agree), with the default 64 KiB line cap and
 * with a small one. Each physical line also goes through parseTraceLine alone, with and without
 * schemas.
 */
export function traceTarget(schemas: ProbeSchemaMap): FuzzTarget {
  return {
    name: 'trace',
    run(input: Buffer): string {
      const whole = stream(input, schemas, 64 * 1024, [input.length || 1]);
      const odd = stream(input, schemas, 64 * 1024, [1, 7, 61, 4093, 3, 65536, 200]);
      if (odd.digest !== whole.digest) {
        throw new PropertyViolation('chunking-invariance', `one write gave ${whole.records} records, odd-sized reads ${odd.records} (or different contents)`);
      }
      const smallWhole = stream(input, schemas, 300, [input.length || 1]);
      const smallOdd = stream(input, schemas, 300, [5, 301, 17]);
      if (smallOdd.digest !== smallWhole.digest) {
        throw new PropertyViolation('chunking-invariance', `maxLineLength 300: one write gave ${smallWhole.records} records, odd-sized reads ${smallOdd.records}`);
      }
      const h = createHash('sha1').update(whole.digest).update(smallWhole.digest);
      const splitter = new LineSplitter({ maxLineLength: 64 * 1024 });
      const onLine = (line: string): void => {
        for (const s of [schemas, undefined]) {
          let r;
          try {
            r = parseTraceLine(line, s);
          } catch (err) {
            throw new PropertyViolation('parse-no-throw', `parseTraceLine threw: ${describe(err)}`, { cause: err });
          }
          if (!r.ok && r.reason === 'internal parser error') {
            throw new PropertyViolation('parse-no-internal-error', `the parser's own guard fired on ${JSON.stringify(line.slice(0, 300))}`);
          }
          if (r.ok) checkRecord(r.record);
          h.update(r.ok ? 'R' : r.kind);
        }
      };
      try {
        splitter.write(input, onLine);
        splitter.flush(onLine);
      } catch (err) {
        if (err instanceof PropertyViolation) throw err;
        throw new PropertyViolation('splitter-no-throw', `LineSplitter threw: ${describe(err)}`, { cause: err });
      }
      return h.digest('hex');
    },
  };
}

/** The codes an ELF read may fail with: the file is not usable, or the symbol is not there/has no offset. */
const ELF_CODES: ReadonlySet<string> = new Set([ErrorCodes.ELF_INVALID, ErrorCodes.SYMBOL_NOT_FOUND, ErrorCodes.SYMBOL_NOT_MAPPED]);

/**
 * One step of the ELF pipeline: returns its value, or undefined after an allowed failure (recorded in
 * the digest); any other exception is a PropertyViolation.
 */
function step<T>(h: Hash, name: string, fn: () => T): T | undefined {
  try {
    const v = fn();
    h.update(`${name}:ok\0`);
    return v;
  } catch (err) {
    if (err instanceof SoloadError && ELF_CODES.has(err.code)) {
      h.update(`${name}:${err.code}:${err.message}\0`);
      return undefined;
    }
    throw new PropertyViolation('elf-typed-errors', `${name} threw something other than a SoloadError with a documented code: ${describe(err)}`, { cause: err });
  }
}

const LDCACHE_MAGICS = ['ld.so-1.7.0', 'glibc-ld.so.cache'];

/**
 * ELF bytes → everything soload reads from an object: headers (parseElf over elfy), symbol tables
 * with versions, dynamic section, interpreter, build ID, debug link, GLOB_DAT slots, address → file
 * offset; the light reader (readDynamicInfo) over short reads; and the run-time path, an
 * ElfSymbolResolver over the bytes written to a file (inspect, dynamicInfo, lookup, resolve).
 * ld.so.cache inputs also go through parseLdCache. Properties: every failure is a SoloadError with a
 * documented code (ld.so.cache: an Error saying `ld.so.cache:`), readDynamicInfo never throws, and
 * the results are a pure function of the bytes.
 */
export function elfTarget(workDir: string): FuzzTarget {
  fs.mkdirSync(workDir, { recursive: true });
  const file = path.join(workDir, 'input.so');
  const debugRoot = path.join(workDir, 'debug');
  fs.mkdirSync(debugRoot, { recursive: true });
  return {
    name: 'elf',
    run(input: Buffer): string {
      const h = createHash('sha1');
      const image = step(h, 'parseElf', () => parseElf(input, 'fuzz-input'));
      if (image) {
        const found: ElfSymbol[] = [];
        // The first two tables of each kind: soload refuses files with more (symbolTables), and the
        // per-table decoders are linear in the section count, so all 65535 would be the harness's cost.
        const tables = [SHT_SYMTAB, SHT_DYNSYM].flatMap((t) => image.sections.filter((s) => s.type === t).slice(0, 2));
        for (const s of tables) {
          const versions = s.type === SHT_DYNSYM ? step(h, 'decodeSymbolVersions', () => decodeSymbolVersions(image, s)) : undefined;
          const syms = step(h, 'decodeSymbols', () => decodeSymbols(image, s, versions));
          if (!syms) continue;
          h.update(`syms:${syms.length}\0`);
          const index = indexSymbols(syms);
          for (const q of ['dlopen', 'dlopen@@GLIBC_2.34', '_r_debug', syms[0]?.name ?? '', syms[syms.length - 1]?.name ?? '']) {
            const m = findSymbol(index, parseSymbolQuery(q));
            h.update(`find:${m.kind}\0`);
            if (m.kind === 'found') found.push(m.symbol);
          }
        }
        step(h, 'decodeDynamic', () => h.update(JSON.stringify(decodeDynamic(image))));
        step(h, 'decodeInterpreter', () => h.update(String(decodeInterpreter(image))));
        step(h, 'decodeBuildId', () => h.update(String(decodeBuildId(image))));
        step(h, 'decodeDebugLink', () => h.update(JSON.stringify(decodeDebugLink(image) ?? null)));
        step(h, 'globDatSlots', () => h.update(JSON.stringify([...globDatSlots(image)])));
        for (const s of found.slice(0, 8)) {
          step(h, 'vaddrToFileOffset', () => h.update(String(vaddrToFileOffset(image, s.value))));
          step(h, 'fetchOffsetFor', () => h.update(String(fetchOffsetFor(image, s.value, found[0].value))));
        }
      }
      let info;
      try {
        info = readDynamicInfo((offset, length) => input.subarray(Math.min(offset, input.length), Math.min(offset + length, input.length)));
      } catch (err) {
        throw new PropertyViolation('dynamic-lite-no-throw', `readDynamicInfo threw: ${describe(err)}`, { cause: err });
      }
      h.update(JSON.stringify(info ?? null));

      // The run-time path, as the agent reads a mapped file.
      fs.writeFileSync(file, input);
      const resolver = new ElfSymbolResolver({ debugRoot, maxEntries: 2 });
      const inspected = step(h, 'resolver.inspect', () => h.update(JSON.stringify(resolver.inspect(file))));
      const light = step(h, 'resolver.dynamicInfo', () => h.update(JSON.stringify(resolver.dynamicInfo(file))));
      // Malformed input is counted (soload.elf.invalid): one per kind of read that refused the file.
      const refused = (inspected === undefined ? 1 : 0) + (light === undefined ? 1 : 0);
      const counted = Object.values(resolver.invalidReads()).reduce((a, b) => a + b, 0);
      if (counted !== refused) throw new PropertyViolation('elf-invalid-counted', `${refused} reads refused the file, soload.elf.invalid counted ${counted}`);
      step(h, 'resolver.lookup', () => h.update(JSON.stringify(resolver.lookup(file, 'dlopen'))));
      step(h, 'resolver.resolve', () => h.update(JSON.stringify(resolver.resolve(file, '_dl_catch_exception'))));
      step(h, 'resolver.gotFetchOffset', () => h.update(String(resolver.gotFetchOffset(file, 'dlopen', '_rtld_global'))));
      const after = Object.values(resolver.invalidReads()).reduce((x, y) => x + y, 0);
      if (after !== counted) throw new PropertyViolation('elf-invalid-counted', `asking again about a refused file counted it again (${counted} → ${after})`);

      if (LDCACHE_MAGICS.some((m) => input.toString('latin1', 0, m.length) === m)) {
        try {
          const c = parseLdCache(input);
          h.update(`${c.format}:${c.entries.length}:${c.lookup('libc.so.6').join(',')}:${c.problems.length}`);
        } catch (err) {
          if (!(err instanceof Error) || err instanceof TypeError || err instanceof RangeError || !err.message.startsWith('ld.so.cache:')) {
            throw new PropertyViolation('ldcache-typed-errors', `parseLdCache threw outside its contract: ${describe(err)}`, { cause: err });
          }
          h.update(err.message);
        }
      }
      return h.digest('hex');
    },
  };
}
