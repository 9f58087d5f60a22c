/**
 * Shared test support: compiles the ELF fixtures with gcc into a temp dir (once per test process) and
 * parses readelf output, which serves as the independent reference for symbol values and segments.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const LIBC = '/lib/x86_64-linux-gnu/libc.so.6';
export const LDSO = '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2';

export function have(tool: string): boolean {
  return spawnSync(tool, ['--version'], { stdio: 'ignore' }).status === 0;
}

export function run(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

let tmpRoot: string | undefined;
/** A fresh directory under one per-process temp root (removed at exit). */
export function tempDir(name: string): string {
  if (!tmpRoot) {
    tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-elf-'));
    const root = tmpRoot;
    process.on('exit', () => fs.rmSync(root, { recursive: true, force: true }));
  }
  const dir = path.join(tmpRoot, name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Fixture library: exported functions, .data and .bss objects, a TLS variable, a static (symtab-only)
 * function, and symbol versions: foo@V1 + foo@@V2 (same name, different code), old@V1 (only a hidden
 * version), bar@V1 + bar@V2 (two hidden versions at different addresses: ambiguous).
 */
export const FIXTURE_C = `
int soload_fix_add(int a, int b) { return a + b; }
static int __attribute__((noinline)) soload_fix_helper(int x) { return x * 3; }
int soload_fix_call(int x) { return soload_fix_helper(x) + 1; }
int soload_fix_counter = 0x50f1c0de;
char soload_fix_buffer[8192];
__thread int soload_fix_tls = 7;
int foo_v1(void) { return 1; }
int foo_v2(void) { return 2; }
int old_impl(void) { return 3; }
int bar_v1(void) { return 4; }
int bar_v2(void) { return 5; }
__asm__(".symver foo_v1, foo@V1");
__asm__(".symver foo_v2, foo@@V2");
__asm__(".symver old_impl, old@V1");
__asm__(".symver bar_v1, bar@V1");
__asm__(".symver bar_v2, bar@V2");
`;

export const FIXTURE_MAP = `
V1 { global: soload_fix_add; soload_fix_call; soload_fix_counter; soload_fix_buffer; soload_fix_tls; foo; old; bar; local: *; };
V2 { global: foo; bar; } V1;
`;

export const FIXTURE_COUNTER = 0x50f1c0de;

export interface Fixtures {
  dir: string;
  /** Unstripped versioned library with build ID, DT_NEEDED libc.so.6 + libm.so.6 and a DT_RUNPATH. */
  lib: string;
  /** Same library built with --build-id=none. */
  libNoBuildId: string;
  /** Debug file of `lib` (objcopy --only-keep-debug). */
  debug: string;
}

let fixtures: Fixtures | undefined;

export function buildFixtures(): Fixtures {
  if (fixtures) return fixtures;
  const dir = tempDir('fixture');
  fs.writeFileSync(path.join(dir, 'fix.c'), FIXTURE_C);
  fs.writeFileSync(path.join(dir, 'fix.map'), FIXTURE_MAP);
  const gcc = (out: string, buildId: string): void => {
    run('gcc', [
      '-g', '-O1', '-fPIC', '-shared', '-nostdlib',
      `-Wl,--build-id=${buildId}`,
      '-Wl,--version-script=fix.map',
      '-Wl,-soname,libfix.so.1',
      '-Wl,--enable-new-dtags,-rpath,/opt/soload-fixture',
      '-Wl,--no-as-needed', '-L/lib/x86_64-linux-gnu', '-l:libc.so.6', '-l:libm.so.6',
      '-o', out, 'fix.c',
    ], dir);
  };
  gcc('libfix.so', 'sha1');
  gcc('libfix-noid.so', 'none');
  run('objcopy', ['--only-keep-debug', 'libfix.so', 'libfix.so.debug'], dir);
  fixtures = {
    dir,
    lib: path.join(dir, 'libfix.so'),
    libNoBuildId: path.join(dir, 'libfix-noid.so'),
    debug: path.join(dir, 'libfix.so.debug'),
  };
  return fixtures;
}

/** `strip --strip-all` copy of `src` at `dest`, optionally with a .gnu_debuglink to `debugFile`. */
export function strippedCopy(src: string, dest: string, debugFile?: string): string {
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  run('strip', ['--strip-all', '-o', dest, src]);
  if (debugFile) {
    // objcopy records basename(debugFile) and the CRC of its current contents.
    run('objcopy', [`--add-gnu-debuglink=${debugFile}`, dest]);
  }
  return dest;
}

export interface ReadelfSymbol {
  table: '.dynsym' | '.symtab';
  value: number;
  size: number;
  type: string;
  bind: string;
  ndx: string;
  /** As printed: `name`, `name@V` or `name@@V`. */
  name: string;
}

/** Parse `readelf -Ws --dyn-syms` (wide) output. */
export function readelfSymbols(file: string): ReadelfSymbol[] {
  const out: ReadelfSymbol[] = [];
  let table: ReadelfSymbol['table'] | undefined;
  for (const line of run('readelf', ['-Ws', '--dyn-syms', file]).split('\n')) {
    const head = /^Symbol table '(\.dynsym|\.symtab)'/.exec(line);
    if (head) {
      table = head[1] as ReadelfSymbol['table'];
      continue;
    }
    const m = /^\s*\d+:\s+([0-9a-f]+)\s+(0x[0-9a-f]+|\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)/.exec(line);
    if (!m || !table) continue;
    out.push({ table, value: parseInt(m[1], 16), size: Number(m[2]), type: m[3], bind: m[4], ndx: m[6], name: m[7] });
  }
  return out;
}

export interface ReadelfSegment {
  type: string;
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
}

/** Parse the program headers of `readelf -lW`. */
export function readelfSegments(file: string): ReadelfSegment[] {
  const out: ReadelfSegment[] = [];
  for (const line of run('readelf', ['-lW', file]).split('\n')) {
    const m = /^\s+([A-Z_]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)/.exec(line);
    if (m) out.push({ type: m[1], offset: parseInt(m[2], 16), vaddr: parseInt(m[3], 16), filesz: parseInt(m[4], 16), memsz: parseInt(m[5], 16) });
  }
  return out;
}

/** File offset per readelf's LOAD segments, or undefined when vaddr has no file bytes. */
export function referenceOffset(segments: ReadelfSegment[], vaddr: number): number | undefined {
  const seg = segments.find((s) => s.type === 'LOAD' && vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz);
  return seg ? vaddr - seg.vaddr + seg.offset : undefined;
}

/** Build ID as printed by `readelf -n`. */
export function readelfBuildId(file: string): string | undefined {
  return /Build ID: ([0-9a-f]+)/.exec(run('readelf', ['-n', file]))?.[1];
}
