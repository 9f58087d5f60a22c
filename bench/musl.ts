/**
 * What soload costs musl programs (issue #10, goal 1, for the `musl-lists` mechanism): the same
 * interleaved-rounds comparison as the glibc cost section (bench/workloads.ts, bench/baselines.ts),
 * on programs built with musl-gcc and run by musl's own loader (/lib/ld-musl-<arch>.so.1, which is
 * musl's libc).
 *
 *   musl-spawn     posix_spawn of a tiny dynamically linked musl program + wait, N times (the
 *                  driver is bench/c/spawn.c, a glibc program: only the child is musl)
 *   musl-dlopen    a musl program dlopen()ing N distinct copies of a small musl library (musl's
 *                  dlclose never unloads and its dlopen dedups by inode, so each dlopen of the
 *                  same file after the first would be a list search: every iteration opens a file
 *                  of its own and maps a new object, checked by a constructor count)
 *   musl-needed10  a musl program with 10 DT_NEEDED musl libraries, spawned N times
 *
 * Conditions: no monitoring; the kernel floor at soload's musl places (a fetch-less uprobe at each
 * place soload probes in musl's libc.so, read from a soload started once with the default
 * configuration); soload itself, checked to have given the host's musl set `musl-lists`. soload's
 * own CPU over its rounds is reported per load record.
 *
 * Before measuring, one soload run with the console exporter checks that the records are real: a
 * musl-dlopen run yields one `dlopen` record per library it opened, a musl-needed10 run its ten
 * `needed` records, with the paths the files have.
 *
 * Run alone (root): `node dist/bench/musl.js [--quick] [--rounds N]` prints the markdown table.
 * The C sources are bench/c/musl-*.c (and spawn.c), compiled into a temporary directory.
 */
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ElfSymbolResolver } from '../src/elf/resolver';
import { startSoload, tracefsState } from '../test/helpers/soload';
import { baselineCondition, foreignTracers, installCleanupHooks, leftovers, measureConditions, type Condition, type ProbePoint } from './baselines';
import { expectedMechanismLine, floorFor, probePointsOf, soloadCondition, type MechanismSetup, type SoloadUsage } from './soload-conditions';
import { C_SRC, type Measurement, type Workload } from './workloads';

const execFileP = promisify(execFile);

/** musl's loader as programs name it (PT_INTERP of every musl-gcc program on x86_64). */
export const MUSL_LOADER = '/lib/ld-musl-x86_64.so.1';

/** N per round, full and quick. */
export const MUSL_ITERATIONS: Readonly<Record<string, { full: number; quick: number }>> = {
  'musl-spawn': { full: 1500, quick: 300 },
  'musl-dlopen': { full: 3000, quick: 600 },
  'musl-needed10': { full: 1500, quick: 300 },
};

/** DT_NEEDED libraries of the musl-needed10 program. */
export const MUSL_NEEDED = 10;

/** soload as the musl condition: the default configuration, export off, no start-up snapshot. */
export const MUSL_SETUP: MechanismSetup = {
  name: 'soload, musl lists',
  mechanism: 'musl-lists',
  config: { otel: { exporters: ['none'] }, capture: { snapshot: false } },
};

async function compile(cc: 'gcc' | 'musl-gcc', args: string[]): Promise<void> {
  try {
    await execFileP(cc, args, { maxBuffer: 4 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string; code?: string };
    if (cc === 'musl-gcc' && e.code === 'ENOENT') throw new Error('musl-gcc not found: apt-get install -y musl-tools');
    throw new Error(`${cc} ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

/** Runs a driver and returns the milliseconds it printed. */
function timedRun(name: string, file: string, args: string[]): number {
  const r = spawnSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`workload ${name} failed (${r.status ?? r.signal}): ${(r.stderr || r.error?.message || '').trim()}`);
  const ms = Number(r.stdout.trim());
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`workload ${name}: driver printed ${JSON.stringify(r.stdout)}`);
  return ms;
}

/** Throws unless `file` is run by musl's loader (dynamically linked, PT_INTERP = MUSL_LOADER). */
function requireMuslInterp(elf: ElfSymbolResolver, file: string): void {
  const interp = elf.inspect(file).interpreter;
  if (interp !== MUSL_LOADER) throw new Error(`${file}: PT_INTERP is ${interp ?? 'absent (static)'}, not ${MUSL_LOADER}: it would not run under musl's loader`);
}

/** The compiled musl workloads, plus what the record check needs. */
export interface MuslWorkloads {
  workloads: Workload[];
  /** The tiny program, the needed10 program and its libraries, the dlopen driver and pattern. */
  files: { tiny: string; needed: string; neededLibs: string[]; dlopenDriver: string; dlopenPattern: string; dlopenCopies: number };
}

/**
 * Compiles the drivers, programs and libraries into `dir` (left for the caller to remove), checks
 * each musl binary is dynamically linked against musl's loader, and runs every workload once
 * (a broken build fails here, and the page cache is warm for all conditions alike).
 */
export async function prepareMuslWorkloads(dir: string, opts: { quick?: boolean } = {}): Promise<MuslWorkloads> {
  const n = (name: string): number => (opts.quick ? MUSL_ITERATIONS[name]!.quick : MUSL_ITERATIONS[name]!.full);
  const src = (f: string): string => path.join(C_SRC, f);
  const out = (f: string): string => path.join(dir, f);
  const cflags = ['-O2', '-Wall', '-Werror'];
  const elf = new ElfSymbolResolver();
  if (!fs.existsSync(MUSL_LOADER)) throw new Error(`${MUSL_LOADER} missing: apt-get install -y musl-tools (or musl)`);

  const spawnDriver = out('spawn');
  const tiny = out('musl-tiny');
  const dlopenDriver = out('musl-dlopen');
  const dlLib = out('libmdl.so');
  const libDir = out('needed');
  fs.mkdirSync(libDir);
  const neededLibs = Array.from({ length: MUSL_NEEDED }, (_, k) => path.join(libDir, `libmneed${k}.so`));
  const needed = out('musl-needed10');
  // Two cores: two compilers at a time.
  const first: Array<Promise<void>> = [
    compile('gcc', [...cflags, src('spawn.c'), '-o', spawnDriver]),
    compile('musl-gcc', [...cflags, src('musl-tiny.c'), '-o', tiny]),
  ];
  await Promise.all(first);
  await Promise.all([
    compile('musl-gcc', [...cflags, '-rdynamic', src('musl-dlopen.c'), '-o', dlopenDriver]),
    compile('musl-gcc', [...cflags, '-fPIC', '-shared', '-DINDEX=0', '-DCOUNT_CTOR', src('musl-lib.c'), '-o', dlLib]),
  ]);
  for (let k = 0; k < MUSL_NEEDED; k += 2) {
    await Promise.all(
      [k, k + 1]
        .filter((i) => i < MUSL_NEEDED)
        .map((i) => compile('musl-gcc', [...cflags, '-fPIC', '-shared', `-DINDEX=${i}`, src('musl-lib.c'), '-o', neededLibs[i]!])),
    );
  }
  // A runpath, not LD_LIBRARY_PATH (which would change how every other program is loaded).
  await compile('musl-gcc', [...cflags, src('musl-tiny.c'), '-o', needed, `-L${libDir}`, `-Wl,-rpath,${libDir}`, '-Wl,--no-as-needed', ...neededLibs.map((_, k) => `-lmneed${k}`)]);

  for (const f of [tiny, dlopenDriver, needed]) requireMuslInterp(elf, f);
  const deps = elf.inspect(dlLib).needed.filter((d) => d !== 'libc.so');
  if (deps.length) throw new Error(`${dlLib} needs ${deps.join(', ')}: each musl dlopen must map one object`);
  const got = elf.inspect(needed).needed.filter((d) => /^libmneed\d+\.so$/.test(d));
  if (got.length !== MUSL_NEEDED) throw new Error(`${needed} has ${got.length} generated DT_NEEDED entries, expected ${MUSL_NEEDED}`);

  // Distinct copies (own inodes: musl finds a loaded object by device and inode, so hard links
  // would not load anew), one per dlopen of a round; every round is a new process, so the same
  // copies serve every round.
  const copies = n('musl-dlopen');
  const pattern = path.join(dir, 'dl', 'libmdl%d.so');
  fs.mkdirSync(path.dirname(pattern));
  for (let i = 0; i < copies; i++) fs.copyFileSync(dlLib, pattern.replace('%d', String(i)));

  const iters = { spawn: n('musl-spawn'), dlopen: copies, needed: n('musl-needed10') };
  const workloads: Workload[] = [
    {
      name: 'musl-spawn',
      description: `posix_spawn a dynamically linked musl-gcc program (PT_INTERP ${MUSL_LOADER}) that returns 0, + wait, ${iters.spawn}×`,
      iterations: iters.spawn,
      run: () => timedRun('musl-spawn', spawnDriver, [String(iters.spawn), tiny]),
    },
    {
      name: 'musl-dlopen',
      description: `a musl program dlopen+dlclose of ${iters.dlopen} distinct copies of a one-object musl library (a new object each: musl's dlclose does not unload; constructor count checked)`,
      iterations: iters.dlopen,
      run: () => timedRun('musl-dlopen', dlopenDriver, [String(iters.dlopen), pattern]),
    },
    {
      name: 'musl-needed10',
      description: `spawn a musl program with ${MUSL_NEEDED} DT_NEEDED musl libraries (runpath), ${iters.needed}×`,
      iterations: iters.needed,
      run: () => timedRun('musl-needed10', spawnDriver, [String(iters.needed), needed]),
    },
  ];
  for (const w of workloads) w.run();
  return { workloads, files: { tiny, needed, neededLibs, dlopenDriver, dlopenPattern: pattern, dlopenCopies: copies } };
}

/** The points of `points` in musl's loader file (its libc.so; /lib/ld-musl-*.so.1 links to it). */
export function muslPoints(points: readonly ProbePoint[]): ProbePoint[] {
  const loader = fs.realpathSync(MUSL_LOADER);
  return points.filter((p) => p.path === loader || p.path === MUSL_LOADER);
}

/** What the record check saw. */
export interface MuslRecordCheck {
  /** Libraries the checked musl-dlopen run opened, and how many of them have a `dlopen` record. */
  dlopened: number;
  dlopenRecords: number;
  /** Records of one musl-needed10 process by method (`needed` must be MUSL_NEEDED). */
  neededMethods: Record<string, number>;
  /** Records of one musl-spawn child (the tiny program) by method. */
  tinyMethods: Record<string, number>;
}

const attr = (r: { attributes: Record<string, unknown> }, k: string): unknown => r.attributes[k];

/**
 * One soload run with the console exporter: a musl-dlopen run of `count` libraries must yield a
 * `dlopen` record with the exact path of each, a musl-needed10 process a `needed` record for each
 * of its libraries, and the tiny program its interpreter (musl's libc; the default configuration
 * does not report executables). Throws otherwise.
 */
export async function checkMuslRecords(files: MuslWorkloads['files'], count = 50): Promise<MuslRecordCheck> {
  const s = await startSoload({ otel: { exporters: ['console'] }, capture: { snapshot: false } }, { readyTimeoutMs: 120_000 });
  try {
    if (!s.stderr().includes(expectedMechanismLine(MUSL_SETUP))) throw new Error(`record check: soload did not give the host's musl set musl-lists: ${s.stderr()}`);
    const n = Math.min(count, files.dlopenCopies);
    const dl = spawnSync(files.dlopenDriver, [String(n), files.dlopenPattern], { encoding: 'utf8' });
    if (dl.status !== 0) throw new Error(`record check: musl-dlopen failed: ${dl.stderr}`);
    const nd = spawnSync(files.needed, [], { encoding: 'utf8' });
    const tn = spawnSync(files.tiny, [], { encoding: 'utf8' });
    if (nd.status !== 0 || tn.status !== 0) throw new Error(`record check: musl programs failed (${nd.status}, ${tn.status})`);
    const want = new Set(Array.from({ length: n }, (_, i) => files.dlopenPattern.replace('%d', String(i))));
    const isDl = (r: (typeof s.records)[number]): boolean =>
      attr(r, 'process.pid') === dl.pid && attr(r, 'soload.load.method') === 'dlopen' && want.has(String(attr(r, 'file.path')));
    await s.waitFor(isDl, 10_000, n);
    await s.waitFor((r) => attr(r, 'process.pid') === nd.pid && attr(r, 'soload.load.method') === 'needed', 5_000, MUSL_NEEDED);
    await s.waitFor((r) => attr(r, 'process.pid') === tn.pid && attr(r, 'soload.load.method') === 'interpreter', 5_000, 1);
    const byMethod = (pid: number | undefined): Record<string, number> => {
      const m: Record<string, number> = {};
      for (const r of s.records) if (attr(r, 'process.pid') === pid) m[String(attr(r, 'soload.load.method'))] = (m[String(attr(r, 'soload.load.method'))] ?? 0) + 1;
      return m;
    };
    const dlPaths = new Set(s.records.filter(isDl).map((r) => String(attr(r, 'file.path'))));
    const neededPaths = new Set(
      s.records.filter((r) => attr(r, 'process.pid') === nd.pid && attr(r, 'soload.load.method') === 'needed').map((r) => String(attr(r, 'file.path'))),
    );
    const check: MuslRecordCheck = { dlopened: n, dlopenRecords: dlPaths.size, neededMethods: byMethod(nd.pid), tinyMethods: byMethod(tn.pid) };
    const problems: string[] = [];
    if (dlPaths.size !== n) problems.push(`${dlPaths.size} of ${n} dlopened libraries have a dlopen record`);
    const missing = files.neededLibs.filter((l) => !neededPaths.has(l));
    if (missing.length) problems.push(`no needed record for ${missing.join(', ')}`);
    if (check.tinyMethods.interpreter !== 1) problems.push(`tiny program: ${JSON.stringify(check.tinyMethods)} (want one interpreter record)`);
    if (s.stdoutRaw().includes('(fault)')) problems.push('(fault) in the console output');
    if (problems.length) throw new Error(`record check: ${problems.join('; ')}`);
    return check;
  } finally {
    const code = await s.stop('SIGINT');
    if (code !== 130) process.stderr.write(`record check: soload exited ${code}\n`);
  }
}

/** `median ms · µs/op (ratio×)` per cell, a row per condition. */
function table(results: readonly Measurement[], workloads: readonly Workload[]): string {
  const conditions = [...new Set(results.map((r) => r.condition))];
  const cell = (c: string, w: string): string => {
    const r = results.find((x) => x.condition === c && x.workload === w);
    return r ? `${r.medianMs.toFixed(1)} ms · ${r.medianUsPerOp.toFixed(1)} µs/op (${r.ratio.toFixed(2)}×)` : '–';
  };
  const head = ['condition', ...workloads.map((w) => `${w.name} (${w.iterations}×)`)];
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...conditions.map((c) => line([c, ...workloads.map((w) => cell(c, w.name))]))].join('\n');
}

/** soload groups whose process is gone: what a soload of ours would leave if it did not clean up. */
function deadSoloadGroups(): string[] {
  const groups = new Set<string>();
  for (const p of tracefsState().probes) {
    const m = /^[pr]:soload_(\d+)\//.exec(p);
    if (m) groups.add(m[1]!);
  }
  for (const i of tracefsState().instances) {
    const m = /^soload_(\d+)$/.exec(i);
    if (m) groups.add(m[1]!);
  }
  return [...groups].filter((pid) => !fs.existsSync(`/proc/${pid}`)).map((pid) => `soload_${pid}`);
}

/**
 * Measures the musl workloads under no monitoring, the kernel floor at soload's musl places and
 * soload (musl-lists), `rounds` interleaved rounds (default 5, quick 3). Returns the markdown
 * table (with soload's own CPU per load, the record check and the workloads' descriptions below
 * it) and the measurements.
 */
export async function benchMusl(opts: { quick?: boolean; rounds?: number } = {}): Promise<{ table: string; results: Measurement[] }> {
  if (process.getuid?.() !== 0) throw new Error('the musl benchmark installs uprobes: run it as root');
  const rounds = opts.rounds ?? (opts.quick ? 3 : 5);
  const deadBefore = new Set(deadSoloadGroups());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-bench-musl-'));
  const conditions: Condition[] = [];
  try {
    const prepared = await prepareMuslWorkloads(dir, opts);
    const { workloads } = prepared;
    process.stderr.write('musl: checking records of one soload run…\n');
    const check = await checkMuslRecords(prepared.files);

    const points = muslPoints(await probePointsOf(MUSL_SETUP));
    if (points.length === 0) throw new Error(`soload probed nothing in ${fs.realpathSync(MUSL_LOADER)}`);
    const usage: SoloadUsage = { cpuMs: 0, loads: 0, mechanisms: '' };
    conditions.push(baselineCondition(), floorFor(MUSL_SETUP, points), soloadCondition(MUSL_SETUP, usage));

    const foreign = new Set<string>();
    process.stderr.write(`musl: ${rounds} rounds × ${conditions.length} conditions × ${workloads.length} workloads${opts.quick ? ' (quick)' : ''}\n`);
    const results = await measureConditions(workloads, conditions, rounds, {
      beforeStart: async () => {
        for (const f of foreignTracers()) foreign.add(f);
      },
      onSample: (c, w, r, ms) => process.stderr.write(`  musl: round ${r + 1}/${rounds} ${c.padEnd(30)} ${w.padEnd(13)} ${ms.toFixed(1)} ms\n`),
    });

    // Loads the workloads made per round under soload, from the record check's per-process counts
    // (the glibc spawn driver's own few are not counted).
    const per = (m: Record<string, number>): number => Object.values(m).reduce((a, b) => a + b, 0);
    const it = (name: string): number => workloads.find((w) => w.name === name)!.iterations;
    const expected = rounds * (it('musl-spawn') * per(check.tinyMethods) + it('musl-dlopen') + it('musl-needed10') * per(check.neededMethods));
    const lines = [
      `Wall time of each workload's loop (timed by the C driver), median of ${rounds} interleaved rounds; µs per spawn or dlopen; ratio = median ÷ the no-monitoring median of the same run. ${os.cpus().length} CPUs, kernel ${os.release()}.`,
      '',
      table(results, workloads),
      '',
      ...workloads.map((w) => `- ${w.name}: ${w.description}`),
      `- kernel floor: a fetch-less uprobe at each of the ${new Set(points.map((p) => `${p.kind} ${p.offset}`)).size} places soload probes in ${fs.realpathSync(MUSL_LOADER)} (${MUSL_LOADER})`,
      '',
      `soload's own CPU over its rounds (/proc utime+stime, 10 ms ticks): ${usage.cpuMs.toFixed(0)} ms for ${usage.loads} load records = ${usage.loads ? ((usage.cpuMs * 1000) / usage.loads).toFixed(1) : '-'} µs/load; the workloads made about ${expected} loads in those rounds (records also count other processes on the host). Start-up line: ${usage.mechanisms}`,
      '',
      `Records checked in one soload run (console exporter): ${check.dlopenRecords} of ${check.dlopened} libraries a musl-dlopen run opened have a \`dlopen\` record with their path; a musl-needed10 process: ${JSON.stringify(check.neededMethods)}; the tiny program: ${JSON.stringify(check.tinyMethods)}.`,
    ];
    if (foreign.size > 0) {
      lines.push('', `**Not a clean machine**: other tracers were active during the run (${[...foreign].slice(0, 6).join(', ')}); their probes are paid under every condition, baseline included, so these ratios understate the conditions' cost.`);
    }
    return { table: lines.join('\n'), results };
  } finally {
    for (const c of conditions) await c.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    const lockHeld = fs.existsSync(path.join(os.tmpdir(), 'soload-bench_floor.lock'));
    const left = [...(lockHeld ? [] : leftovers().filter((l) => l.includes('bench_floor'))), ...deadSoloadGroups().filter((g) => !deadBefore.has(g))];
    if (left.length) throw new Error(`left behind in tracefs: ${left.join(', ')}`);
  }
}

async function main(argv: string[]): Promise<void> {
  const quick = argv.includes('--quick');
  const i = argv.indexOf('--rounds');
  const rounds = i >= 0 ? Number(argv[i + 1]) : undefined;
  installCleanupHooks();
  const r = await benchMusl({ quick, rounds });
  console.log(r.table);
  process.stderr.write(`musl: done; nothing of ours left in tracefs\n`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}

