/**
 * `npm run test:kernels`: the kernel matrix. Boots Debian's cloud kernels under QEMU (TCG: KVM
 * guests hang on this machine) with the host's userspace and the built checkout in an initramfs
 * (test/kernels/image.ts), runs test/kernels/guest.ts in each guest (soload check --json, probe
 * syntaxes, the (fault) and unknown-type demonstrations, the recall corpus's host-glibc rows), runs
 * the same program on the host's own kernel, stores every kernel's results in
 * test/kernels/results/<name>.json and writes KERNELS.md from them (test/kernels/table.ts).
 *
 * Everything it needs is fetched or built by itself: qemu-system-x86 and libc6-dbg (apt-get
 * install when missing), the kernels (scripts/kernels/fetch-kernels.sh: apt-get download through a private apt
 * configuration, cached in .cache/kernels/), the Collector (scripts/build-collector.sh), the corpus
 * (harness.js --build-only) and the puzzle program (gcc).
 *
 * Usage: node dist/test/kernels/run.js [--quick] [--kernels bullseye,bookworm,trixie] [--no-host]
 *          [--timeout-min N] [--no-write] [--no-cost | --cost]
 *   --quick  the CI set: Debian 12's 6.1 only, with a small recall subset and no cost step (--cost
 *            adds it); KERNELS.md is not rewritten
 *   --no-cost  skip the cost step (test/kernels/cost.ts: the bench's quick workloads, soload ÷ nothing)
 * Exit: 0 = every kernel booted, reported, and its host-glibc recall ≥ 99 %; 1 otherwise.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ImageBuilder } from './image';
import { parseResultLines, type GuestPlan } from './guest';
import { COST_WORKLOADS, type CostPlan } from './cost';
import { prepareWorkloads } from '../../bench/workloads';
import { KERNEL_SUITES, MATRIX_META, renderStoredResults, summarize, type KernelResult } from './table';

const REPO = path.resolve(__dirname, '..', '..', '..');
const CACHE = path.join(REPO, '.cache', 'kernels');
const RESULTS = path.join(REPO, 'test', 'kernels', 'results');
const log = (m: string): void => void process.stderr.write(`kernels: ${m}\n`);

interface Options {
  quick: boolean;
  kernels: string[];
  host: boolean;
  timeoutMin: number;
  write: boolean;
  debug?: string;
  noRecall: boolean;
  cost: boolean;
}

export function parseArgs(argv: string[]): Options {
  const o: Options = { quick: false, kernels: [], host: true, timeoutMin: 25, write: true, noRecall: false, cost: true };
  let costFlag: boolean | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') o.quick = true;
    else if (a === '--kernels') o.kernels = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (a === '--no-host') o.host = false;
    else if (a === '--no-write') o.write = false;
    else if (a === '--timeout-min') o.timeoutMin = Number(argv[++i]);
    else if (a === '--debug') {
      // a shell script the guest runs (output: .cache/kernels/<suite>/debug.txt); implies --no-write
      o.debug = fs.readFileSync(argv[++i]!, 'utf8');
      o.write = false;
    } else if (a === '--no-recall') o.noRecall = true;
    else if (a === '--no-cost') costFlag = false;
    else if (a === '--cost') costFlag = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.kernels.length) o.kernels = o.quick ? ['bookworm'] : Object.keys(KERNEL_SUITES);
  for (const k of o.kernels) if (!(k in KERNEL_SUITES)) throw new Error(`unknown kernel ${k}: one of ${Object.keys(KERNEL_SUITES).join(', ')}`);
  if (o.quick) {
    o.host = false;
    o.write = false;
    o.cost = false;
  }
  if (costFlag !== undefined) o.cost = costFlag;
  return o;
}

/** The recall work a guest does: emulation is 10-30x slower, so fewer runs than on the host. */
export function recallPlan(quick: boolean): NonNullable<GuestPlan['recall']> {
  return quick
    ? { only: ['needed-chain', 'ld-preload', 'dlopen-absolute', 'dlopen-with-deps', 'dlopen-memfd', 'short-lived-500'], repeat: 1, shortLivedRuns: 20, settleMs: 5000, deadlineMs: 30000 }
    : { repeat: 2, shortLivedRuns: 100, settleMs: 5000, deadlineMs: 60000 };
}

function sh(cmd: string, args: string[], what: string): string {
  const r = spawnSync(cmd, args, { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${what} failed (${cmd} ${args.join(' ')}: exit ${r.status ?? r.error})`);
  return r.stdout;
}

function ensureQemu(): string {
  const has = (): boolean => spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!has()) {
    log('installing qemu-system-x86 (apt-get)');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const apt = (args: string[]): number | null => spawnSync('apt-get', args, { stdio: 'inherit', env }).status;
    if (apt(['install', '-y', '--no-install-recommends', 'qemu-system-x86']) !== 0) {
      if (apt(['update']) !== 0 || apt(['install', '-y', '--no-install-recommends', 'qemu-system-x86']) !== 0) throw new Error('could not install qemu-system-x86');
    }
    if (!has()) throw new Error('qemu-system-x86_64 still missing after installing qemu-system-x86');
  }
  return spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0]!;
}

/** The host's files the guest needs, at their own paths. */
function baseImage(corpusDir: string, faultProg: string, costDir?: string): ImageBuilder {
  const img = new ImageBuilder();
  img.addDirs('proc', 'sys', 'dev', 'tmp', 'run', 'root', 'mnt', 'var/tmp', 'sys/kernel');
  for (const l of ['bin', 'sbin', 'lib', 'lib64']) if (fs.lstatSync(`/${l}`).isSymbolicLink()) img.add(`/${l}`);
  const bins = ['node', 'sh', 'dash', 'bash', 'python3', 'readelf', 'ldd', 'cat', 'ls', 'mkdir', 'mount', 'umount', 'sleep', 'uname', 'env', 'rm', 'cp', 'ln', 'id', 'head', 'tail', 'grep', 'sync', 'chmod', 'dmesg', 'true', 'false', 'ip', 'cut', 'seq', 'basename', 'dirname', 'rmdir', 'wc', 'sort', 'sed', 'tr', 'kill', 'ps', 'date', 'stat', 'od', 'xargs', 'find'];
  for (const b of bins) {
    const p = ['/usr/bin', '/usr/sbin', '/bin', '/sbin'].map((d) => path.join(d, b)).find((c) => fs.existsSync(c));
    if (!p) throw new Error(`host has no ${b}`);
    if (b === 'ldd') img.add(p);
    else img.addElf(p);
  }
  img.addElf('/lib64/ld-linux-x86-64.so.2');
  // python3's standard library and extension modules (ctypes for the python-ctypes scenario).
  const py = fs.realpathSync('/usr/bin/python3');
  const pyLib = `/usr/lib/${path.basename(py)}`;
  img.addTree(pyLib, /\/(test|tests|idlelib|tkinter|ensurepip|lib2to3|turtledemo|pydoc_data)$|__pycache__/, true);
  // glibc's debug symbols (libc6-dbg) for the loader-list mechanism.
  img.addTree('/usr/lib/debug/.build-id');
  for (const f of ['/etc/ld.so.cache', '/etc/ld.so.conf', '/etc/ld.so.conf.d', '/etc/passwd', '/etc/group', '/etc/nsswitch.conf', '/etc/hosts', '/etc/debian_version', '/etc/os-release', '/usr/lib/os-release']) {
    if (fs.existsSync(f)) fs.statSync(f).isDirectory() ? img.addTree(f) : img.add(f);
  }
  // the checkout, built
  for (const p of ['package.json', 'config', 'dist', 'node_modules', 'test/recall/scenarios', '.cache/otelcol/otelcol-soload']) {
    const abs = path.join(REPO, p);
    if (!fs.existsSync(abs)) throw new Error(`${abs} missing`);
    fs.statSync(abs).isDirectory() ? img.addTree(abs, /\/dist\/test\/(unit|integration|soak|fuzz)$/) : img.add(abs);
  }
  // the cost step's workloads (bench/workloads.ts finds its C sources' directory when it loads)
  img.addTree(path.join(REPO, 'bench', 'c'));
  if (costDir) img.addTree(costDir);
  img.addTree(corpusDir);
  img.add(faultProg);
  return img;
}

/** Kernel modules the guest loads (decompressed: insmod-by-syscall cannot read .ko.xz everywhere). */
function moduleFiles(kdir: string, release: string): Array<{ source: string; at: string }> {
  const out: Array<{ source: string; at: string }> = [];
  const base = path.join(kdir, 'root', 'lib', 'modules', release);
  for (const rel of ['kernel/fs/overlayfs/overlay.ko']) {
    for (const ext of ['', '.xz', '.zst']) {
      const src = path.join(base, rel + ext);
      if (!fs.existsSync(src)) continue;
      let plain = src;
      if (ext) {
        plain = path.join(kdir, 'modules-plain', rel);
        fs.mkdirSync(path.dirname(plain), { recursive: true });
        const r = spawnSync(ext === '.xz' ? 'xz' : 'zstd', ['-dc', src], { maxBuffer: 256 << 20 });
        if (r.status !== 0) throw new Error(`cannot decompress ${src}`);
        fs.writeFileSync(plain, r.stdout);
      }
      out.push({ source: plain, at: `/usr/lib/modules/${release}/${rel}` });
      break;
    }
  }
  return out;
}

const INIT_MODULES = `
for m in /usr/lib/modules/$(cat /proc/sys/kernel/osrelease)/kernel/fs/overlayfs/overlay.ko; do
  [ -e "$m" ] && python3 -c 'import ctypes,os,sys; l=ctypes.CDLL(None,use_errno=True); fd=os.open(sys.argv[1],os.O_RDONLY); r=l.syscall(313,fd,b"",0); sys.exit(0 if r==0 or ctypes.get_errno()==17 else ctypes.get_errno())' "$m" || echo "kmatrix: could not load $m"
done
`;

async function boot(name: string, kdir: string, release: string, initrd: string, timeoutMin: number): Promise<{ console: string; results: string; ms: number; timedOut: boolean }> {
  const consoleFile = path.join(kdir, 'console.log');
  const resultsFile = path.join(kdir, 'results.txt');
  for (const f of [consoleFile, resultsFile]) fs.rmSync(f, { force: true });
  const args = [
    '-accel', 'tcg', '-cpu', 'max', '-m', '4096', '-smp', '2', '-nodefaults', '-display', 'none', '-no-reboot', '-monitor', 'none',
    '-kernel', path.join(kdir, 'root', 'boot', `vmlinuz-${release}`), '-initrd', initrd,
    '-append', 'console=ttyS0 rdinit=/init panic=-1 loglevel=4 sysrq_always_enabled=1',
    '-serial', `file:${consoleFile}`, '-serial', `file:${resultsFile}`,
  ];
  const t0 = Date.now();
  log(`${name}: booting ${release} (qemu-system-x86_64 ${args.join(' ')})`);
  const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'inherit', 'inherit'] });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMin * 60_000);
  await new Promise<void>((resolve) => child.on('exit', () => resolve()));
  clearTimeout(timer);
  const read = (f: string): string => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '');
  return { console: read(consoleFile), results: read(resultsFile), ms: Date.now() - t0, timedOut };
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  fs.mkdirSync(CACHE, { recursive: true });
  const qemu = ensureQemu();
  // glibc's debug symbols go into the guests: without them the loader mechanisms that need no
  // `@+` fetch (loader-probe) do not apply, and 5.10/6.1 are left with dlopen calls only.
  if (spawnSync('dpkg', ['-s', 'libc6-dbg'], { stdio: 'ignore' }).status !== 0) {
    log('installing libc6-dbg (apt-get)');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    if (spawnSync('apt-get', ['install', '-y', 'libc6-dbg'], { stdio: 'inherit', env }).status !== 0) {
      spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
      if (spawnSync('apt-get', ['install', '-y', 'libc6-dbg'], { stdio: 'inherit', env }).status !== 0) throw new Error('could not install libc6-dbg');
    }
  }
  log(qemu);
  const fetched = sh('bash', ['scripts/kernels/fetch-kernels.sh', ...o.kernels], 'fetching kernels')
    .trim()
    .split('\n')
    .map((l) => l.split(' '))
    .map(([suite, dir, release]) => ({ suite: suite!, dir: dir!, release: release! }));
  sh('bash', ['scripts/build-collector.sh'], 'building the Collector');
  const corpusDir = path.join(CACHE, 'corpus');
  fs.rmSync(corpusDir, { recursive: true, force: true });
  sh(process.execPath, ['dist/test/recall/harness.js', '--build-only', corpusDir], 'building the recall corpus');
  const faultProg = path.join(CACHE, 'puzzle', 'fault');
  fs.mkdirSync(path.dirname(faultProg), { recursive: true });
  sh('gcc', ['-O1', '-o', faultProg, path.join(REPO, 'test/kernels/fault.c')], 'compiling fault.c');
  let cost: CostPlan | undefined;
  if (o.cost) {
    const dir = path.join(CACHE, 'cost-workloads');
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    log('compiling the cost workloads (bench/c, quick sizes)');
    await prepareWorkloads(dir, { quick: true, only: COST_WORKLOADS });
    cost = { dir, rounds: 3 };
  }
  const base = baseImage(corpusDir, faultProg, cost?.dir);
  log(`guest image: ${base.list().length} entries, ${(base.size() / 2 ** 20).toFixed(0)} MiB`);
  const recall = recallPlan(o.quick);
  const results: KernelResult[] = [];
  fs.mkdirSync(RESULTS, { recursive: true });
  for (const k of fetched) {
    const plan: GuestPlan = { repo: REPO, corpusDir, faultProg, ...(o.noRecall ? {} : { recall }), ...(cost ? { cost } : {}), output: '/dev/ttyS1', guest: true, ...(o.debug ? { debug: o.debug } : {}) };
    const extra = new ImageBuilder();
    extra.addData('/etc/soload-kmatrix.json', JSON.stringify(plan));
    extra.addData('/init', fs.readFileSync(path.join(REPO, 'test/kernels/init.sh'), 'utf8').replace('cd /work/main\n', `${INIT_MODULES}\ncd ${REPO}\n`).replace('node dist/test/kernels/guest.js', `node ${REPO}/dist/test/kernels/guest.js`), 0o755);
    for (const m of moduleFiles(k.dir, k.release)) extra.addFileAs(m.source, m.at);
    const have = new Set(base.list().map((e) => e.path));
    const initrd = path.join(k.dir, 'initrd.cpio');
    const { writeCpio } = await import('./cpio');
    const bytes = writeCpio(initrd, [...base.list(), ...extra.list().filter((e) => e.kind !== 'dir' || !have.has(e.path))]);
    log(`${k.suite}: initramfs ${(bytes / 2 ** 20).toFixed(0)} MiB`);
    const b = await boot(k.suite, k.dir, k.release, initrd, o.timeoutMin);
    fs.rmSync(initrd, { force: true });
    const parsed = parseResultLines(b.results);
    const dbg = parsed.get('debug') as { stdout: string; stderr: string } | undefined;
    if (dbg) fs.writeFileSync(path.join(k.dir, 'debug.txt'), `${dbg.stdout}\n--- stderr\n${dbg.stderr}`);
    const r: KernelResult = { name: k.suite, ...KERNEL_SUITES[k.suite]!, release: k.release, bootMs: b.ms, timedOut: b.timedOut, results: Object.fromEntries(parsed) };
    if (!parsed.has('done')) r.consoleTail = b.console.split('\n').slice(-40).join('\n');
    results.push(r);
    log(`${k.suite}: ${b.timedOut ? 'TIMED OUT' : 'powered off'} after ${(b.ms / 1000).toFixed(0)} s; results: ${[...parsed.keys()].join(', ') || 'none'}`);
    log(summarize(r));
    if (o.write) fs.writeFileSync(path.join(RESULTS, `${k.suite}.json`), `${JSON.stringify(slim(r), null, 1)}\n`);
  }
  if (o.host) {
    const out = path.join(CACHE, 'host-results.txt');
    fs.rmSync(out, { force: true });
    const planFile = path.join(CACHE, 'host-plan.json');
    const plan: GuestPlan = { repo: REPO, corpusDir, faultProg, recall, ...(cost ? { cost } : {}), output: out, guest: false };
    fs.writeFileSync(planFile, JSON.stringify(plan));
    const t = Date.now();
    log(`host: running the guest program on the host's kernel ${os.release()}`);
    spawnSync(process.execPath, [path.join(REPO, 'dist/test/kernels/guest.js'), planFile], { stdio: 'inherit' });
    const parsed = parseResultLines(fs.readFileSync(out, 'utf8'));
    const r: KernelResult = { name: 'host', distro: 'this host', suite: '-', release: os.release(), bootMs: Date.now() - t, timedOut: false, results: Object.fromEntries(parsed) };
    results.push(r);
    log(summarize(r));
    if (o.write) fs.writeFileSync(path.join(RESULTS, 'host.json'), `${JSON.stringify(slim(r), null, 1)}\n`);
  }
  const totalMs = Date.now() - t0;
  if (o.write) {
    fs.writeFileSync(path.join(RESULTS, MATRIX_META), `${JSON.stringify({ matrixMs: totalMs, qemu }, null, 1)}\n`);
    fs.writeFileSync(path.join(REPO, 'KERNELS.md'), renderStoredResults(RESULTS));
    log('wrote KERNELS.md');
  }
  log(`matrix took ${(totalMs / 60000).toFixed(1)} min`);
  const bad = results.filter((r) => !passes(r, Boolean(cost)));
  for (const r of bad) log(`${r.name}: FAILED (${r.timedOut ? 'timed out; ' : ''}${summarize(r)})`);
  return bad.length ? 1 : 0;
}

/** Booted, reported everything (the cost step too when it was planned), and the host-glibc recall bar (≥ 99 %) holds. */
function passes(r: KernelResult, costPlanned: boolean): boolean {
  const rec = (r.results.recall as { report?: { totals?: { recall?: number } } } | undefined)?.report?.totals?.recall;
  return !r.timedOut && 'done' in r.results && typeof rec === 'number' && rec >= 99 && (!costPlanned || 'cost' in r.results);
}

/** What is kept in test/kernels/results: the check reports, features, recall totals per scenario. */
function slim(r: KernelResult): KernelResult {
  const rec = r.results.recall as { exitCode?: number; report?: Record<string, unknown>; stderrTail?: string } | undefined;
  if (!rec?.report) return r;
  const rep = rec.report as { totals?: unknown; scenarios?: Array<Record<string, unknown>>; timings?: unknown; soloadStderrTail?: unknown };
  return {
    ...r,
    results: {
      ...r.results,
      recall: { exitCode: rec.exitCode, dataFetchBroken: (rec as { dataFetchBroken?: boolean }).dataFetchBroken, report: { totals: rep.totals, timings: rep.timings, scenarios: (rep.scenarios ?? []).map((s) => ({ name: s.name, informational: s.informational, totals: s.totals })) } },
    },
  };
}

if (require.main === module) {
  main().then(
    (c) => process.exit(c),
    (err: unknown) => {
      process.stderr.write(`kernels: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(2);
    },
  );
}
