/**
 * Comparison conditions for the cost-to-traced-processes benchmark (issue #10): what a traced
 * process pays under other ways of watching shared-object loads, installed and run by the
 * benchmark itself so anyone can reproduce the comparison.
 *
 *   baseline             nothing installed
 *   bare tracefs (seed)  the seed document's approach done by hand: a dlopen uprobe with its string
 *                        argument, plus a _dl_debug_state uprobe walking 8 link_map entries from
 *                        _r_debug, read with `cat trace_pipe > /dev/null`
 *   bpftrace             the eBPF one-liner equivalent: uprobes on dlopen and _dl_debug_state
 *                        printing pid and name to /dev/null
 *   kernel floor         soload's own probe places with no fetch arguments: the trap and the
 *                        per-process copy of each probed page, i.e. what any uprobe-based tool pays
 *                        there before it reads a byte
 *
 * Each condition owns its own tracefs instance and probe group (bench_bare, bench_floor), so it
 * neither sees nor disturbs soload or anyone else tracing on the machine, and removes exactly what
 * it created. Run standalone (`node dist/bench/baselines.js [--quick] [--rounds N]
 * [--wait-quiet S] [--floor-from FILE]`) it measures baseline, bare tracefs and bpftrace (and the
 * kernel floor at the places listed in FILE, a copy of uprobe_events taken while soload ran) on
 * every workload and prints a markdown table. `--wait-quiet S` waits up to S seconds before each
 * condition round for other tracers on the machine to go away.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ElfSymbolResolver } from '../src/elf/resolver';
import { parseProbeListing } from '../src/tracefs/probe-line';
import { BASELINE, markdownTable, measure, prepareWorkloads, type Measurement, type Workload } from './workloads';

export const TRACEFS = '/sys/kernel/tracing';

/** A monitoring condition the workloads run under. start() returns once monitoring is in effect. */
export interface Condition {
  readonly name: string;
  start(): Promise<void>;
  /** Removes everything start() created. Safe to call when not started, and twice. */
  stop(): Promise<void>;
}

/** A place soload (or anyone) put a uprobe: file, file offset, entry or return. */
export interface ProbePoint {
  path: string;
  offset: number;
  kind: 'entry' | 'return';
}

// ---------------------------------------------------------------------------------------------
// Emergency cleanup. Conditions clean up in stop(), which callers reach through try/finally; these
// hooks are for the paths that skip finally blocks (a signal, process.exit elsewhere, a crash).
// They are synchronous because 'exit' handlers cannot wait.

const live = new Set<{ cleanupSync(): void }>();

/** Synchronously tears down every condition still started (signal and exit paths). */
export function cleanupAll(): void {
  for (const c of [...live]) {
    try {
      c.cleanupSync();
    } catch (err) {
      process.stderr.write(`cleanup: ${(err as Error).message}\n`);
    }
  }
}

let hooksInstalled = false;

/**
 * Installs SIGINT/SIGTERM/SIGHUP and exit hooks that tear down every live condition, then exit
 * with 128+signal. Idempotent.
 */
export function installCleanupHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', cleanupAll);
  for (const [sig, num] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]] as const) {
    process.on(sig, () => {
      process.stderr.write(`\n${sig}: removing benchmark probes\n`);
      cleanupAll();
      process.exit(128 + num);
    });
  }
}

/** Blocks the thread for `ms` (the synchronous cleanup path waits for a killed child this way). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** True once `pid` has exited: gone, or a zombie, which has already closed its files. */
function exited(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Kills a child and waits (synchronously) until it has released its files. */
function killSync(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid, signal);
  } catch {
    return;
  }
  for (let i = 0; i < 500 && !exited(child.pid); i++) sleepSync(10);
}

/** Kills a child (SIGTERM, SIGKILL after `graceMs`) and resolves when it has exited. */
async function killAndWait(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await done;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------
// Host files

/** The files running programs actually use (this process's own mappings): libc and ld.so, resolved. */
export function hostLoaderFiles(): { libc: string; ldso: string } {
  const maps = fs.readFileSync('/proc/self/maps', 'utf8');
  const find = (re: RegExp): string | undefined => {
    for (const line of maps.split('\n')) {
      const slash = line.indexOf('/');
      if (slash >= 0 && re.test(path.basename(line.slice(slash)))) return fs.realpathSync(line.slice(slash));
    }
    return undefined;
  };
  const libc = find(/^libc\.so\.6$|^libc-2\.\d+\.so$/);
  // ld.so as programs name it (PT_INTERP of /bin/true), not only as Node happens to map it.
  const interp = new ElfSymbolResolver().inspect('/bin/true').interpreter;
  const ldso = interp ? fs.realpathSync(interp) : find(/^ld-linux.*\.so/);
  if (!libc || !ldso) throw new Error(`cannot find libc (${libc}) or ld.so (${ldso}) of this host`);
  return { libc, ldso };
}

// ---------------------------------------------------------------------------------------------
// A tracefs instance with its own probe group

/** Longest fetch argument the kernel accepts (MAX_ARGSTR_LEN, trace_probe.h). */
const MAX_ARGSTR_LEN = 63;

/**
 * Probes (uprobe_events lines of one group) enabled only in an instance of the same name, with
 * `cat trace_pipe > /dev/null` consuming it. Every step of teardown is attempted even when an
 * earlier one fails, and stale state of a previous crashed run with the same names is removed first.
 */
class TracefsInstanceCondition implements Condition {
  private cat?: ChildProcess;
  private started = false;

  constructor(
    readonly name: string,
    private readonly group: string,
    /** Lines for uprobe_events, `p:` / `r:` with `<group>/<event>`; computed at start(). */
    private readonly lines: () => string[],
    private readonly root = TRACEFS,
  ) {}

  private get instanceDir(): string {
    return path.join(this.root, 'instances', this.group);
  }

  /** Names are fixed (bench_bare, bench_floor): a lock tells a concurrent run's live state from a dead run's leftovers. */
  private get lockFile(): string {
    return path.join(os.tmpdir(), `soload-${this.group}.lock`);
  }

  private takeLock(): void {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(this.lockFile, String(process.pid), { flag: 'wx' });
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = Number(fs.readFileSync(this.lockFile, 'utf8'));
      if (holder && holder !== process.pid && !exited(holder)) {
        throw new Error(`${this.name}: instance ${this.group} is in use by benchmark process ${holder} (${this.lockFile})`);
      }
      fs.rmSync(this.lockFile, { force: true }); // its holder is gone: what it left is stale
    }
    throw new Error(`${this.name}: cannot take ${this.lockFile}`);
  }

  async start(): Promise<void> {
    if (this.started) return;
    const lines = this.lines();
    this.takeLock();
    this.started = true;
    live.add(this);
    try {
      this.removeAll(); // leftovers of an earlier run killed by SIGKILL
      fs.mkdirSync(this.instanceDir);
      const ue = path.join(this.root, 'uprobe_events');
      for (const line of lines) {
        const ev = /^[pr]:([^/\s]+)\/(\S+)\s/.exec(line);
        if (!ev || ev[1] !== this.group) throw new Error(`probe line not in group ${this.group}: ${line}`);
        // Appending: opening uprobe_events with O_TRUNC would delete every uprobe on the machine.
        try {
          fs.appendFileSync(ue, line + '\n');
        } catch (err) {
          throw new Error(`${this.name}: the kernel refused ${JSON.stringify(line)}: ${(err as Error).message} (see ${this.root}/error_log)`);
        }
      }
      fs.writeFileSync(path.join(this.instanceDir, 'events', this.group, 'enable'), '1');
      const devnull = fs.openSync('/dev/null', 'w');
      try {
        this.cat = spawn('cat', [path.join(this.instanceDir, 'trace_pipe')], { stdio: ['ignore', devnull, 'inherit'] });
      } finally {
        fs.closeSync(devnull);
      }
      const cat = this.cat;
      await new Promise<void>((resolve, reject) => {
        cat.once('spawn', resolve);
        cat.once('error', reject);
      });
    } catch (err) {
      this.cleanupSync();
      throw err;
    }
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    // The reader first: the instance cannot be removed while trace_pipe is open (EBUSY).
    await killAndWait(this.cat);
    this.cleanupSync();
  }

  cleanupSync(): void {
    if (!this.started) return; // never touch the names while another run may hold them
    killSync(this.cat);
    this.cat = undefined;
    try {
      this.removeAll();
    } finally {
      fs.rmSync(this.lockFile, { force: true });
      this.started = false;
      live.delete(this);
    }
  }

  /** Disables the group, removes the instance, then the group's probes (the kernel refuses to delete an enabled one). */
  private removeAll(): void {
    const errors: string[] = [];
    const attempt = (what: string, f: () => void): void => {
      try {
        f();
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT') errors.push(`${what}: ${(err as Error).message}`);
      }
    };
    const enable = path.join(this.instanceDir, 'events', this.group, 'enable');
    if (fs.existsSync(enable)) attempt('disable', () => fs.writeFileSync(enable, '0'));
    if (fs.existsSync(this.instanceDir)) attempt(`rmdir ${this.instanceDir}`, () => fs.rmdirSync(this.instanceDir));
    const ue = path.join(this.root, 'uprobe_events');
    const listed = parseProbeListing(fs.readFileSync(ue, 'utf8')).filter((p) => p.group === this.group);
    for (const p of listed) attempt(`remove ${this.group}/${p.event}`, () => fs.appendFileSync(ue, `-:${this.group}/${p.event}\n`));
    if (errors.length) throw new Error(`${this.name}: cleanup incomplete: ${errors.join('; ')}`);
  }
}

/** No monitoring: the reference every ratio is taken against. */
export function baselineCondition(): Condition {
  return { name: BASELINE, start: async () => {}, stop: async () => {} };
}

/**
 * uprobe fetch arguments reading the l_name of the first `count` entries of ld.so's link_map list
 * (r_debug.r_map, then l_next), one string each. The walk nests one dereference per entry, so the
 * argument grows by 4 characters per entry; 8 entries is what fits in the kernel's 63-character
 * limit with a 5-hex-digit offset.
 */
export function linkMapWalkArgs(rMapFetchOffset: number, count: number): string[] {
  // LP64 <link.h>: struct link_map { l_addr; l_name @8; l_ld; l_next @24; l_prev; }.
  const L_NAME = 8;
  const L_NEXT = 24;
  const args: string[] = [];
  let entry = `@+0x${rMapFetchOffset.toString(16)}`; // the value of r_map: the first link_map
  for (let k = 0; k < count; k++) {
    const arg = `+0(+${L_NAME}(${entry})):ustring`;
    if (arg.length > MAX_ARGSTR_LEN) throw new Error(`link_map walk entry ${k} needs a ${arg.length}-character fetch argument (kernel limit ${MAX_ARGSTR_LEN}): ${arg}`);
    args.push(`n${k}=${arg}`);
    entry = `+${L_NEXT}(${entry})`;
  }
  return args;
}

/**
 * The seed document's bare set (`bare tracefs (seed)`): its dlopen probe exactly as written there
 * (`+0(%di):string`, on libc's dlopen since glibc 2.34 moved it out of libdl), plus a probe on
 * _dl_debug_state that walks 8 link_map entries from `_r_debug` (r_map at +8) — the list-reading
 * idea the seed arrives at for implicit loads, done without soload's planning — both in the
 * instance and group `bench_bare`, consumed by `cat trace_pipe > /dev/null` as the seed reads it.
 */
export function bareTracefsCondition(entries = 8): Condition {
  return new TracefsInstanceCondition('bare tracefs (seed)', 'bench_bare', () => {
    const { libc, ldso } = hostLoaderFiles();
    const elf = new ElfSymbolResolver();
    const dlopen = elf.resolve(libc, 'dlopen').fileOffset;
    const debugState = elf.resolve(ldso, '_dl_debug_state').fileOffset;
    // struct r_debug { int r_version; struct link_map *r_map @8; ... }: r_map's @+ offset as seen
    // from the _dl_debug_state probe (see src/elf/offsets.ts on why it is not a plain file offset).
    const rMap = elf.fetchOffset(ldso, '_dl_debug_state', '_r_debug') + 8;
    return [
      `p:bench_bare/dlopen ${libc}:0x${dlopen.toString(16)} name=+0(%di):string`,
      `p:bench_bare/debug_state ${ldso}:0x${debugState.toString(16)} ${linkMapWalkArgs(rMap, entries).join(' ')}`,
    ];
  });
}

/**
 * The kernel's own uprobe cost at `points` (`kernel floor`): one probe per distinct place, no
 * fetch arguments, enabled in instance/group `bench_floor` and read to /dev/null. Places soload
 * probes more than once (several events at one address share one breakpoint) are probed once: the
 * trap and the copy-on-write of the probed page happen once per hit either way.
 */
export function floorCondition(points: ReadonlyArray<ProbePoint>): Condition {
  return new TracefsInstanceCondition('kernel floor', 'bench_floor', () => {
    const seen = new Set<string>();
    const lines: string[] = [];
    for (const p of points) {
      const k = `${p.kind} ${p.path} ${p.offset}`;
      if (seen.has(k)) continue;
      seen.add(k);
      if (/\s/.test(p.path)) throw new Error(`kernel floor: path with whitespace cannot be probed: ${JSON.stringify(p.path)}`);
      lines.push(`${p.kind === 'return' ? 'r' : 'p'}:bench_floor/p${lines.length} ${p.path}:0x${p.offset.toString(16)}`);
    }
    if (lines.length === 0) throw new Error('kernel floor: no probe points');
    return lines;
  });
}

/**
 * soload's uprobe places from a uprobe_events listing (`p:soload_123/name /path:0xOFFSET args...`,
 * `r:` for a return probe): of group `soload_<pid>`, or of the first soload group listed when `pid`
 * is not given. Paths are resolved to the files they name now, so the floor can use them after
 * soload stopped (soload names files with whitespace by a symlink it removes on exit).
 */
export function parseSoloadProbePoints(listing: string, pid?: number): ProbePoint[] {
  const probes = parseProbeListing(listing);
  const group = pid !== undefined ? `soload_${pid}` : probes.find((p) => /^soload_\d+$/.test(p.group))?.group;
  const out: ProbePoint[] = [];
  for (const p of probes) {
    if (p.group !== group) continue;
    // `PATH:0xOFFSET`, optionally `(0xREFCTR)` for a USDT semaphore, then the fetch arguments.
    const m = /^(\S+):(0x[0-9a-fA-F]+)(?:\(0x[0-9a-fA-F]+\))?(?:\s|$)/.exec(p.rest);
    if (!m) throw new Error(`cannot parse the place of ${p.group}/${p.event}: ${p.rest}`);
    let file = m[1]!;
    try {
      file = fs.realpathSync(file);
    } catch {
      /* gone already: keep the listed name */
    }
    out.push({ path: file, offset: Number(m[2]), kind: p.type === 'r' ? 'return' : 'entry' });
  }
  if (out.length === 0) throw new Error(`no uprobes of group ${group ?? 'soload_<pid>'} in the listing: is soload running?`);
  return out;
}

/**
 * The places a running soload probes, from the live uprobe_events. Read them while soload runs,
 * then stop it before measuring the floor: its own probes at the same places would otherwise be
 * paid under every condition.
 */
export function soloadProbePoints(pid: number, root = TRACEFS): ProbePoint[] {
  return parseSoloadProbePoints(fs.readFileSync(path.join(root, 'uprobe_events'), 'utf8'), pid);
}

// ---------------------------------------------------------------------------------------------
// bpftrace

/** Installs bpftrace with apt-get when it is missing; returns its path. */
export function ensureBpftrace(): string {
  const which = (): string | undefined => {
    const r = spawnSync('sh', ['-c', 'command -v bpftrace'], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : undefined;
  };
  const found = which();
  if (found) return found;
  process.stderr.write('bpftrace not found: apt-get install -y bpftrace\n');
  const r = spawnSync('apt-get', ['install', '-y', 'bpftrace'], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  const after = which();
  if (r.status !== 0 || !after) throw new Error(`apt-get install -y bpftrace failed (exit ${r.status})`);
  return after;
}

function onlineCpus(): number {
  try {
    let n = 0;
    for (const part of fs.readFileSync('/sys/devices/system/cpu/online', 'utf8').trim().split(',')) {
      const [a, b] = part.split('-').map(Number);
      n += b === undefined ? 1 : b - a! + 1;
    }
    return n;
  } catch {
    return os.cpus().length;
  }
}

function perfEventFds(pid: number): number {
  let n = 0;
  try {
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === 'anon_inode:[perf_event]') n++;
      } catch {
        /* closed meanwhile */
      }
    }
  } catch {
    /* exited */
  }
  return n;
}

/**
 * `bpftrace`: uprobes on libc's dlopen (pid, str(arg0)) and ld.so's _dl_debug_state (pid, comm),
 * output to /dev/null.
 *
 * When it is ready: bpftrace 0.17 prints "Attaching N probes..." before it attaches, and to its
 * output (here /dev/null), so the message can neither be seen nor trusted. Instead start() waits
 * until bpftrace holds its perf events: one output ring per online CPU, opened first, then one per
 * attached uprobe.
 */
export function bpftraceCondition(): Condition {
  let child: ChildProcess | undefined;
  let stderr = '';
  const PROBES = 2;
  const cond = {
    name: 'bpftrace',
    async start(): Promise<void> {
      if (child) return;
      const bin = ensureBpftrace();
      const { libc, ldso } = hostLoaderFiles();
      const script = [
        `uprobe:${libc}:dlopen { printf("%d %s\\n", pid, str(arg0)); }`,
        `uprobe:${ldso}:_dl_debug_state { printf("%d %s\\n", pid, comm); }`,
      ].join('\n');
      stderr = '';
      live.add(cond);
      const c = spawn(bin, ['-o', '/dev/null', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
      child = c;
      c.stderr!.setEncoding('utf8');
      c.stderr!.on('data', (d: string) => (stderr += d));
      try {
        const want = onlineCpus() + PROBES;
        const deadline = Date.now() + 60_000;
        for (;;) {
          if (c.exitCode !== null || c.signalCode !== null) throw new Error(`bpftrace exited (${c.exitCode ?? c.signalCode}) before attaching: ${stderr.trim()}`);
          if (c.pid && perfEventFds(c.pid) >= want) break;
          if (Date.now() > deadline) throw new Error(`bpftrace did not attach within 60 s: ${stderr.trim()}`);
          await new Promise((r) => setTimeout(r, 20));
        }
        // A real failure after attaching (a probe that could not be placed) would show here.
        if (/ERROR:(?!.*RLIMIT_MEMLOCK)/.test(stderr)) throw new Error(`bpftrace: ${stderr.trim()}`);
      } catch (err) {
        cond.cleanupSync();
        throw err;
      }
    },
    async stop(): Promise<void> {
      // SIGINT is bpftrace's own way to end (it detaches and exits 0).
      await killAndWait(child, 'SIGINT');
      cond.cleanupSync();
    },
    cleanupSync(): void {
      killSync(child);
      child = undefined;
      live.delete(cond);
    },
  };
  return cond;
}

// ---------------------------------------------------------------------------------------------

/** Names of the conditions' instances and groups: what must be gone after a run. */
export const OWNED_NAMES = ['bench_bare', 'bench_floor'];

/** What the benchmark left in tracefs (empty when clean). */
export function leftovers(root = TRACEFS): string[] {
  const out: string[] = [];
  for (const p of parseProbeListing(fs.readFileSync(path.join(root, 'uprobe_events'), 'utf8'))) {
    if (OWNED_NAMES.includes(p.group)) out.push(`probe ${p.group}/${p.event}`);
  }
  for (const n of fs.readdirSync(path.join(root, 'instances'))) if (OWNED_NAMES.includes(n)) out.push(`instance ${n}`);
  return out;
}

/**
 * Other tracers on the machine right now: uprobe groups not ours (in uprobe_events) and bpftrace
 * processes not ours (perf-based uprobes are not listed there). A uprobe on libc or ld.so is paid by
 * every workload under every condition, baseline included, so it shrinks every ratio towards 1.
 */
export function foreignTracers(root = TRACEFS): string[] {
  const out = new Set<string>();
  for (const p of parseProbeListing(fs.readFileSync(path.join(root, 'uprobe_events'), 'utf8'))) {
    if (!OWNED_NAMES.includes(p.group)) out.add(`uprobes ${p.group}`);
  }
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'bpftrace') out.add(`bpftrace pid ${d}`);
    } catch {
      /* exited */
    }
  }
  return [...out];
}

/** Measures `conditions` (one must be baseline) on `workloads`, interleaved (see measure()). */
export async function measureConditions(
  workloads: readonly Workload[],
  conditions: readonly Condition[],
  rounds: number,
  opts: { onSample?: (c: string, w: string, round: number, ms: number) => void; beforeStart?: (c: string) => Promise<void> } = {},
): Promise<Measurement[]> {
  const byName = new Map(conditions.map((c) => [c.name, c]));
  return measure(
    workloads,
    conditions.map((c) => c.name),
    async (n) => {
      await opts.beforeStart?.(n);
      await byName.get(n)!.start();
    },
    (n) => byName.get(n)!.stop(),
    rounds,
    { onSample: opts.onSample },
  );
}

async function main(argv: string[]): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the benchmark installs uprobes: run it as root');
  const quick = argv.includes('--quick');
  const arg = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const rounds = Number(arg('--rounds') ?? (quick ? 3 : 5));
  const floorFrom = arg('--floor-from');
  const waitQuietS = Number(arg('--wait-quiet') ?? 0);
  installCleanupHooks();
  ensureBpftrace();
  const conditions: Condition[] = [baselineCondition(), bareTracefsCondition(), bpftraceCondition()];
  if (floorFrom) conditions.push(floorCondition(parseSoloadProbePoints(fs.readFileSync(floorFrom, 'utf8'))));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-bench-workloads-'));
  try {
    const workloads = await prepareWorkloads(dir, { quick });
    process.stderr.write(`${rounds} rounds × ${conditions.length} conditions × ${workloads.length} workloads${quick ? ' (quick)' : ''}\n`);
    // Another tracer's uprobes on libc/ld.so would be in the baseline too: wait for a quiet machine
    // (up to --wait-quiet seconds per condition round), and say in the output when it never was.
    const disturbed = new Set<string>();
    let condRounds = 0;
    let disturbedRounds = 0;
    const beforeStart = async (): Promise<void> => {
      condRounds++;
      const deadline = Date.now() + waitQuietS * 1000;
      let others = foreignTracers();
      while (others.length > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 1000));
        others = foreignTracers();
      }
      if (others.length > 0) disturbedRounds++;
      for (const o of others) disturbed.add(o);
    };
    const onSample = (c: string, w: string, r: number, ms: number): void => {
      process.stderr.write(`  round ${r + 1} ${c.padEnd(20)} ${w.padEnd(9)} ${ms.toFixed(1)} ms\n`);
    };
    const results = await measureConditions(workloads, conditions, rounds, { onSample, beforeStart });
    console.log(`\n${workloads.length} workloads, median of ${rounds} interleaved rounds; ${onlineCpus()} CPUs, kernel ${os.release()}\n`);
    console.log(markdownTable(results, workloads));
    if (disturbed.size > 0) {
      const list = [...disturbed];
      const shown = list.length > 6 ? `${list.slice(0, 6).join(', ')} and ${list.length - 6} more` : list.join(', ');
      console.log(
        `\n**Not a clean machine**: other tracers were active at the start of ${disturbedRounds} of ${condRounds} condition rounds (${shown}). ` +
          'Their probes are paid under every condition, baseline included, so these ratios understate the conditions\' cost.',
      );
    }
    console.log('');
    for (const w of workloads) console.log(`- ${w.name}: ${w.description}`);
  } finally {
    for (const c of conditions) await c.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    const left = leftovers();
    if (left.length) throw new Error(`left behind in ${TRACEFS}: ${left.join(', ')}`);
    process.stderr.write(`clean: no bench_bare/bench_floor probes or instances left in ${TRACEFS}\n`);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
