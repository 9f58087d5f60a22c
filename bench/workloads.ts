/**
 * Workloads for the cost-to-traced-processes benchmark (issue #10), and the interleaved measuring
 * loop that compares monitoring conditions on them.
 *
 * Every workload is one C driver run: the driver does N operations back to back and prints the wall
 * time of its own loop (CLOCK_MONOTONIC), so Node's spawn machinery, its event loop and the driver's
 * own start-up stay outside the number. A round is one driver run; conditions are compared by the
 * median of several rounds, as a ratio to the `baseline` condition measured in the same run.
 *
 *   spawn     posix_spawn(/bin/true) + wait, N times: exec and ld.so start-up of a minimal program
 *   dlopen    dlopen()+dlclose() of a one-object library, N times, each really mapping it again
 *   needed40  a program with 40 generated DT_NEEDED libraries, spawned N times: start-up list work
 *   python    python3 -c 'import ssl, json', spawned N times: a real interpreter's dlopens
 *
 * The C sources are in bench/c and are compiled with gcc into a temporary directory at run time.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ElfSymbolResolver } from '../src/elf/resolver';

const execFileP = promisify(execFile);

/** One benchmark workload. */
export interface Workload {
  readonly name: string;
  readonly description: string;
  /** Operations per round (spawns or dlopens). */
  readonly iterations: number;
  /** Runs one timed round (synchronously: nothing of Node runs meanwhile) and returns its wall milliseconds. */
  run(): number;
}

export interface WorkloadOptions {
  /** Smaller N per round (about a fifth), for a fast look. */
  quick?: boolean;
  /** Only these workloads (by name), in this order. Default all four. */
  only?: readonly string[];
  /**
   * `dir` already holds the binaries of an earlier prepareWorkloads(dir) with the same options, at
   * the same absolute path (needed40's runpath names it): nothing is compiled. The kernel matrix
   * compiles on the host and measures in guests that have no gcc.
   */
  prebuilt?: boolean;
}

/** N per round: full and quick. Sized so one round of each lasts long enough to swamp timer noise. */
export const ITERATIONS: Readonly<Record<string, { full: number; quick: number }>> = {
  spawn: { full: 1500, quick: 300 },
  dlopen: { full: 3000, quick: 600 },
  needed40: { full: 300, quick: 60 },
  python: { full: 50, quick: 15 },
};

/** Number of generated DT_NEEDED libraries of the needed40 program. */
export const NEEDED_COUNT = 40;

/** bench/c in the source tree (this file runs compiled from dist/bench). */
export const C_SRC = ((): string => {
  let dir = __dirname;
  for (;;) {
    const cand = path.join(dir, 'bench', 'c');
    if (fs.existsSync(path.join(cand, 'spawn.c'))) return cand;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`bench/c not found above ${__dirname}`);
    dir = up;
  }
})();

/** The output of a gcc command line, which a prebuilt directory must have. */
function requireBuilt(args: string[]): void {
  const out = args[args.indexOf('-o') + 1];
  if (!out || !fs.existsSync(out)) throw new Error(`prebuilt workloads: ${out ?? '?'} is missing (build them with prepareWorkloads(dir) first)`);
}

async function compile(args: string[]): Promise<void> {
  try {
    await execFileP('gcc', args, { maxBuffer: 4 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`gcc ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

/** Runs `jobs` at most `limit` at a time (2 cores: more parallel gcc only thrashes). */
async function limited(jobs: Array<() => Promise<void>>, limit: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) await jobs[next++]!();
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
}

/** Runs a driver and returns the milliseconds it printed. */
function timedRun(name: string, file: string, args: string[]): number {
  let out: string;
  try {
    out = execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`workload ${name} failed: ${(e.stderr || e.message).trim()}`);
  }
  const ms = Number(out.trim());
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`workload ${name}: driver printed ${JSON.stringify(out)}`);
  return ms;
}

/**
 * The distribution's python3, not whatever `python3` is first on PATH: a version manager's shim
 * (pyenv's is a shell script that execs the real interpreter) would be most of what gets timed.
 */
function python3(): string {
  for (const p of ['/usr/bin/python3', '/usr/local/bin/python3', '/bin/python3']) if (fs.existsSync(p)) return p;
  throw new Error('python3 not found (the python workload needs it)');
}

/**
 * Compiles the drivers and generated libraries into `dir` (which must exist and is left for the
 * caller to remove) and returns the workloads, each checked once so a broken build fails here and
 * not in the middle of a measurement.
 */
export async function prepareWorkloads(dir: string, opts: WorkloadOptions = {}): Promise<Workload[]> {
  const names = opts.only ?? Object.keys(ITERATIONS);
  for (const n of names) if (!ITERATIONS[n]) throw new Error(`unknown workload ${n} (known: ${Object.keys(ITERATIONS).join(', ')})`);
  const n = (name: string): number => (opts.quick ? ITERATIONS[name]!.quick : ITERATIONS[name]!.full);
  const src = (f: string): string => path.join(C_SRC, f);
  const out = (f: string): string => path.join(dir, f);
  // -O2 and no sanitizers: the drivers should spend their time in the work they time.
  const cflags = ['-O2', '-Wall', '-Werror'];
  const gcc = opts.prebuilt ? async (args: string[]): Promise<void> => void requireBuilt(args) : compile;

  const spawnDriver = out('spawn');
  await gcc([...cflags, src('spawn.c'), '-o', spawnDriver]);

  const workloads: Workload[] = [];
  for (const name of names) {
    switch (name) {
      case 'spawn': {
        const iters = n(name);
        workloads.push({
          name,
          description: `posix_spawn /bin/true + wait, ${iters}×`,
          iterations: iters,
          run: () => timedRun(name, spawnDriver, [String(iters), '/bin/true']),
        });
        break;
      }
      case 'dlopen': {
        const iters = n(name);
        const lib = out('libbenchplugin.so');
        const driver = out('dlopen-driver');
        // -rdynamic exports bench_ctor_runs for the library's constructor to count mappings; -ldl
        // only where libc does not have dlopen itself (glibc < 2.34), hence --as-needed.
        await gcc([...cflags, '-fPIC', '-shared', src('plugin.c'), '-o', lib]);
        await gcc([...cflags, '-rdynamic', src('dlopen.c'), '-o', driver, '-Wl,--as-needed', '-ldl']);
        const deps = new ElfSymbolResolver().inspect(lib).needed.filter((d) => !/^libc\.so\./.test(d));
        if (deps.length > 0) throw new Error(`${lib} needs ${deps.join(', ')}: the dlopen workload must map one object per call`);
        workloads.push({
          name,
          description: `dlopen+dlclose of a one-object library, ${iters}× (driver checks each maps it anew)`,
          iterations: iters,
          run: () => timedRun(name, driver, [String(iters), lib]),
        });
        break;
      }
      case 'needed40': {
        const iters = n(name);
        const libDir = out('needed');
        fs.mkdirSync(libDir, { recursive: true });
        await limited(
          Array.from({ length: NEEDED_COUNT }, (_, k) => () =>
            gcc([...cflags, '-fPIC', '-shared', `-DINDEX=${k}`, src('needed-lib.c'), '-o', path.join(libDir, `libneed${k}.so`)]),
          ),
          2,
        );
        const prog = out('needed40');
        // A runpath, not LD_LIBRARY_PATH: the environment variable would also change how every other
        // program the benchmark runs is looked up and loaded.
        await gcc([
          ...cflags,
          src('needed-main.c'),
          '-o',
          prog,
          `-L${libDir}`,
          `-Wl,-rpath,${libDir}`,
          '-Wl,--no-as-needed',
          ...Array.from({ length: NEEDED_COUNT }, (_, k) => `-lneed${k}`),
        ]);
        const needed = new ElfSymbolResolver().inspect(prog).needed.filter((d) => /^libneed\d+\.so$/.test(d));
        if (needed.length !== NEEDED_COUNT) throw new Error(`${prog} has ${needed.length} generated DT_NEEDED entries, expected ${NEEDED_COUNT}`);
        workloads.push({
          name,
          description: `spawn a program with ${NEEDED_COUNT} DT_NEEDED libraries, ${iters}×`,
          iterations: iters,
          run: () => timedRun(name, spawnDriver, [String(iters), prog]),
        });
        break;
      }
      case 'python': {
        const iters = n(name);
        const py = python3();
        workloads.push({
          name,
          description: `spawn python3 -c 'import ssl, json', ${iters}×`,
          iterations: iters,
          run: () => timedRun(name, spawnDriver, [String(iters), py, '-c', 'import ssl, json']),
        });
        break;
      }
    }
  }
  // One untimed pass: proves each workload works and warms the page cache for all conditions alike.
  for (const w of workloads) w.run();
  return workloads;
}

/** Median and ratio of one condition on one workload. */
export interface Measurement {
  condition: string;
  workload: string;
  /** Wall milliseconds of every round, in round order. */
  samplesMs: number[];
  medianMs: number;
  /** Per operation (spawn or dlopen), microseconds. */
  medianUsPerOp: number;
  /** medianMs / the `baseline` condition's medianMs on the same workload. */
  ratio: number;
}

export const BASELINE = 'baseline';

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface MeasureOptions {
  /** Called after every workload round (progress output). */
  onSample?: (condition: string, workload: string, round: number, ms: number) => void;
}

/**
 * Measures every workload under every condition, interleaved: for each round, for each condition,
 * start it, run every workload once, stop it. On a noisy 2-core VM (other benchmarks, page cache,
 * CPU frequency) the machine drifts over minutes; running conditions one after another in blocks
 * would turn that drift into a difference between conditions, while interleaving spreads it over
 * all of them. The order of conditions is also reversed every other round (ABC CBA ABC ...), so no
 * condition always runs right after another one's teardown.
 *
 * `conditions` must include `baseline` (no monitoring); ratios are against it. The stop callback
 * runs for every started condition, also when a workload throws.
 */
export async function measure(
  workloads: readonly Workload[],
  conditions: readonly string[],
  startCondition: (name: string) => Promise<void>,
  stopCondition: (name: string) => Promise<void>,
  rounds: number,
  opts: MeasureOptions = {},
): Promise<Measurement[]> {
  if (!conditions.includes(BASELINE)) throw new Error(`measure: conditions must include "${BASELINE}" (ratios are against it)`);
  if (rounds < 1) throw new Error('measure: rounds must be at least 1');
  const samples = new Map<string, number[]>();
  const key = (c: string, w: string): string => `${c}\u0000${w}`;
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? conditions : [...conditions].reverse();
    for (const c of order) {
      await startCondition(c);
      try {
        for (const w of workloads) {
          const ms = w.run();
          const k = key(c, w.name);
          if (!samples.has(k)) samples.set(k, []);
          samples.get(k)!.push(ms);
          opts.onSample?.(c, w.name, r, ms);
        }
      } finally {
        await stopCondition(c);
      }
    }
  }
  const out: Measurement[] = [];
  for (const c of conditions) {
    for (const w of workloads) {
      const xs = samples.get(key(c, w.name))!;
      const base = median(samples.get(key(BASELINE, w.name))!);
      const m = median(xs);
      out.push({ condition: c, workload: w.name, samplesMs: xs, medianMs: m, medianUsPerOp: (m * 1000) / w.iterations, ratio: m / base });
    }
  }
  return out;
}

/** Markdown table: one row per condition, one column per workload, `median ms (ratio×)` per cell. */
export function markdownTable(results: readonly Measurement[], workloads: readonly Workload[]): string {
  const conditions = [...new Set(results.map((r) => r.condition))];
  const cell = (c: string, w: string): string => {
    const r = results.find((x) => x.condition === c && x.workload === w);
    return r ? `${r.medianMs.toFixed(1)} ms (${r.ratio.toFixed(2)}×)` : '–';
  };
  const head = ['condition', ...workloads.map((w) => `${w.name} (${w.iterations}×)`)];
  const rows = conditions.map((c) => [c, ...workloads.map((w) => cell(c, w.name))]);
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}
