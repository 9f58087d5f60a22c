/**
 * The recall corpus: builds the C programs and libraries in test/recall/scenarios into a work dir,
 * describes each scenario (what to run, how often, which objects are the executable, preloaded or
 * dlopened) and runs them, recording each run's pid, wall time and truth file.
 *
 * Expectations are exact paths, the strings the kernel prints in /proc/<pid>/maps (the harness
 * compares soload's file.path with them by string equality): canonical paths (fs.realpathSync at
 * build time) for files the host sees, and paths written out by hand where only the process sees
 * them (a memfd, a bind mount in a private mount namespace, a chroot, a file unlinked while mapped).
 *
 * Environments (CorpusEnv): the corpus is built and run
 *   host  with the host's gcc, run directly (the default, and the only one before the others existed);
 *   musl  with musl-gcc on the host, run directly (interpreter = libc = /usr/lib/x86_64-linux-musl/libc.so);
 *   root  inside a foreign root file system (scripts/make-roots.sh's Debian roots, or any root with
 *         gcc and libc6-dev): the sources are copied to <root>/opt/soload-recall/<id>/src and
 *         compiled there by the root's own gcc against the root's glibc, and every run goes through
 *         test/helpers/roots.ts's inRoot (private mount namespace, /proc inside, chroot) and the
 *         static in-root launcher forkexec (scenarios/forkexec.c: the run's pid then carries only
 *         the program's loads, not the host's unshare/chroot). Every path a program sees and prints
 *         is an in-root path; expectations are resolved inside the root (realpathIn), and each
 *         object's soload.host_path, when soload sends one, must be <root><file.path>.
 * Scenarios an environment cannot run are in Corpus.skipped with the reason. The non-host
 * environments start with `first-process`: one run of the plain program, the first process of the
 * environment after soload started (soload has never seen that loader).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { MEMFD_PREFIX, parseTruth, type RunExpectations, type TruthEntry } from './evaluate';
import { cleanHostEnv, inRoot, realpathIn, runInRoot } from '../helpers/roots';

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
  /** The program's interpreter, when it is not the corpus' (a path printed from outside a chroot). */
  interpreter?: string;
  preload?: string[];
  dlopen?: string[];
  /**
   * Paths every run's truth must contain besides the executable, interpreter, preload and dlopen
   * paths (which it must contain anyway): checks the corpus itself, not soload.
   */
  mustContain?: string[];
  /** Failed dlopen() calls each run makes (a record with soload.result=failed is expected). */
  failedDlopens?: number;
  /** Host path of an object whose file.path is in another root (chroot), by file.path. */
  hostPath?: Record<string, string>;
  /** Every other object's file.path is in this root (host path = hostRoot + file.path; memfds have none). */
  hostRoot?: string;
  /** Measured and printed, but not in the totals and not judged by the bars (a known race). */
  informational?: boolean;
}

export interface Run {
  scenario: string;
  index: number;
  pid: number;
  /** Host path of the truth file. */
  truthFile: string;
  startMs: number;
  endMs: number;
  wallMs: number;
  status: number | null;
  stdout: string;
  stderr: string;
}

export type EnvKind = 'host' | 'musl' | 'root';

/** Where the corpus is built and run. */
export interface CorpusEnv {
  kind: EnvKind;
  /** host, musl, or the root's name (bullseye, trixie, a directory's basename). */
  name: string;
  /** kind root: canonical host path of the root. */
  root?: string;
}

export const HOST_ENV: CorpusEnv = { kind: 'host', name: 'host' };

/**
 * How runs are started and where their truth goes: the truth dir as the programs see it (`view`)
 * and on the host, and the wrapper that turns a scenario's RunSpec (in the programs' view) into
 * what the harness spawns.
 */
export interface Launcher {
  truthView: string;
  truthHost: string;
  wrap(spec: RunSpec): RunSpec;
}

export interface Corpus {
  /** The corpus dir as the programs see it (for host and musl, the host path). */
  dir: string;
  /** The corpus dir on the host. */
  hostDir: string;
  env: CorpusEnv;
  scenarios: Scenario[];
  /** Scenarios that could not be set up in this environment, with the reason. */
  skipped: Array<{ name: string; reason: string }>;
  /** ld.so's canonical path (what maps prints for it). */
  interpreter: string;
  /** libc's canonical path (musl: the interpreter itself). */
  libc: string;
  /** Starts runs (absent: host paths, spawned as they are). */
  launcher?: Launcher;
  /** One line about the environment (root: its Debian and glibc versions, gcc). */
  about: string;
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

/** A compiler command line for `args`: what to spawn. */
type Cc = (args: string[]) => { file: string; args: string[]; env?: NodeJS.ProcessEnv };

const hostGcc: Cc = (args) => ({ file: 'gcc', args });

/** Runs compiler jobs `parallel` at a time. */
async function gccAll(jobs: string[][], cc: Cc = hostGcc, parallel = 2): Promise<void> {
  const queue = [...jobs];
  const worker = async (): Promise<void> => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      const cmd = cc(job);
      await new Promise<void>((resolve, reject) => {
        const c = spawn(cmd.file, cmd.args, { stdio: ['ignore', 'ignore', 'pipe'], env: cmd.env });
        let err = '';
        c.stderr.on('data', (d: Buffer) => (err += d.toString()));
        c.on('error', reject);
        c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd.file} ${cmd.args.join(' ')} failed (${code}):\n${err}`))));
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

/** soname → path lines of ldd's output ("libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)"). */
export function parseLdd(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const l of out.split('\n')) {
    const hit = /^\s*(\S+) => (\/\S+)/.exec(l);
    if (hit && !m.has(hit[1])) m.set(hit[1], hit[2]);
  }
  return m;
}

/** Where the loader finds `soname` for `program` (ldd), canonical; undefined if it does not. */
export function resolvedNeeded(program: string, soname: string): string | undefined {
  const hit = parseLdd(spawnSync('ldd', [program], { encoding: 'utf8' }).stdout ?? '').get(soname);
  return hit ? fs.realpathSync(hit) : undefined;
}

/** The Debian multiarch tuple (x86_64-linux-gnu), from gcc. */
function multiarch(out?: string): string {
  const t = (out ?? (spawnSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).stdout || '')).trim();
  if (!t) throw new Error('gcc -print-multiarch printed nothing: the corpus assumes a Debian-style multiarch layout');
  return t;
}

export const MANY_LIBS = 42;
export const SHORT_LIVED_RUNS = 500;
/** Where a root's corpora go (one subdirectory per harness run). */
export const ROOT_CORPUS_PARENT = '/opt/soload-recall';
export const FIRST_PROCESS = 'first-process';

export interface BuildOptions {
  /** Runs of each scenario except short-lived (default 3). */
  repeat?: number;
  /** Runs of the short-lived scenario (default 500). */
  shortLivedRuns?: number;
  /** Only build/describe these scenarios (default: all; a non-host environment's first-process always runs). */
  only?: string[];
  /** Where to build and run (default: the host). */
  env?: CorpusEnv;
  /**
   * The binaries are already in the dir (compiled earlier by the same gcc on the same userspace,
   * e.g. on the host before a QEMU guest booted with a copy of it): describe the corpus, compile
   * nothing (the guest has no gcc). Host environment only.
   */
  prebuilt?: boolean;
}

/** Scenarios that cannot run in an environment, with the reason (pure: unit-tested). */
export function envSkips(env: CorpusEnv): Array<{ name: string; reason: string }> {
  if (env.kind === 'musl') {
    return [
      { name: 'etc-ld-so-preload', reason: "musl's loader does not read /etc/ld.so.preload (LD_PRELOAD only)" },
      { name: 'python-ctypes', reason: 'python3 is linked against glibc: nothing of it runs under musl' },
    ];
  }
  if (env.kind === 'root') return [{ name: 'python-ctypes', reason: `no python3 in the ${env.name} root (minbase), and the host's is linked against the host's glibc` }];
  return [];
}

/**
 * Compiles the corpus into `dir` and returns the scenario list. Libraries (under the canonical
 * `dir`):
 *   lib/chain/libchain_{a,b,c}.so   a NEEDS b NEEDS c (RUNPATH $ORIGIN)
 *   lib/many/libmany00..41.so       42 independent libraries
 *   lib/pre/libpre.so               a preload library that NEEDS libpredep.so
 *   lib/plug/libplug.so             a dlopen target; links/libplug-link.so -> ../lib/plug/libplug.so,
 *                                   linkdir -> lib/plug (a symlinked directory)
 *   lib/deep/libdeep{1,2,3}.so      dlopen target with two levels of DT_NEEDED
 *   lib/ver/libver.so.1.2.3         SONAME libver.so.1; libver.so -> libver.so.1 -> libver.so.1.2.3
 *   usrmerge/usr/lib/libalias.so    usrmerge/lib -> usr/lib, like merged /usr's /lib -> usr/lib
 *   app/lib/lib{A,B}.so             A NEEDS B; app/bin/runpath NEEDS A via RUNPATH $ORIGIN/../lib
 *   chroot/                         a root file system: usr/lib/<multiarch>/{ld.so, libc, libtest.so},
 *                                   lib -> usr/lib, lib64 -> usr/lib64 (usr/lib64/ld.so -> ../lib/...)
 * For env root, `dirArg` only names the corpus: it is built in <root>/opt/soload-recall/<basename>.
 */
export async function buildCorpus(dirArg: string, opts: BuildOptions = {}): Promise<Corpus> {
  const root = opts.env?.kind === 'root' ? opts.env.root : undefined;
  try {
    return await build(dirArg, opts);
  } catch (err) {
    // a root is a cache shared by every run: leave no half-built corpus in it
    if (root) fs.rmSync(path.join(root, ROOT_CORPUS_PARENT, path.basename(dirArg)), { recursive: true, force: true });
    throw err;
  }
}

async function build(dirArg: string, opts: BuildOptions): Promise<Corpus> {
  const repeat = opts.repeat ?? 3;
  const env = opts.env ?? HOST_ENV;
  const root = env.kind === 'root' ? env.root : undefined;
  if (env.kind === 'root' && !root) throw new Error(`environment ${env.name}: no root directory`);
  // dir: the corpus as the programs see it; h(): a view path's host path (identity but in a root).
  // Every expected path is built from the canonical dir (a symlinked TMPDIR would otherwise make
  // every expectation differ from what the kernel prints).
  const dir = root ? path.posix.join(ROOT_CORPUS_PARENT, path.basename(dirArg)) : fs.realpathSync(dirArg);
  const h = (p: string): string => (root ? path.join(root, p) : p);
  if (root) {
    fs.rmSync(h(dir), { recursive: true, force: true });
    fs.mkdirSync(h(dir), { recursive: true });
  }
  const d = (...p: string[]): string => path.join(dir, ...p);
  // the environment's compiler, canonical path resolution and ldd
  if (opts.prebuilt && env.kind !== 'host') throw new Error('a prebuilt corpus is for the host environment only');
  const cc: Cc = env.kind === 'musl' ? (args) => ({ file: 'musl-gcc', args }) : root ? (args) => ({ ...inRoot(root, ['gcc', ...args]), env: cleanHostEnv() }) : hostGcc;
  const realpath = (p: string): string => (root ? realpathIn(root, p) : fs.realpathSync(p));
  const compile = (jobs: string[][], with_: Cc): Promise<void> => (opts.prebuilt ? Promise.resolve() : gccAll(jobs, with_));
  const lddOf = (prog: string): Map<string, string> =>
    env.kind === 'musl' ? new Map() : root ? parseLdd(runInRoot(root, ['ldd', prog])) : parseLdd(spawnSync('ldd', [prog], { encoding: 'utf8' }).stdout ?? '');
  // prebuilt: the multiarch directory the compiling host made under chroot/usr/lib (no gcc here)
  const prebuiltArch = opts.prebuilt ? fs.readdirSync(path.join(dir, 'chroot/usr/lib')).find((n) => n.includes('-linux-')) : undefined;
  const arch = root ? multiarch(runInRoot(root, ['gcc', '-print-multiarch'])) : multiarch(prebuiltArch);
  // sources: the scenarios dir, or (root) a copy inside the root
  let srcDir = SCENARIO_SRC;
  if (root) {
    srcDir = d('src');
    fs.mkdirSync(h(srcDir), { recursive: true });
    for (const f of fs.readdirSync(SCENARIO_SRC)) if (/\.[ch]$/.test(f)) fs.copyFileSync(path.join(SCENARIO_SRC, f), h(path.join(srcDir, f)));
  }
  const src = (f: string): string => path.join(srcDir, f);
  for (const sub of ['bin', 'lib/chain', 'lib/many', 'lib/pre', 'lib/plug', 'lib/deep', 'lib/ver', 'lib/del', 'links', 'truth', 'ns/bind', 'usrmerge/usr/lib', 'app/bin', 'app/lib', `chroot/usr/lib/${arch}`, 'chroot/usr/lib64']) {
    fs.mkdirSync(h(d(sub)), { recursive: true });
  }
  /** (Re)creates a symlink (`at` in the programs' view). */
  const symlink = (target: string, at: string): void => {
    fs.rmSync(h(at), { force: true });
    fs.symlinkSync(target, h(at));
  };
  const lib = (out: string, fn: string, calls?: { name: string; dir: string }, extra: string[] = []): string[] => [
    '-shared',
    '-fPIC',
    '-O1',
    '-o',
    out,
    `-DFN=${fn}`,
    ...(calls ? [`-DCALLS=${calls.name}_fn`, src('lib.c'), `-L${calls.dir}`, '-Wl,--no-as-needed', `-l${calls.name}`, '-Wl,-rpath,$ORIGIN'] : [src('lib.c')]),
    ...extra,
  ];
  const want = (n: string): boolean => !opts.only || opts.only.includes(n);

  // Libraries, leaves first (a library's dependency must exist before it is linked).
  const c = d('lib/chain');
  const chrootLibDir = d('chroot/usr/lib', arch);
  await compile(
    [
      lib(d('lib/chain/libchain_c.so'), 'chain_c_fn'),
      lib(d('lib/pre/libpredep.so'), 'predep_fn'),
      lib(d('lib/deep/libdeep3.so'), 'deep3_fn'),
      lib(d('lib/plug/libplug.so'), 'plug_fn'),
      lib(d('lib/ver/libver.so.1.2.3'), 'ver_fn', undefined, ['-Wl,-soname,libver.so.1']),
      lib(d('usrmerge/usr/lib/libalias.so'), 'alias_fn'),
      lib(d('app/lib/libB.so'), 'B_fn'),
      lib(path.join(chrootLibDir, 'libtest.so'), 'test_fn'),
    ],
    cc,
  );
  await compile(
    [
      lib(d('lib/chain/libchain_b.so'), 'chain_b_fn', { name: 'chain_c', dir: c }),
      lib(d('lib/pre/libpre.so'), 'pre_fn', { name: 'predep', dir: d('lib/pre') }),
      lib(d('lib/deep/libdeep2.so'), 'deep2_fn', { name: 'deep3', dir: d('lib/deep') }),
      lib(d('app/lib/libA.so'), 'A_fn', { name: 'B', dir: d('app/lib') }),
    ],
    cc,
  );
  await compile(
    [lib(d('lib/chain/libchain_a.so'), 'chain_a_fn', { name: 'chain_b', dir: c }), lib(d('lib/deep/libdeep1.so'), 'deep1_fn', { name: 'deep2', dir: d('lib/deep') })],
    cc,
  );
  const many = Array.from({ length: MANY_LIBS }, (_, i) => `many${String(i).padStart(2, '0')}`);
  if (want('needed-42-libs')) await compile(many.map((m) => lib(d('lib/many', `lib${m}.so`), `${m}_fn`)), cc);
  symlink('../lib/plug/libplug.so', d('links/libplug-link.so'));
  symlink('lib/plug', d('linkdir'));
  symlink('libver.so.1.2.3', d('lib/ver/libver.so.1'));
  symlink('libver.so.1', d('lib/ver/libver.so'));
  symlink('usr/lib', d('usrmerge/lib'));

  // Programs.
  const prog = (out: string, extra: string[]): string[] => ['-O1', '-o', out, src('plain.c'), ...extra];
  const progJobs: string[][] = [
    prog(d('bin/plain'), []),
    prog(d('bin/chain'), ['-DENTRY=chain_a_fn', `-L${c}`, '-Wl,--no-as-needed', '-lchain_a', `-Wl,-rpath,${c}`]),
    // links against the link name libver.so; DT_NEEDED becomes its SONAME libver.so.1
    prog(d('bin/ver'), ['-DENTRY=ver_fn', `-L${d('lib/ver')}`, '-Wl,--no-as-needed', '-lver', `-Wl,-rpath,${d('lib/ver')}`]),
    // DT_RUNPATH (not DT_RPATH) $ORIGIN/../lib: the loader's name for libA is <dir>/app/bin/../lib/libA.so
    prog(d('app/bin/runpath'), ['-DENTRY=A_fn', `-L${d('app/lib')}`, '-Wl,--no-as-needed', '-lA', '-Wl,--enable-new-dtags', '-Wl,-rpath,$ORIGIN/../lib']),
    ['-O1', '-pthread', '-o', d('bin/dlopener'), src('dlopener.c'), '-ldl'],
    ['-O1', '-o', d('bin/memfd_dlopen'), src('memfd_dlopen.c'), '-ldl'],
    ['-O1', '-o', d('bin/chroot_dlopen'), src('chroot_dlopen.c'), '-ldl'],
    ['-O1', '-o', d('bin/nsrun'), src('nsrun.c')],
    ['-O1', '-o', d('bin/nsbind'), src('nsbind.c')],
  ];
  if (want('needed-42-libs')) progJobs.push(prog(d('bin/many'), [`-L${d('lib/many')}`, '-Wl,--no-as-needed', ...many.map((m) => `-l${m}`), `-Wl,-rpath,${d('lib/many')}`]));
  // the in-root launcher, static (it maps no ld.so: the root's loader first runs in a scenario's program)
  if (root) progJobs.push(['-O1', '-static', '-o', d('bin/forkexec'), src('forkexec.c')]);
  await compile(progJobs, cc);

  // The two objects every program maps, as the kernel prints them (canonical: on merged /usr,
  // PT_INTERP /lib64/ld-linux-x86-64.so.2 is /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2; in a
  // root, resolved inside the root: bullseye's /lib64/ld-linux-x86-64.so.2 is an absolute symlink
  // to /lib/x86_64-linux-gnu/ld-2.31.so, which only means something there). musl: the loader is
  // libc (/lib/ld-musl-x86_64.so.1 -> /usr/lib/x86_64-linux-musl/libc.so), mapped once.
  const pt = programInterpreter(h(d('bin/plain')));
  const interpreter = realpath(pt ?? '/lib64/ld-linux-x86-64.so.2');
  let libc: string | undefined;
  if (env.kind === 'musl') libc = interpreter;
  else {
    const hit = lddOf(d('bin/plain')).get('libc.so.6');
    libc = hit ? realpath(hit) : undefined;
  }
  if (!libc) throw new Error(`ldd ${d('bin/plain')} shows no libc.so.6`);
  const plug = d('lib/plug/libplug.so');
  const truthEnv = (truthFile: string, more: Record<string, string> = {}): Record<string, string> => ({ SOLOAD_TRUTH_FILE: truthFile, ...more });
  const dl = d('bin/dlopener');
  const dlopenScenario = (name: string, description: string, args: string[], extra: Partial<Scenario> & { env?: Record<string, string>; cwd?: string } = {}): Scenario => ({
    name,
    description,
    runs: repeat,
    executable: dl,
    spec: (_i, truthFile) => ({ file: dl, args, env: truthEnv(truthFile, extra.env ?? {}), cwd: extra.cwd }),
    mustContain: [libc],
    ...extra,
  });

  // merged-/usr alias: a library of the environment (a musl program cannot load the host's glibc
  // libraries: none) the dlopener does not already map, named through /lib; and a test tree's alias.
  const aliasCandidates = env.kind === 'musl' ? [] : ['libz.so.1', 'libm.so.6', 'libgcc_s.so.1', 'libcrypt.so.1'];
  const dlNeeded = aliasCandidates.length ? lddOf(dl) : new Map<string, string>();
  const hostAlias = aliasCandidates.map((n) => `/lib/${arch}/${n}`).find((p) => fs.existsSync(h(p)) && !dlNeeded.has(path.basename(p)));
  const aliasArgs = [...(hostAlias ? [hostAlias] : []), d('usrmerge/lib/libalias.so')];
  const noAlias = env.kind === 'musl' ? "no musl library to alias (the host's are glibc's)" : 'no spare host library found';

  // The chroot's root file system: copies of ld.so and libc (a real layout, so the chroot is
  // self-contained), the test library (built there above), and merged-/usr symlinks.
  const chroot = d('chroot');
  fs.copyFileSync(h(interpreter), h(path.join(chrootLibDir, path.basename(interpreter))));
  fs.copyFileSync(h(libc), h(path.join(chrootLibDir, path.basename(libc))));
  symlink(`../lib/${arch}/${path.basename(interpreter)}`, d('chroot/usr/lib64', path.basename(interpreter)));
  symlink('usr/lib', d('chroot/lib'));
  symlink('usr/lib64', d('chroot/lib64'));
  const inChroot = `/usr/lib/${arch}/libtest.so`;

  // A bind mount in a private mount namespace: <ns/bind>/bound is lib/plug, <ns/bind>/link -> bound
  // (on a tmpfs only that namespace sees; on the host <ns/bind> stays an empty directory).
  const bindScratch = d('ns/bind');
  const bound = path.join(bindScratch, 'bound/libplug.so');
  const bindScenario = (name: string, lingerMs: number, extra: Partial<Scenario>): Scenario => ({
    name,
    description: '',
    runs: repeat,
    executable: dl,
    dlopen: [bound],
    mustContain: [libc],
    // in a root, the file behind the bind mount is the root's lib/plug/libplug.so
    ...(root ? { hostPath: { [bound]: h(plug) } } : {}),
    spec: (_i, t) => ({ file: d('bin/nsbind'), args: [String(lingerMs), bindScratch, d('lib/plug'), dl, path.join(bindScratch, 'link/libplug.so')], env: truthEnv(t), pidFromStdout: true }),
    ...extra,
  });

  const deleted = d('lib/del/libdeleted.so');
  const scenarios: Scenario[] = [
    {
      name: 'needed-chain',
      description: 'DT_NEEDED with transitive deps: program NEEDS liba NEEDS libb NEEDS libc_t',
      runs: repeat,
      executable: d('bin/chain'),
      spec: (_i, t) => ({ file: d('bin/chain'), args: [], env: truthEnv(t) }),
      mustContain: [libc, ...['a', 'b', 'c'].map((x) => d(`lib/chain/libchain_${x}.so`))],
    },
    {
      name: 'needed-42-libs',
      description: `${MANY_LIBS} DT_NEEDED libraries`,
      runs: repeat,
      executable: d('bin/many'),
      spec: (_i, t) => ({ file: d('bin/many'), args: [], env: truthEnv(t) }),
      mustContain: [libc, ...many.map((m) => d('lib/many', `lib${m}.so`))],
    },
    {
      name: 'soname-symlink-chain',
      description: 'DT_NEEDED libver.so.1 (linked as -lver: libver.so -> libver.so.1 -> libver.so.1.2.3); maps shows libver.so.1.2.3',
      runs: repeat,
      executable: d('bin/ver'),
      spec: (_i, t) => ({ file: d('bin/ver'), args: [], env: truthEnv(t) }),
      mustContain: [libc, d('lib/ver/libver.so.1.2.3')],
    },
    {
      name: 'runpath-origin',
      description: 'DT_RUNPATH $ORIGIN/../lib: app/bin/runpath NEEDS app/lib/libA.so NEEDS libB.so (loader names contain "bin/../lib")',
      runs: repeat,
      executable: d('app/bin/runpath'),
      spec: (_i, t) => ({ file: d('app/bin/runpath'), args: [], env: truthEnv(t) }),
      mustContain: [libc, d('app/lib/libA.so'), d('app/lib/libB.so')],
    },
    {
      name: 'ld-preload',
      description: 'LD_PRELOAD of a library that NEEDS another',
      runs: repeat,
      executable: d('bin/plain'),
      preload: [d('lib/pre/libpre.so')],
      spec: (_i, t) => ({ file: d('bin/plain'), args: [], env: truthEnv(t, { LD_PRELOAD: d('lib/pre/libpre.so') }) }),
      mustContain: [libc, d('lib/pre/libpredep.so')],
    },
    {
      name: 'etc-ld-so-preload',
      description: '/etc/ld.so.preload (private mount namespace + overlay; host /etc untouched) of a library that NEEDS another',
      runs: repeat,
      executable: d('bin/plain'),
      preload: [d('lib/pre/libpre.so')],
      spec: (i, t) => {
        const scratch = d('ns', `s${i}`);
        fs.mkdirSync(h(scratch), { recursive: true });
        fs.writeFileSync(h(d('ns', 'list')), `${d('lib/pre/libpre.so')}\n`);
        return { file: d('bin/nsrun'), args: [scratch, d('ns', 'list'), d('bin/plain')], env: truthEnv(t), pidFromStdout: true };
      },
      mustContain: [libc, d('lib/pre/libpredep.so')],
    },
    dlopenScenario('dlopen-absolute', 'dlopen by absolute path', [plug], { dlopen: [plug] }),
    dlopenScenario('dlopen-bare-name', 'dlopen by bare name via LD_LIBRARY_PATH', ['libplug.so'], { dlopen: [plug], env: { LD_LIBRARY_PATH: d('lib/plug') } }),
    dlopenScenario('dlopen-symlink', 'dlopen via a symlink', [d('links/libplug-link.so')], { dlopen: [plug] }),
    dlopenScenario('dlopen-symlinked-dir', 'dlopen via a symlinked directory (linkdir -> lib/plug)', [d('linkdir/libplug.so')], { dlopen: [plug] }),
    dlopenScenario('dlopen-relative', 'dlopen by relative path (cwd set)', ['./lib/plug/libplug.so'], { dlopen: [plug], cwd: dir }),
    dlopenScenario('dlopen-unclean-path', 'dlopen of paths with "//" and "/./"', [`${dir}//lib/plug//libplug.so`, `${dir}/lib/./deep/./libdeep3.so`], {
      dlopen: [plug, d('lib/deep/libdeep3.so')],
    }),
    dlopenScenario(
      'usr-merge-alias',
      `dlopen through /lib -> usr/lib (${hostAlias ?? noAlias}) and through a test tree's lib -> usr/lib`,
      aliasArgs,
      { dlopen: aliasArgs.map((p) => realpath(p)) },
    ),
    dlopenScenario('dlopen-with-deps', 'dlopen of a library with two levels of DT_NEEDED', [d('lib/deep/libdeep1.so')], {
      dlopen: [d('lib/deep/libdeep1.so')],
      mustContain: [libc, ...[2, 3].map((n) => d(`lib/deep/libdeep${n}.so`))],
    }),
    dlopenScenario('dlopen-thread', 'dlopen from a second thread', ['--thread', plug], { dlopen: [plug] }),
    dlopenScenario('dlopen-missing', 'dlopen of a missing file (no object expected)', [d('lib/plug/libdoes-not-exist.so')], { failedDlopens: 1 }),
    dlopenScenario('dlopen-same-twice', 'the same library twice (absolute path twice, then via a symlink)', [plug, plug, d('links/libplug-link.so')], { dlopen: [plug] }),
    {
      name: 'dlopen-deleted',
      description: 'dlopen of a fresh copy of libplug.so, unlinked while mapped (maps: " (deleted)")',
      runs: repeat,
      executable: dl,
      dlopen: [deleted],
      mustContain: [libc],
      spec: (_i, t) => {
        // a new file (new inode) per run: the previous run unlinked its copy
        fs.rmSync(h(deleted), { force: true });
        fs.copyFileSync(h(plug), h(deleted));
        return { file: dl, args: ['--unlink', deleted], env: truthEnv(t) };
      },
    },
    {
      name: 'dlopen-memfd',
      description: 'memfd_create("libmemfd.so"), libplug.so copied in, dlopen("/proc/self/fd/N"); maps: "/memfd:libmemfd.so (deleted)"',
      runs: repeat,
      executable: d('bin/memfd_dlopen'),
      dlopen: [`${MEMFD_PREFIX}libmemfd.so`],
      mustContain: [libc],
      spec: (_i, t) => ({ file: d('bin/memfd_dlopen'), args: ['libmemfd.so', plug], env: truthEnv(t) }),
    },
    bindScenario('bind-mount', 300, {
      description: 'dlopen through a bind mount in a private mount namespace whose init lingers 300 ms (like a container)',
    }),
    bindScenario('bind-mount-oneshot', 0, {
      description: 'the same, the namespace gone as soon as the loading process exits (race: informational)',
      informational: true,
    }),
    // In a root, the objects mapped before the inner chroot are outside the process's new root:
    // maps prints them from the mount namespace's root, i.e. with their host paths.
    {
      name: 'chroot',
      description: root
        ? `chroot(${chroot}) inside the ${env.name} root, then dlopen("/lib/${arch}/libtest.so"); exits at once (the program, ld.so and libc print with host paths)`
        : `chroot(${chroot}), then dlopen("/lib/${arch}/libtest.so") inside it; exits at once`,
      runs: repeat,
      executable: h(d('bin/chroot_dlopen')),
      ...(root ? { interpreter: h(interpreter) } : {}),
      dlopen: [inChroot],
      hostPath: { [inChroot]: h(path.join(chroot, inChroot)) },
      mustContain: [h(libc)],
      spec: (_i, t) => ({ file: d('bin/chroot_dlopen'), args: [chroot, `/lib/${arch}/libtest.so`], env: truthEnv(t) }),
    },
    {
      name: 'short-lived-500',
      description: `${opts.shortLivedRuns ?? SHORT_LIVED_RUNS} runs of a program that exits immediately`,
      runs: opts.shortLivedRuns ?? SHORT_LIVED_RUNS,
      concurrency: 4,
      executable: d('bin/plain'),
      spec: (_i, t) => ({ file: d('bin/plain'), args: [], env: truthEnv(t) }),
      mustContain: [libc],
    },
  ];
  if (env.kind !== 'host') {
    scenarios.unshift({
      name: FIRST_PROCESS,
      description: `the first program run in ${env.name} after soload started (soload has never seen this loader before): one run of the plain program`,
      runs: 1,
      executable: d('bin/plain'),
      spec: (_i, t) => ({ file: d('bin/plain'), args: [], env: truthEnv(t) }),
      mustContain: [libc],
    });
  }
  // in a root, every object but the chroot scenario's is in the root: host path = root + file.path
  if (root) for (const s of scenarios) if (s.name !== 'chroot') s.hostRoot = root;
  const skipped: Corpus['skipped'] = [];
  const drop = (names: string[], reason: string): void => {
    for (const name of names) {
      const at = scenarios.findIndex((s) => s.name === name);
      if (at >= 0) scenarios.splice(at, 1);
      skipped.push({ name, reason });
    }
  };
  const python = env.kind === 'host' ? resolvePython() : undefined;
  if (python) {
    scenarios.push({
      name: 'python-ctypes',
      description: `Python ctypes.CDLL of a test library (${python}; extension modules count as dlopen)`,
      runs: repeat,
      executable: python,
      dlopen: [plug],
      spec: (_i, t) => ({ file: python, args: [src('ctypes_load.py'), plug], env: truthEnv(t, { SOLOAD_CTYPES_FN: 'plug_fn' }) }),
      mustContain: [libc],
    });
  } else if (env.kind === 'host') {
    skipped.push({ name: 'python-ctypes', reason: 'python3 not on PATH' });
  }
  for (const s of envSkips(env)) drop([s.name], s.reason);

  const launcher = root ? rootLauncher(root, dir, d('bin/forkexec')) : undefined;
  const wrap = launcher ? launcher.wrap : (s: RunSpec): RunSpec => s;
  // Probe the launchers that need root (unshare, mount, chroot) once; skip what this host cannot do.
  const probe = (file: string, args: string[]): string | undefined => {
    const spec = wrap({ file, args, pidFromStdout: true });
    const r = spawnSync(spec.file, spec.args, { encoding: 'utf8', env: spec.env ? { ...process.env, ...spec.env } : undefined });
    return r.status === 0 ? undefined : (r.stderr || String(r.error ?? `exit ${r.status}`)).trim();
  };
  const has = (n: string): boolean => want(n) && scenarios.some((s) => s.name === n);
  if (has('etc-ld-so-preload')) {
    fs.mkdirSync(h(d('ns', 'probe')), { recursive: true });
    fs.writeFileSync(h(d('ns', 'list')), `${d('lib/pre/libpre.so')}\n`);
    const why = probe(d('bin/nsrun'), [d('ns', 'probe'), d('ns', 'list'), d('bin/plain')]);
    if (why) drop(['etc-ld-so-preload'], `private mount namespace + overlay unavailable: ${why}`);
  }
  if (has('bind-mount') || has('bind-mount-oneshot')) {
    const why = probe(d('bin/nsbind'), ['0', bindScratch, d('lib/plug'), d('bin/plain')]);
    if (why) drop(['bind-mount', 'bind-mount-oneshot'], `private mount namespace + bind mount unavailable: ${why}`);
  }
  if (has('chroot')) {
    const why = probe(d('bin/chroot_dlopen'), [chroot, `/lib/${arch}/libtest.so`]);
    if (why) drop(['chroot'], `chroot unavailable: ${why}`);
  }
  const known = [...scenarios.map((s) => s.name), ...skipped.map((s) => s.name), 'python-ctypes', FIRST_PROCESS];
  const unknown = (opts.only ?? []).filter((n) => !known.includes(n));
  if (unknown.length) throw new Error(`unknown scenario(s) ${unknown.join(', ')}; known: ${scenarios.map((s) => s.name).join(', ')}, python-ctypes`);
  const chosen = scenarios.filter((s) => want(s.name) || s.name === FIRST_PROCESS);
  let about = env.kind === 'host' ? 'the host' : env.kind === 'musl' ? `musl-gcc on the host; interpreter = libc = ${interpreter}` : '';
  if (root) {
    const ver = fs.existsSync(path.join(root, 'etc/debian_version')) ? `Debian ${fs.readFileSync(path.join(root, 'etc/debian_version'), 'utf8').trim()}, ` : '';
    const glibc = /libc-(\d+\.\d+)\.so$/.exec(libc)?.[1] ?? /GLIBC (\d+\.\d+)/.exec(runInRoot(root, ['ldd', '--version']))?.[1] ?? '?';
    about = `root ${root}: ${ver}glibc ${glibc}; interpreter ${interpreter}, libc ${libc}; corpus in ${dir}`;
  }
  return { dir, hostDir: h(dir), env, scenarios: chosen, skipped: skipped.filter((s) => want(s.name)), interpreter, libc, launcher, about };
}

/**
 * Runs inside `root`: through inRoot (private mount namespace, /proc, chroot) and the static
 * forkexec launcher (cwd, variables, fork: the printed pid is the program's, a host pid since no
 * pid namespace is made). A spec that is itself a launcher printing its child's pid (nsrun,
 * nsbind) runs directly under inRoot.
 */
export function rootLauncher(root: string, dir: string, forkexec: string): Launcher {
  return {
    truthView: path.posix.join(dir, 'truth'),
    truthHost: path.join(root, dir, 'truth'),
    wrap: (spec) => {
      if (spec.pidFromStdout) {
        if (spec.cwd) throw new Error(`${spec.file}: a launcher in a root cannot have a cwd`);
        const cmd = inRoot(root, [spec.file, ...spec.args]);
        return { file: cmd.file, args: cmd.args, env: cleanHostEnv(spec.env), pidFromStdout: true };
      }
      const vars = Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`);
      const cmd = inRoot(root, [forkexec, spec.cwd ?? '/', ...vars, spec.file, ...spec.args]);
      return { file: cmd.file, args: cmd.args, env: cleanHostEnv(), pidFromStdout: true };
    },
  };
}

/** Starts one run; resolves when it has exited. */
export function runOnce(s: Scenario, index: number, truthDir: string, launcher?: Launcher): Promise<Run> {
  const name = `${s.name}.${index}.txt`;
  const truthFile = launcher ? path.join(launcher.truthHost, name) : path.join(truthDir, name);
  const viewSpec = s.spec(index, launcher ? path.posix.join(launcher.truthView, name) : truthFile);
  const spec = launcher ? launcher.wrap(viewSpec) : viewSpec;
  return new Promise((resolve, reject) => {
    const startMs = Date.now();
    const t0 = process.hrtime.bigint();
    const child = spawn(spec.file, spec.args, {
      cwd: spec.cwd,
      env: { ...(launcher ? {} : process.env), ...spec.env },
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
export async function runScenario(s: Scenario, truthDir: string, launcher?: Launcher): Promise<Run[]> {
  const runs: Run[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < s.runs) {
      const i = next++;
      runs.push(await runOnce(s, i, truthDir, launcher));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, s.concurrency ?? 1) }, worker));
  return runs.sort((a, b) => a.index - b.index);
}

export function readTruthFile(file: string): TruthEntry[] {
  return parseTruth(fs.readFileSync(file, 'utf8'));
}

/** Expectations of a scenario: the exact paths soload's file.path must equal. */
export function expectationsFor(s: Scenario, interpreter: string): RunExpectations {
  const exp: RunExpectations = {
    executable: new Set([s.executable]),
    interpreter: new Set([s.interpreter ?? interpreter]),
    preload: new Set(s.preload ?? []),
    dlopen: new Set(s.dlopen ?? []),
    hostPath: new Map(Object.entries(s.hostPath ?? {})),
  };
  if (s.hostRoot !== undefined) exp.hostRoot = s.hostRoot;
  return exp;
}
