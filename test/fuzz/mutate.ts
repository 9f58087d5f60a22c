import type { Rng } from './rng';

/**
 * Mutators of the fuzzer: generic byte-level ones (AFL-style flips, interesting values, block
 * insert/delete/duplicate, splice), ELF-aware ones that aim at header, program/section header,
 * symbol, dynamic and note fields, and trace-line-aware ones that replace one token of a line.
 * The ELF and trace structure is read here independently of src/ (a mutator must not rely on the
 * code it tests to find its targets).
 */

/** Longest input a mutator produces (the shared buffer the watchdog reads a hung input from is larger). */
export const MAX_INPUT = 12 * 1024 * 1024;

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff, 0x0a, 0x22, 0x20, 0x3d, 0x28, 0x29, 0x5b, 0x5d, 0x2d, 0x3a];
const INTERESTING_32 = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x1000, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

/** Values that break size and offset arithmetic: 0, ±1 around the file size, 2^31/2^32/2^53/2^63/2^64−1. */
function absurd(rng: Rng, fileSize: number): bigint {
  const choices: bigint[] = [
    0n,
    1n,
    BigInt(fileSize),
    BigInt(Math.max(0, fileSize - 1)),
    BigInt(fileSize + 1),
    BigInt(Math.floor(fileSize / 2)),
    0x7fffffffn,
    0x80000000n,
    0xffffffffn,
    0x100000000n,
    2n ** 53n - 1n,
    2n ** 53n + 1n,
    2n ** 63n - 1n,
    2n ** 63n,
    2n ** 64n - 1n,
    BigInt(rng.u32()),
  ];
  return rng.pick(choices);
}

function clampLen(b: Buffer): Buffer {
  return b.length > MAX_INPUT ? b.subarray(0, MAX_INPUT) : b;
}

/** One random generic mutation of a copy of `input`. */
export function mutateBytes(rng: Rng, input: Buffer, other?: Buffer): Buffer {
  let b = Buffer.from(input);
  switch (rng.int(11)) {
    case 0: {
      // bit flips
      const n = rng.small(8);
      for (let i = 0; i < n && b.length > 0; i++) b[rng.int(b.length)] ^= 1 << rng.int(8);
      return b;
    }
    case 1: {
      if (b.length === 0) return Buffer.of(rng.pick(INTERESTING_8));
      b[rng.int(b.length)] = rng.pick(INTERESTING_8);
      return b;
    }
    case 2: {
      if (b.length < 4) return b;
      const at = rng.int(b.length - 3);
      const v = rng.pick(INTERESTING_32) >>> 0;
      if (rng.chance(0.5)) b.writeUInt32LE(v, at);
      else b.writeUInt32BE(v, at);
      return b;
    }
    case 3: {
      // random bytes over a range
      if (b.length === 0) return b;
      const at = rng.int(b.length);
      const n = Math.min(b.length - at, rng.small(64));
      for (let i = 0; i < n; i++) b[at + i] = rng.u32() & 0xff;
      return b;
    }
    case 4: {
      // delete a block
      if (b.length < 2) return b;
      const at = rng.int(b.length);
      const n = Math.min(b.length - at, rng.small(Math.max(2, b.length >> 2)));
      return Buffer.concat([b.subarray(0, at), b.subarray(at + n)]);
    }
    case 5: {
      // duplicate a block somewhere (grows tables, repeats lines)
      if (b.length === 0) return b;
      const from = rng.int(b.length);
      const n = Math.min(b.length - from, rng.small(4096));
      const to = rng.int(b.length + 1);
      const reps = rng.chance(0.1) ? rng.small(256) : 1;
      const block = Buffer.concat(Array.from({ length: reps }, () => b.subarray(from, from + n)));
      return clampLen(Buffer.concat([b.subarray(0, to), block, b.subarray(to)]));
    }
    case 6:
      // truncate anywhere
      return b.subarray(0, rng.int(b.length + 1));
    case 7: {
      // splice with another corpus entry
      if (!other || other.length === 0) return b;
      const cut = rng.int(b.length + 1);
      const from = rng.int(other.length);
      return clampLen(Buffer.concat([b.subarray(0, cut), other.subarray(from)]));
    }
    case 8: {
      // arithmetic on a byte
      if (b.length === 0) return b;
      const at = rng.int(b.length);
      b[at] = (b[at] + (rng.chance(0.5) ? 1 : -1) * rng.small(35)) & 0xff;
      return b;
    }
    case 9: {
      // insert random bytes (non-UTF-8 and control bytes included)
      const n = rng.small(32);
      const ins = Buffer.alloc(n);
      for (let i = 0; i < n; i++) ins[i] = rng.u32() & 0xff;
      const at = rng.int(b.length + 1);
      return Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
    }
    default: {
      // overwrite one block with a copy of another (copies headers over data and back)
      if (b.length < 2) return b;
      const n = rng.small(Math.min(256, b.length));
      const from = rng.int(b.length - n + 1);
      const to = rng.int(b.length - n + 1);
      b.copy(b, to, from, from + n);
      b = Buffer.from(b);
      return b;
    }
  }
}

/** What an ELF mutator needs to know of a seed's layout (read with plain buffer reads). */
interface ElfShape {
  is64: boolean;
  le: boolean;
  phoff: number;
  phentsize: number;
  phnum: number;
  shoff: number;
  shentsize: number;
  shnum: number;
}

function shape(b: Buffer): ElfShape | undefined {
  if (b.length < 52 || b.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const is64 = b[4] === 2;
  const le = b[5] !== 2;
  if (is64 && b.length < 64) return undefined;
  const u16 = (o: number): number => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const word = (o: number): number =>
    is64 ? Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)) : le ? b.readUInt32LE(o) : b.readUInt32BE(o);
  return {
    is64,
    le,
    phoff: word(is64 ? 32 : 28),
    shoff: word(is64 ? 40 : 32),
    phentsize: u16(is64 ? 54 : 42),
    phnum: u16(is64 ? 56 : 44),
    shentsize: u16(is64 ? 58 : 46),
    shnum: u16(is64 ? 60 : 48),
  };
}

function writeField(b: Buffer, off: number, size: 2 | 4 | 8, le: boolean, v: bigint): void {
  if (off < 0 || off + size > b.length) return;
  const mask = (1n << BigInt(size * 8)) - 1n;
  const x = v & mask;
  if (size === 8) {
    if (le) b.writeBigUInt64LE(x, off);
    else b.writeBigUInt64BE(x, off);
  } else if (size === 4) {
    if (le) b.writeUInt32LE(Number(x), off);
    else b.writeUInt32BE(Number(x), off);
  } else if (le) b.writeUInt16LE(Number(x), off);
  else b.writeUInt16BE(Number(x), off);
}

interface SectionShape {
  base: number;
  type: number;
  offset: number;
  size: number;
  link: number;
}

function sections(b: Buffer, s: ElfShape): SectionShape[] {
  const out: SectionShape[] = [];
  const ent = s.is64 ? 64 : 40;
  if (s.shentsize < ent) return out;
  for (let i = 0; i < s.shnum && i < 512; i++) {
    const base = s.shoff + i * s.shentsize;
    if (base < 0 || base + ent > b.length) break;
    const u32 = (o: number): number => (s.le ? b.readUInt32LE(base + o) : b.readUInt32BE(base + o));
    const word = (o: number): number =>
      s.is64 ? Number(s.le ? b.readBigUInt64LE(base + o) : b.readBigUInt64BE(base + o)) : u32(o);
    out.push({
      base,
      type: u32(4),
      offset: word(s.is64 ? 24 : 16),
      size: word(s.is64 ? 32 : 20),
      link: u32(s.is64 ? 40 : 24),
    });
  }
  return out;
}

/**
 * The truncation points worth trying for an ELF seed: around the ELF header, the program and section
 * header tables, and the start and end of every section (each ±1), deduplicated and sorted.
 */
export function elfTruncationPoints(b: Buffer): number[] {
  const s = shape(b);
  const pts = new Set<number>([0, 1, 3, 4, 5, 16, 18, 20, 24, 32, 40, 51, 52, 58, 63, 64]);
  if (s) {
    for (const x of [s.phoff, s.phoff + s.phentsize, s.phoff + s.phentsize * s.phnum, s.shoff, s.shoff + s.shentsize * s.shnum]) {
      pts.add(x - 1).add(x).add(x + 1);
    }
    for (const sec of sections(b, s)) {
      for (const x of [sec.offset, sec.offset + sec.size]) pts.add(x - 1).add(x).add(x + 1);
    }
  }
  return [...pts].filter((x) => x >= 0 && x < b.length).sort((x, y) => x - y);
}

/** One structure-aware mutation of an ELF file (falls back to a generic one for non-ELF input). */
export function mutateElf(rng: Rng, input: Buffer, other?: Buffer): Buffer {
  const s = shape(input);
  if (!s || rng.chance(0.25)) return mutateBytes(rng, input, other);
  const b = Buffer.from(input);
  const W = s.is64 ? 8 : 4;
  const wordSize = W as 4 | 8;
  const size = b.length;
  switch (rng.int(11)) {
    case 9:
    case 10: {
      // huge counts of real-looking entries: one section (or program) header repeated up to 65535
      // times, the table moved to the end of the file (many tables over the same bytes)
      const sec = case10Headers(rng, input, s, rng.chance(0.5));
      return sec ?? mutateBytes(rng, input, other);
    }
    case 0: {
      // ELF header counts, sizes and offsets
      const fields: Array<[number, 2 | 4 | 8]> = s.is64
        ? [[32, 8], [40, 8], [52, 2], [54, 2], [56, 2], [58, 2], [60, 2], [62, 2]]
        : [[28, 4], [32, 4], [40, 2], [42, 2], [44, 2], [46, 2], [48, 2], [50, 2]];
      const [off, len] = rng.pick(fields);
      writeField(b, off, len, s.le, rng.chance(0.3) ? BigInt(rng.pick([0, 1, 0xffff, 0x7fff, 0x8000, s.shnum + 1, s.phnum + 1])) : absurd(rng, size));
      return b;
    }
    case 1: {
      // a program header field: type, offset, vaddr, filesz, memsz, align
      if (s.phnum === 0) return mutateBytes(rng, input, other);
      const base = s.phoff + rng.int(s.phnum) * s.phentsize;
      if (rng.chance(0.3)) {
        writeField(b, base, 4, s.le, BigInt(rng.pick([1, 2, 3, 4, 6, 7, 0x6474e550, 0x6474e551, 0x6474e553])));
        return b;
      }
      const offs = s.is64 ? [8, 16, 32, 40, 48] : [4, 8, 16, 20, 28];
      writeField(b, base + rng.pick(offs), wordSize, s.le, absurd(rng, size));
      return b;
    }
    case 2:
    case 3: {
      // a section header field: name, type, offset, size, link, info, entsize
      const secs = sections(b, s);
      if (secs.length === 0) return mutateBytes(rng, input, other);
      const sec = rng.pick(secs);
      const fields: Array<[number, 2 | 4 | 8]> = s.is64
        ? [[0, 4], [4, 4], [24, 8], [32, 8], [40, 4], [44, 4], [48, 8], [56, 8]]
        : [[0, 4], [4, 4], [16, 4], [20, 4], [24, 4], [28, 4], [32, 4], [36, 4]];
      const [off, len] = rng.pick(fields);
      let v = absurd(rng, size);
      if (off === 4 && rng.chance(0.7)) v = BigInt(rng.pick([0, 1, 2, 3, 4, 6, 7, 8, 9, 11, 0x6ffffffd, 0x6ffffffe, 0x6fffffff]));
      if ((off === 40 || off === 24) && rng.chance(0.6)) v = BigInt(rng.pick([0, secs.length - 1, secs.length, 0xffff, rng.int(secs.length)]));
      writeField(b, sec.base + off, len, s.le, v);
      return b;
    }
    case 4: {
      // a symbol: st_name outside its string table, st_value/st_size absurd, st_shndx special
      const syms = sections(b, s).filter((x) => x.type === 2 || x.type === 11);
      if (syms.length === 0) return mutateBytes(rng, input, other);
      const t = rng.pick(syms);
      const ent = s.is64 ? 24 : 16;
      const n = Math.floor(t.size / ent);
      if (n === 0) return b;
      const at = t.offset + rng.int(n) * ent;
      const which = rng.int(4);
      if (which === 0) writeField(b, at, 4, s.le, rng.chance(0.5) ? absurd(rng, size) : BigInt(rng.u32()));
      else if (which === 1) writeField(b, at + (s.is64 ? 8 : 4), wordSize, s.le, absurd(rng, size));
      else if (which === 2) writeField(b, at + (s.is64 ? 16 : 8), wordSize, s.le, absurd(rng, size));
      else writeField(b, at + (s.is64 ? 6 : 14), 2, s.le, BigInt(rng.pick([0, 0xfff1, 0xfff2, 0xffff, 1])));
      return b;
    }
    case 5: {
      // a string table without its NULs (every string runs to the end of the table, or the file)
      const strs = sections(b, s).filter((x) => x.type === 3 && x.offset + x.size <= b.length && x.size > 0);
      if (strs.length === 0) return mutateBytes(rng, input, other);
      const t = rng.pick(strs);
      const from = rng.chance(0.5) ? t.offset : t.offset + rng.int(t.size);
      for (let i = from; i < t.offset + t.size; i++) if (b[i] === 0) b[i] = 0x41 + (i % 26);
      return b;
    }
    case 6: {
      // a dynamic entry's tag or value (DT_NEEDED/STRTAB/STRSZ/SONAME/RUNPATH pointing anywhere)
      const dyns = sections(b, s).filter((x) => x.type === 6 && x.offset + x.size <= b.length);
      if (dyns.length === 0) return mutateBytes(rng, input, other);
      const d = rng.pick(dyns);
      const ent = s.is64 ? 16 : 8;
      const n = Math.floor(d.size / ent);
      if (n === 0) return b;
      const at = d.offset + rng.int(n) * ent;
      if (rng.chance(0.4)) writeField(b, at, wordSize, s.le, BigInt(rng.pick([0, 1, 5, 10, 12, 14, 15, 29, 0x6ffffffb])));
      else writeField(b, at + W, wordSize, s.le, absurd(rng, size));
      return b;
    }
    case 7: {
      // a note header: namesz/descsz/type absurd
      const notes = sections(b, s).filter((x) => x.type === 7 && x.offset + 12 <= b.length);
      if (notes.length === 0) return mutateBytes(rng, input, other);
      const nt = rng.pick(notes);
      writeField(b, nt.offset + 4 * rng.int(3), 4, s.le, rng.chance(0.5) ? absurd(rng, size) : BigInt(rng.int(64)));
      return b;
    }
    default:
      // truncation at an interesting offset
      return b.subarray(0, rng.pick(elfTruncationPoints(b)));
  }
}

/**
 * A copy of `b` whose section (or program) header table is one existing entry repeated until the
 * count field's maximum (or a random count), appended at the end of the file; e_shoff/e_phoff and
 * the count are updated. Undefined when the seed has no such table.
 */
function case10Headers(rng: Rng, b: Buffer, s: ElfShape, programs: boolean): Buffer | undefined {
  const num = programs ? s.phnum : s.shnum;
  const entsize = programs ? s.phentsize : s.shentsize;
  const off = programs ? s.phoff : s.shoff;
  if (num === 0 || entsize === 0 || off + entsize * num > b.length) return undefined;
  const pick = num > 1 ? 1 + rng.int(num - 1) : 0;
  const entry = b.subarray(off + pick * entsize, off + (pick + 1) * entsize);
  const max = Math.min(0xffff, Math.floor((MAX_INPUT - b.length) / entsize));
  const count = rng.chance(0.5) ? max : Math.min(max, num + rng.small(4096));
  if (count <= num) return undefined;
  // The original table first (entry 0 and e_shstrndx keep their meaning), then the copies.
  const table = Buffer.alloc(count * entsize);
  b.copy(table, 0, off, off + num * entsize);
  for (let i = num; i < count; i++) entry.copy(table, i * entsize);
  const out = Buffer.concat([b, table]);
  const at = BigInt(b.length);
  if (programs) {
    writeField(out, s.is64 ? 32 : 28, s.is64 ? 8 : 4, s.le, at);
    writeField(out, s.is64 ? 56 : 44, 2, s.le, BigInt(count));
  } else {
    writeField(out, s.is64 ? 40 : 32, s.is64 ? 8 : 4, s.le, at);
    writeField(out, s.is64 ? 60 : 48, 2, s.le, BigInt(count));
  }
  return out;
}

/** Replacement values for one token of a trace line (each aims at a parser branch). */
export const TRACE_TOKENS: readonly Buffer[] = [
  '',
  ' ',
  '(fault)',
  '"',
  '""',
  '"x" y="',
  '\n',
  ' name=',
  '=',
  '-',
  '(',
  ')',
  '[',
  ']',
  ':',
  '0',
  '-1',
  '999999999999999999999999999999',
  '18446744073709551616',
  '4294967296',
  '0x',
  '1.',
  '.1',
  '123456789012345678.123456789012',
  '\t',
  '\r',
  '\u0000',
  '\uFFFD',
  '__proto__',
  'constructor',
  'CPU:0 [LOST 1 EVENTS]',
  '#',
  '[LINE TOO BIG]',
]
  .map((s) => Buffer.from(s, 'utf8'))
  .concat([Buffer.of(0xff), Buffer.of(0xc3), Buffer.of(0xe2, 0x82), Buffer.of(0xed, 0xa0, 0x80), Buffer.of(0xf4, 0x90, 0x80, 0x80), Buffer.of(0xc0, 0xaf), Buffer.of(0x80)]);

/**
 * The token boundaries of a trace line: runs of non-separator bytes, where separators are space,
 * `-`, `(`, `)`, `[`, `]`, `:`, `=` and `"` (so the comm, tid, tgid, cpu, timestamp, event, location,
 * each field name and each value are separate tokens). Returns [start, end) pairs.
 */
export function traceTokens(line: Buffer): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let start = -1;
  for (let i = 0; i <= line.length; i++) {
    const c = i < line.length ? line[i] : 32;
    const sep = c === 32 || c === 45 || c === 40 || c === 41 || c === 91 || c === 93 || c === 58 || c === 61 || c === 34;
    if (sep) {
      if (start >= 0) out.push([start, i]);
      start = -1;
    } else if (start < 0) start = i;
  }
  return out;
}

/** `line` with token `t` replaced by `value`. */
export function replaceToken(line: Buffer, t: [number, number], value: Buffer): Buffer {
  return Buffer.concat([line.subarray(0, t[0]), value, line.subarray(t[1])]);
}

/** One trace-aware mutation of a copy of `input` (a stream of lines). */
export function mutateTrace(rng: Rng, input: Buffer, other?: Buffer): Buffer {
  if (rng.chance(0.3)) return mutateBytes(rng, input, other);
  const lines: Buffer[] = [];
  for (let p = 0; p < input.length; ) {
    const nl = input.indexOf(10, p);
    const end = nl === -1 ? input.length : nl;
    lines.push(input.subarray(p, end));
    p = end + 1;
  }
  if (lines.length === 0) lines.push(Buffer.alloc(0));
  const li = rng.int(lines.length);
  const line = lines[li];
  switch (rng.int(7)) {
    case 0:
    case 1:
    case 2: {
      const toks = traceTokens(line);
      if (toks.length === 0) break;
      const t = rng.pick(toks);
      let value: Buffer;
      const k = rng.int(4);
      if (k === 0) value = Buffer.concat([line.subarray(t[0], t[1]), rng.pick(TRACE_TOKENS)]);
      else if (k === 1) value = Buffer.alloc(rng.small(70000), rng.pick(['a', '9', ' ', '"', '\xff']), 'latin1');
      else value = rng.pick(TRACE_TOKENS);
      lines[li] = replaceToken(line, t, value);
      break;
    }
    case 3: {
      // a line continued by a newline inside a value, or two lines glued
      const at = rng.int(line.length + 1);
      lines[li] = Buffer.concat([line.subarray(0, at), Buffer.from(rng.chance(0.5) ? '\n' : '"\n'), line.subarray(at)]);
      break;
    }
    case 4: {
      // repeat a line many times (a burst), or drop it
      if (rng.chance(0.3)) lines.splice(li, 1);
      else lines.splice(li, 0, ...Array.from({ length: rng.small(200) }, () => line));
      break;
    }
    case 5: {
      // an enormous line: MBs without a newline (the splitter must cap it)
      const n = rng.chance(0.2) ? 1024 * 1024 * (1 + rng.int(8)) : rng.small(200000);
      lines[li] = Buffer.concat([line, Buffer.alloc(n, rng.pick(['x', ' a=', '"', '\xc3']), 'latin1')]);
      if (rng.chance(0.5)) return clampLen(Buffer.concat([...lines.slice(0, li + 1).flatMap((l) => [l, Buffer.of(10)])]).subarray(0, -1));
      break;
    }
    default: {
      // the kernel's own notices between records
      lines.splice(li, 0, Buffer.from(rng.pick(['CPU:1 [LOST 42 EVENTS]', 'CPU:3 [LOST EVENTS]', '[LINE TOO BIG]', '# tracer: nop', '', `CPU:${rng.u32()} [LOST ${rng.u32()}${rng.u32()} EVENTS]`])));
    }
  }
  const parts: Buffer[] = [];
  for (let i = 0; i < lines.length; i++) {
    parts.push(lines[i]);
    if (i + 1 < lines.length || input[input.length - 1] === 10) parts.push(Buffer.of(10));
  }
  return clampLen(Buffer.concat(parts));
}
