/**
 * The recall corpus: builds the C programs and libraries in test/recall/scenarios with gcc into a
 * work dir, describes each scenario (what to run, how often, which objects are preloaded or
 * dlopened), runs them recording each run's pid, wall time and truth file, and turns paths into
 * identity keys (dev:inode) so loader paths and /proc/<pid>/maps paths compare equal.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseTruth, type RunExpectations, type TruthEntry } from './evaluate';

/** test/recall/scenarios in the source tree (the harness runs from dist/test/recall). */
export const SCENARIO_SRC = ((): string => {
  let dir = __dirname;
  for (;;) {
    const cand = path.join(dir, 'test', 'recall', 'scenarios');
    if (fs.existsSync(path.join(cand, 'truth.h'))) return cand;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`test/recall/scenarios not found above ${__dirname}`);
    dir = up;
  }
})();

export interface RunSpec {
  file: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** The program prints "pid <n>" for the process that matters (a launcher forks it). */
  pidFromStdout?: boolean;
}

export interface Scenario {
  name: string;
  description: string;
  runs: number;
  /** Runs in flight at once (default 1). */
  concurrency?: number;
  spec: (i: number, truthFile: string) => RunSpec;
  /** The main program (for the `executable` expectation). */
  executable: string;
  preload?: string[];
  dlopen?: string[];
  /** Paths every run's truth must contain (checks the corpus itself, not soload). */
  mustContain?: string[];
  /** Failed dlopen() calls each run makes (a record with soload.result=failed is expected). */
  failedDlopens?: number;
}

export interface Run {
  scenario: string;
  index: number;
  pid: number;
  truthFile: string;
  startMs: number;
  endMs: number;
  wallMs: number;
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface Corpus {
  dir: string;
  scenarios: Scenario[];
  /** Scenarios that could not be set up on this host, with the reason. */
  skipped: Array<{ name: string; reason: string }>;
  interpreter: string;
}

function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** gcc, throwing with gcc's output on failure. */
export function gcc(args: string[]): void {
  sh('gcc', args);
}

/** Runs gcc jobs `parallel` at a time. */
async function gccAll(jobs: string[][], parallel = 2): Promise<void> {
  const queue = [...jobs];
  const worker = async (): Promise<void> => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      const args = job;
      await new Promise<void>((resolve, reject) => {
        const c = spawn('gcc', args, { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        c.stderr.on('data', (d: Buffer) => (err += d.toString()));
        c.on('error', reject);
        c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`gcc ${args.join(' ')} failed (${code}):\n${err}`))));
      });
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

/** The program interpreter (PT_INTERP) of an ELF file, via readelf; undefined for static files. */
export function programInterpreter(file: string): string | undefined {
  const out = spawnSync('readelf', ['-lW', file], { encoding: 'utf8' }).stdout ?? '';
  return /Requesting program interpreter: ([^\]]+)\]/.exec(out)?.[1];
}

/** The real interpreter behind `python3` on PATH (pyenv shims are shell scripts that exec it). */
export function resolvePython(): string | undefined {
  const r = spawnSync('python3', ['-c', 'import os, sys; print(os.path.realpath(sys.executable))'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() || undefined : undefined;
}

export const MANY_LIBS = 42;
export const SHORT_LIVED_RUNS = 500;

export interface BuildOptions {
  /** Runs of each scenario except short-lived (default 3). */
  repeat?: number;
  /** Runs of the short-lived scenario (default 500). */
  shortLivedRuns?: number;
  /** Only build/describe these scenarios (default: all). */
  only?: string[];
}

/**
 * Compiles the corpus into `dir` and returns the scenario list. Libraries:
 *   lib/chain/libchain_{a,b,c}.so   a NEEDS b NEEDS c (RUNPATH $ORIGIN)
 *   lib/many/libmany00..41.so       42 independent libraries
 *   lib/pre/libpre.so               a preload library that NEEDS libpredep.so
 *   lib/plug/libplug.so             a dlopen target; links/libplug-link.so -> ../lib/plug/libplug.so
 *   lib/deep/libdeep{1,2,3}.so      dlopen target with two levels of DT_NEEDED
 */
export async function buildCorpus(dir: string, opts: BuildOptions = {}): Promise<Corpus> {
  const repeat = opts.repeat ?? 3;
  const src = (f: string): string => path.join(SCENARIO_SRC, f);
  const d = (...p: string[]): string => path.join(dir, ...p);
  for (const sub of ['bin', 'lib/chain', 'lib/many', 'lib/pre', 'lib/plug', 'lib/deep', 'links', 'truth', 'ns']) fs.mkdirSync(d(sub), { recursive: true });
  const lib = (out: string, fn: string, calls?: { name: string; dir: string }): string[] => [
    '-shared',
    '-fPIC',
    '-O1',
    '-o',
    out,
    `-DFN=${fn}`,
    ...(calls ? [`-DCALLS=${calls.name}_fn`, src('lib.c'), `-L${calls.dir}`, '-Wl,--no-as-needed', `-l${calls.name}`, "-Wl,-rpath,$ORIGIN"] : [src('lib.c')]),
  ];
  const want = (n: string): boolean => !opts.only || opts.only.includes(n);

  // Libraries, leaves first (a library's dependency must exist before it is linked).
  const c = d('lib/chain');
  await gccAll([lib(d('lib/chain/libchain_c.so'), 'chain_c_fn'), lib(d('lib/pre/libpredep.so'), 'predep_fn'), lib(d('lib/deep/libdeep3.so'), 'deep3_fn'), lib(d('lib/plug/libplug.so'), 'plug_fn')]);
  await gccAll([
    lib(d('lib/chain/libchain_b.so'), 'chain_b_fn', { name: 'chain_c', dir: c }),
    lib(d('lib/pre/libpre.so'), 'pre_fn', { name: 'predep', dir: d('lib/pre') }),
    lib(d('lib/deep/libdeep2.so'), 'deep2_fn', { name: 'deep3', dir: d('lib/deep') }),
  ]);
  await gccAll([
    lib(d('lib/chain/libchain_a.so'), 'chain_a_fn', { name: 'chain_b', dir: c }),
    lib(d('lib/deep/libdeep1.so'), 'deep1_fn', { name: 'deep2', dir: d('lib/deep') }),
  ]);
  const many = Array.from({ length: MANY_LIBS }, (_, i) => `many${String(i).padStart(2, '0')}`);
  if (want('needed-42-libs')) await gccAll(many.map((m) => lib(d('lib/many', `lib${m}.so`), `${m}_fn`)));
  fs.rmSync(d('links/libplug-link.so'), { force: true });
  fs.symlinkSync('../lib/plug/libplug.so', d('links/libplug-link.so'));

  // Programs.
  const prog = (out: string, extra: string[]): string[] => ['-O1', '-o', out, src('plain.c'), ...extra];
  const progJobs: string[][] = [
    prog(d('bin/plain'), []),
    prog(d('bin/chain'), ['-DENTRY=chain_a_fn', `-L${c}`, '-Wl,--no-as-needed', '-lchain_a', `-Wl,-rpath,${c}`]),
    ['-O1', '-pthread', '-o', d('bin/dlopener'), src('dlopener.c'), '-ldl'],
    ['-O1', '-o', d('bin/nsrun'), src('nsrun.c')],
  ];
  if (want('needed-42-libs')) progJobs.push(prog(d('bin/many'), [`-L${d('lib/many')}`, '-Wl,--no-as-needed', ...many.map((m) => `-l${m}`), `-Wl,-rpath,${d('lib/many')}`]));
  await gccAll(progJobs);

  const interpreter = programInterpreter(d('bin/plain')) ?? '/lib64/ld-linux-x86-64.so.2';
  const libc = '/lib/x86_64-linux-gnu/libc.so.6';
  const plug = d('lib/plug/libplug.so');
  const truthEnv = (truthFile: string, more: Record<string, string> = {}): Record<string, string> => ({ SOLOAD_TRUTH_FILE: truthFile, ...more });
  const dl = d('bin/dlopener');
  const dlopenScenario = (name: string, description: string, args: string[], extra: Partial<Scenario> & { env?: Record<string, string>; cwd?: string } = {}): Scenario => ({
    name,
    description,
    runs: repeat,
    executable: dl,
    spec: (_i, truthFile) => ({ file: dl, args, env: truthEnv(truthFile, extra.env ?? {}), cwd: extra.cwd }),
    mustContain: [dl, interpreter, libc, ...(extra.dlopen ?? [])],
    ...extra,
  });

  const scenarios: Scenario[] = [
    {
      name: 'needed-chain',
      description: 'DT_NEEDED with transitive deps: program NEEDS liba NEEDS libb NEEDS libc_t',
      runs: repeat,
      executable: d('bin/chain'),
      spec: (_i, t) => ({ file: d('bin/chain'), args: [], env: truthEnv(t) }),
      mustContain: [d('bin/chain'), interpreter, libc, ...['a', 'b', 'c'].map((x) => d(`lib/chain/libchain_${x}.so`))],
    },
    {
      name: 'needed-42-libs',
      description: `${MANY_LIBS} DT_NEEDED libraries`,
      runs: repeat,
      executable: d('bin/many'),
      spec: (_i, t) => ({ file: d('bin/many'), args: [], env: truthEnv(t) }),
      mustContain: [d('bin/many'), interpreter, libc, ...many.map((m) => d('lib/many', `lib${m}.so`))],
    },
    {
      name: 'ld-preload',
      description: 'LD_PRELOAD of a library that NEEDS another',
      runs: repeat,
      executable: d('bin/plain'),
      preload: [d('lib/pre/libpre.so')],
      spec: (_i, t) => ({ file: d('bin/plain'), args: [], env: truthEnv(t, { LD_PRELOAD: d('lib/pre/libpre.so') }) }),
      mustContain: [d('bin/plain'), interpreter, libc, d('lib/pre/libpre.so'), d('lib/pre/libpredep.so')],
    },
    {
      name: 'etc-ld-so-preload',
      description: '/etc/ld.so.preload (private mount namespace + overlay; host /etc untouched) of a library that NEEDS another',
      runs: repeat,
      executable: d('bin/plain'),
      preload: [d('lib/pre/libpre.so')],
      spec: (i, t) => {
        const scratch = d('ns', `s${i}`);
        fs.mkdirSync(scratch, { recursive: true });
        fs.writeFileSync(d('ns', 'list'), `${d('lib/pre/libpre.so')}\n`);
        return { file: d('bin/nsrun'), args: [scratch, d('ns', 'list'), d('bin/plain')], env: truthEnv(t), pidFromStdout: true };
      },
      mustContain: [d('bin/plain'), interpreter, libc, d('lib/pre/libpre.so'), d('lib/pre/libpredep.so')],
    },
    dlopenScenario('dlopen-absolute', 'dlopen by absolute path', [plug], { dlopen: [plug] }),
    dlopenScenario('dlopen-bare-name', 'dlopen by bare name via LD_LIBRARY_PATH', ['libplug.so'], { dlopen: [plug], env: { LD_LIBRARY_PATH: d('lib/plug') } }),
    dlopenScenario('dlopen-symlink', 'dlopen via a symlink', [d('links/libplug-link.so')], { dlopen: [plug] }),
    dlopenScenario('dlopen-relative', 'dlopen by relative path (cwd set)', ['./lib/plug/libplug.so'], { dlopen: [plug], cwd: dir }),
    dlopenScenario('dlopen-with-deps', 'dlopen of a library with two levels of DT_NEEDED', [d('lib/deep/libdeep1.so')], {
      dlopen: [d('lib/deep/libdeep1.so')],
      mustContain: [dl, interpreter, libc, ...[1, 2, 3].map((n) => d(`lib/deep/libdeep${n}.so`))],
    }),
    dlopenScenario('dlopen-thread', 'dlopen from a second thread', ['--thread', plug], { dlopen: [plug] }),
    dlopenScenario('dlopen-missing', 'dlopen of a missing file (no object expected)', [d('lib/plug/libdoes-not-exist.so')], { failedDlopens: 1 }),
    dlopenScenario('dlopen-same-twice', 'the same library twice (absolute path twice, then via a symlink)', [plug, plug, d('links/libplug-link.so')], { dlopen: [plug] }),
    {
      name: 'short-lived-500',
      description: `${opts.shortLivedRuns ?? SHORT_LIVED_RUNS} runs of a program that exits immediately`,
      runs: opts.shortLivedRuns ?? SHORT_LIVED_RUNS,
      concurrency: 4,
      executable: d('bin/plain'),
      spec: (_i, t) => ({ file: d('bin/plain'), args: [], env: truthEnv(t) }),
      mustContain: [d('bin/plain'), interpreter, libc],
    },
  ];
  const skipped: Corpus['skipped'] = [];
  const python = resolvePython();
  if (python) {
    scenarios.push({
      name: 'python-ctypes',
      description: `Python ctypes.CDLL of a test library (${python}; extension modules count as dlopen)`,
      runs: repeat,
      executable: python,
      dlopen: [plug],
      spec: (_i, t) => ({ file: python, args: [src('ctypes_load.py'), plug], env: truthEnv(t, { SOLOAD_CTYPES_FN: 'plug_fn' }) }),
      mustContain: [python, interpreter, libc, plug],
    });
  } else {
    skipped.push({ name: 'python-ctypes', reason: 'python3 not on PATH' });
  }
  if (want('etc-ld-so-preload')) {
    // Probe the private-namespace launcher once (needs root, unshare and overlayfs); skip if it cannot.
    fs.mkdirSync(d('ns', 'probe'), { recursive: true });
    fs.writeFileSync(d('ns', 'list'), `${d('lib/pre/libpre.so')}\n`);
    const r = spawnSync(d('bin/nsrun'), [d('ns', 'probe'), d('ns', 'list'), d('bin/plain')], { encoding: 'utf8' });
    if (r.status !== 0) {
      skipped.push({ name: 'etc-ld-so-preload', reason: `private mount namespace + overlay unavailable: ${(r.stderr || String(r.error)).trim()}` });
      scenarios.splice(scenarios.findIndex((s) => s.name === 'etc-ld-so-preload'), 1);
    }
  }
  const unknown = (opts.only ?? []).filter((n) => !scenarios.some((s) => s.name === n) && !skipped.some((s) => s.name === n) && n !== 'python-ctypes');
  if (unknown.length) throw new Error(`unknown scenario(s) ${unknown.join(', ')}; known: ${scenarios.map((s) => s.name).join(', ')}, python-ctypes`);
  const chosen = scenarios.filter((s) => want(s.name));
  return { dir, scenarios: chosen, skipped, interpreter };
}

/** Starts one run; resolves when it has exited. */
export function runOnce(s: Scenario, index: number, truthDir: string): Promise<Run> {
  const truthFile = path.join(truthDir, `${s.name}.${index}.txt`);
  const spec = s.spec(index, truthFile);
  return new Promise((resolve, reject) => {
    const startMs = Date.now();
    const t0 = process.hrtime.bigint();
    const child = spawn(spec.file, spec.args, {
      cwd: spec.cwd,
      env: { ...process.env, ...spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    let wallMs = 0;
    // wall time spawn → exit (the 'exit' event); the run is done once its stdio closed too
    child.on('exit', () => (wallMs = Number(process.hrtime.bigint() - t0) / 1e6));
    child.on('close', (code, signal) => {
      if (!wallMs) wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
      const pid = spec.pidFromStdout ? Number(/^pid (\d+)$/m.exec(stdout)?.[1] ?? -1) : child.pid ?? -1;
      resolve({ scenario: s.name, index, pid, truthFile, startMs, endMs: Date.now(), wallMs, status: code ?? (signal ? 128 : null), stdout, stderr });
    });
  });
}

/** Runs every run of a scenario (`concurrency` at a time). */
export async function runScenario(s: Scenario, truthDir: string): Promise<Run[]> {
  const runs: Run[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < s.runs) {
      const i = next++;
      runs.push(await runOnce(s, i, truthDir));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, s.concurrency ?? 1) }, worker));
  return runs.sort((a, b) => a.index - b.index);
}

export function readTruthFile(file: string): TruthEntry[] {
  return parseTruth(fs.readFileSync(file, 'utf8'));
}

/**
 * Identity of a path: "dev:ino" of the file it names (following symlinks), else "path:<realpath or
 * normalised absolute path>" (a deleted file, or a path that is not absolute: the latter never
 * matches a /proc/<pid>/maps path, on purpose). Cached.
 */
export function makeKeyOf(): (p: string) => string {
  const cache = new Map<string, string>();
  return (p: string): string => {
    const hit = cache.get(p);
    if (hit) return hit;
    let key: string;
    if (!path.isAbsolute(p)) key = `unresolved:${p}`;
    else {
      const clean = p.replace(/ \(deleted\)$/, '');
      try {
        const st = fs.statSync(clean, { bigint: true });
        key = `${st.dev}:${st.ino}`;
      } catch {
        let real = path.normalize(clean);
        try {
          real = fs.realpathSync(clean);
        } catch {
          /* keep the normalised path */
        }
        key = `path:${real}`;
      }
    }
    cache.set(p, key);
    return key;
  };
}

/** Expectations of a scenario, as identity keys. */
export function expectationsFor(s: Scenario, interpreter: string, keyOf: (p: string) => string): RunExpectations {
  const keys = (ps: string[] | undefined): Set<string> => new Set((ps ?? []).map(keyOf));
  return {
    executable: keys([s.executable]),
    interpreter: keys([interpreter]),
    preload: keys(s.preload),
    dlopen: keys(s.dlopen),
  };
}
