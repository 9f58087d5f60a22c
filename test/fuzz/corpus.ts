import fs from 'node:fs';
import path from 'node:path';
import { mixSchemas } from '../../bench/parser';
import type { ProbeSchema } from '../../src/pipe';
import { buildElf } from '../unit/elf/elf-builder';
import { MAX_INPUT, TRACE_TOKENS, elfTruncationPoints, replaceToken, traceTokens } from './mutate';

/** The repository root, found from both the sources and the compiled harness (dist/test/fuzz). */
export const REPO = ((): string => {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'test', 'fixtures', 'fuzz', 'README.md'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`test/fixtures/fuzz not found above ${__dirname}`);
    dir = up;
  }
})();

const FUZZ_FIXTURES = path.join(REPO, 'test', 'fixtures', 'fuzz');
const TRACE_FIXTURES = path.join(REPO, 'test', 'fixtures', 'trace');

/** One seed: where it came from (for the report) and its bytes. */
export interface Seed {
  readonly name: string;
  readonly data: Buffer;
}

/**
 * Real ELF objects of the host used as seeds (not committed: megabytes, and the point is the
 * distribution's own files). Every one that exists is used; the report lists the missing ones.
 * glibc's libc and loader, a few programs, libstdc++ (big symbol tables, versioned), musl's
 * loader/libc (another producer), a separate debug file (SHT_NOBITS tables, .symtab), and the
 * first MiB of a Java CDS archive — not ELF, but mapped executable by the JVM, so soload meets it.
 */
export const HOST_SEEDS: readonly string[] = [
  '/lib/x86_64-linux-gnu/libc.so.6',
  '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
  '/lib/x86_64-linux-gnu/libm.so.6',
  '/lib/x86_64-linux-gnu/libz.so.1',
  '/usr/bin/true',
  '/usr/bin/env',
  '/lib/ld-musl-x86_64.so.1',
  '/usr/lib/debug/.build-id/93/ac61ec5a8eb1396f9fbd350e3169a558528a40.debug',
  '/usr/lib/jvm/java-17-openjdk-amd64/lib/server/classes.jsa',
  '/usr/lib/jvm/java-17-openjdk-amd64/bin/java',
];

/** Host seeds are cut to this size (a .jsa is 13 MB; its header and first regions are what matter). */
const HOST_SEED_MAX = 1024 * 1024 * 4;

/** The ELF target's seeds: committed crafted files, generated ones, host objects, ld.so.cache. */
export function elfSeeds(): { seeds: Seed[]; missing: string[] } {
  const seeds: Seed[] = [];
  const dir = path.join(FUZZ_FIXTURES, 'elf');
  for (const f of fs.readdirSync(dir).sort()) {
    if (f.endsWith('.md')) continue;
    seeds.push({ name: `fixtures/fuzz/elf/${f}`, data: fs.readFileSync(path.join(dir, f)) });
  }
  for (const cls of [32, 64] as const) {
    for (const endian of ['le', 'be'] as const) seeds.push({ name: `elf-builder ${cls}${endian}`, data: buildElf(cls, endian).buf });
  }
  seeds.push({ name: 'fixtures/ldcache/debian12-x86_64.ld.so.cache', data: fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'ldcache', 'debian12-x86_64.ld.so.cache')) });
  const missing: string[] = [];
  for (const p of HOST_SEEDS) {
    let fd: number;
    try {
      fd = fs.openSync(p, 'r');
    } catch {
      missing.push(p);
      continue;
    }
    try {
      const size = Math.min(fs.fstatSync(fd).size, HOST_SEED_MAX);
      const buf = Buffer.alloc(size);
      fs.readSync(fd, buf, 0, size, 0);
      seeds.push({ name: p, data: buf });
    } finally {
      fs.closeSync(fd);
    }
  }
  return { seeds, missing };
}

/** The trace target's seeds: the committed minimized records plus the recorded fixture traces. */
export function traceSeeds(): Seed[] {
  const seeds: Seed[] = [];
  const dir = path.join(FUZZ_FIXTURES, 'trace');
  for (const f of fs.readdirSync(dir).sort()) {
    if (f.endsWith('.txt')) seeds.push({ name: `fixtures/fuzz/trace/${f}`, data: fs.readFileSync(path.join(dir, f)) });
  }
  for (const f of fs.readdirSync(TRACE_FIXTURES).sort()) {
    if (f.endsWith('.txt') && f !== 'mix.txt') seeds.push({ name: `fixtures/trace/${f}`, data: fs.readFileSync(path.join(TRACE_FIXTURES, f)) });
  }
  return seeds;
}

/**
 * Parser schemas of the recordings (soload's probes and the sched tracepoints, from mix.probes),
 * plus the short event names the hand-written fixtures use.
 */
export function traceSchemas(): Map<string, ProbeSchema> {
  const schemas = mixSchemas(fs.readFileSync(path.join(TRACE_FIXTURES, 'mix.probes'), 'utf8'));
  const extra: Array<[string, ProbeSchema]> = [
    ['e', { fields: [{ name: 'name', string: true }, { name: 'flags', string: false }, { name: 'comm', string: true }] }],
    ['r', { fields: [{ name: 'h', string: false }, { name: 'path', string: true }] }],
  ];
  for (const [k, v] of extra) if (!schemas.has(k)) schemas.set(k, v);
  return schemas;
}

/**
 * The deterministic part of a run, interleaved with random mutation: for trace seeds every token of
 * every line replaced by every value of TRACE_TOKENS; for ELF seeds a truncation at every
 * interesting offset (see elfTruncationPoints). Generated lazily: a long run completes it, a short
 * one does a prefix (the order is shuffled by the caller's seed).
 */
export function* sweep(target: 'trace' | 'elf', seeds: readonly Seed[]): Generator<Buffer> {
  if (target === 'elf') {
    for (const s of seeds) for (const at of elfTruncationPoints(s.data)) yield s.data.subarray(0, at);
    return;
  }
  for (const s of seeds) {
    // Every recorded line (the big drop-recording lost.txt aside: its lines repeat two shapes).
    if (!s.name.startsWith('fixtures/') || s.name.endsWith('/lost.txt')) continue;
    for (let p = 0; p < s.data.length; ) {
      const nl = s.data.indexOf(10, p);
      const end = nl === -1 ? s.data.length : nl;
      const line = s.data.subarray(p, end);
      for (const t of traceTokens(line)) {
        for (const v of TRACE_TOKENS) {
          const out = replaceToken(line, t, v);
          if (out.length <= MAX_INPUT) yield Buffer.concat([out, Buffer.of(10)]);
        }
      }
      p = end + 1;
    }
  }
}
