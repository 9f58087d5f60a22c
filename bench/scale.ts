/**
 * Scale (issue #10, goal 4): what soload's start-up and idle state cost against the size of the
 * host it starts on.
 *
 * (1) Live processes: N sleeping processes (bench/c/sleeper.c, linked against four small libraries,
 *     started by bench/c/spawner.c and all up before soload starts), then soload with the start-up
 *     snapshot: time to "ready" (which soload prints after the snapshot is handed to the exporter and
 *     every running process's loader is armed), CPU and RSS by then, how many snapshot records of
 *     those processes reached the Collector, then idle CPU and RSS over a steady window.
 * (2) Distinct loader files: N minimal roots, each with its own copy (own inode) of the host's
 *     ld.so and libc.so.6 plus the sleeper and its libraries, one sleeper chroot'ed into each. soload
 *     arms every loader in use at start (README "Every loader on the host"), so time to ready and the
 *     probes in its group grow with N.
 * A row with no extra processes or roots is the baseline of this host.
 *
 * soload runs with defaults and the real OTLP exporter to a real Collector (bench/lib/collector-path.ts).
 * Time to ready is from spawning soload's node process, polled every 50 ms (startSoload).
 *
 * Run alone: `node dist/bench/scale.js [--quick]` (root).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startSoload, type SoloadProcess } from '../test/helpers/soload';
import { DEFAULT_RESOURCE_MODE } from './lib/resource-mode';
import { startDeliveryPath, type DeliveryPath } from './lib/collector-path';
import { nowMs } from './lib/otlp-sink';
import { benchTmpDir, compileC, cpuMs, leftoversOf, markdownTable, memoryMiB, probesOf, sleep } from './lib/measure';

export interface ScaleRow {
  kind: 'processes' | 'roots';
  /** Extra live processes (kind processes) or roots with one process each (kind roots). */
  n: number;
  /** How long starting them took (context), ms. */
  spawnMs: number;
  /** soload spawn → "ready", ms (±50 ms polling). */
  readyMs: number;
  /** soload's CPU from its start to ready, ms. */
  cpuToReadyMs: number;
  /** VmRSS at ready and VmHWM (peak) at the end of the steady window, MiB. */
  rssReadyMiB: number;
  peakRssMiB: number;
  /** Objects soload's snapshot reported (its own log line), all processes of the host. */
  snapshotObjects?: number;
  /** Snapshot records of the benchmark's processes that reached the Collector. */
  ourRecords: number;
  /** Fewest / most records of one of the benchmark's processes (equal when the snapshot is complete). */
  perProcessMin: number;
  perProcessMax: number;
  /** Ready → the last of those records at the Collector, ms. */
  deliveredMs: number;
  /** Probes in soload's group at ready, and after the settle second. */
  probesAtReady: number;
  probes: number;
  /** Probes when SIGINT was sent (loaders of other processes met during the window add to them). */
  probesAtStop: number;
  /** Distinct files those probes are placed on. */
  probedFiles: number;
  /** Of those, probes and files inside the benchmark's roots (others' roots on a shared host are not ours). */
  ourRootProbes: number;
  ourRootFiles: number;
  /** Idle: CPU over the steady window, % of one core, and VmRSS at its end, MiB. */
  idleCpuPct: number;
  idleRssMiB: number;
  /** Records that reached the Collector during the steady window: on a shared host "idle" is other people's loads. */
  windowRecords: number;
  /** SIGINT → exit (removing every probe and the instance, flushing), ms. */
  stopMs: number;
  /** soload removed its probes and instance at exit. */
  clean: boolean;
  notes: string[];
}

export interface ScaleResult {
  rows: ScaleRow[];
  table: string;
}

const LIBS = 4;

/** A group of processes the benchmark started; killed as one process group. */
interface Group {
  pgids: number[];
  pids: Set<number>;
}

function readyByte(child: ChildProcess, pattern: RegExp, what: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`${what}: not up within ${timeoutMs} ms (got ${JSON.stringify(out)})`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (pattern.test(out)) {
        clearTimeout(t);
        resolve(out);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`${what} exited ${code} before it was up (${JSON.stringify(out)})`));
    });
  });
}

/** File-backed objects `pid` maps other than its executable: what the snapshot reports for it. */
function mappedObjects(pid: number): number {
  const exe = fs.readlinkSync(`/proc/${pid}/exe`);
  const files = new Set<string>();
  for (const line of fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
    const f = line.split(/\s+/).slice(5).join(' ');
    if (f.startsWith('/') && f !== exe) files.add(f);
  }
  return files.size;
}

/** Direct children of the process group's members: the sleepers' pids. */
function membersOf(pgid: number): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) === pgid) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

async function killGroup(g: Group): Promise<void> {
  for (const pgid of g.pgids) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  const until = Date.now() + 10_000;
  for (const pgid of g.pgids) {
    for (;;) {
      try {
        process.kill(-pgid, 0);
      } catch {
        break;
      }
      if (Date.now() > until) throw new Error(`process group ${pgid} still alive after SIGKILL`);
      await sleep(50);
    }
  }
}

async function spawnSleepers(spawner: string, sleeper: string, n: number): Promise<Group> {
  const child = spawn(spawner, [String(n), sleeper], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
  const g: Group = { pgids: [child.pid!], pids: new Set() };
  try {
    const out = await readyByte(child, /up \d+\n/, `spawner of ${n}`, 120_000);
    const up = Number(/up (\d+)/.exec(out)![1]);
    if (up !== n) throw new Error(`only ${up} of ${n} sleepers came up`);
    for (const p of membersOf(child.pid!)) if (p !== child.pid) g.pids.add(p);
    if (g.pids.size !== n) throw new Error(`found ${g.pids.size} of ${n} sleepers in process group ${child.pid}`);
  } catch (err) {
    await killGroup(g);
    throw err;
  }
  child.unref();
  return g;
}

/**
 * A minimal root: the host's loader and libc copied (own inodes) to the same paths inside it, the
 * PT_INTERP name as the same symlink the host has, the sleeper and its libraries.
 */
function makeRoot(root: string, sleeperFiles: { bin: string; libs: string[] }): void {
  const interp = '/lib64/ld-linux-x86-64.so.2';
  const ldso = fs.realpathSync(interp);
  const libc = fs.realpathSync(path.join(path.dirname(ldso), 'libc.so.6'));
  const put = (hostFile: string, inRoot: string) => {
    fs.mkdirSync(path.dirname(path.join(root, inRoot)), { recursive: true });
    fs.copyFileSync(hostFile, path.join(root, inRoot));
    fs.chmodSync(path.join(root, inRoot), fs.statSync(hostFile).mode);
  };
  put(ldso, ldso);
  put(libc, libc);
  // The sleeper's libraries next to libc: on ld.so's default path, so no RUNPATH ($ORIGIN needs
  // /proc/self/exe, which a bare root lacks) is needed to find them.
  for (const l of sleeperFiles.libs) put(l, path.join(path.dirname(libc), path.basename(l)));
  put(sleeperFiles.bin, '/bin/sleeper');
  // Host layout kept: a merged-/usr host's /lib -> usr/lib, and PT_INTERP's symlink
  for (const d of ['/lib', '/bin', '/sbin']) {
    try {
      const target = fs.readlinkSync(d);
      if (!fs.existsSync(path.join(root, d))) fs.symlinkSync(target, path.join(root, d));
    } catch {
      /* a real directory on this host */
    }
  }
  if (interp !== ldso) {
    fs.mkdirSync(path.join(root, path.dirname(interp)), { recursive: true });
    if (!fs.existsSync(path.join(root, interp))) fs.symlinkSync(ldso, path.join(root, interp));
  }
}

async function spawnInRoots(roots: string[]): Promise<Group> {
  const g: Group = { pgids: [], pids: new Set() };
  try {
    await Promise.all(
      roots.map(async (root) => {
        const child = spawn('chroot', [root, '/bin/sleeper'], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
        g.pgids.push(child.pid!);
        await readyByte(child, /u/, `sleeper in ${root}`, 30_000);
        g.pids.add(child.pid!); // chroot execs the sleeper: same pid
        child.unref();
      }),
    );
  } catch (err) {
    await killGroup(g);
    throw err;
  }
  return g;
}

export async function benchScale(opts: { quick?: boolean } = {}): Promise<ScaleResult> {
  if (process.getuid?.() !== 0) throw new Error('the scale benchmark installs uprobes and chroots: run it as root');
  const quick = Boolean(opts.quick);
  const processCounts = quick ? [0, 100, 1000] : [0, 100, 1000, 5000];
  const rootCounts = quick ? [1, 5] : [1, 5, 20];
  const steadyMs = quick ? 3000 : 10_000;

  const dir = benchTmpDir('soload-scale-');
  const bin = path.join(dir, 'bin');
  const lib = path.join(dir, 'lib');
  fs.mkdirSync(bin);
  fs.mkdirSync(lib);
  const libs = Array.from({ length: LIBS }, (_, i) =>
    compileC('scalelib.c', path.join(lib, `libsoloadscale${i}.so`), ['-shared', '-fPIC', `-DIDX=${i}`, `-Wl,-soname,libsoloadscale${i}.so`]),
  );
  const sleeper = compileC('sleeper.c', path.join(bin, 'sleeper'), [`-L${lib}`, ...libs.map((_, i) => `-lsoloadscale${i}`), "-Wl,-rpath,$ORIGIN/../lib"]);
  const spawner = compileC('spawner.c', path.join(bin, 'spawner'));

  let current: Group | undefined;
  let perProcessObjects = LIBS + 2; // the libraries, libc, ld.so: replaced by what a real sleeper maps
  const counts = new Map<number, number>();
  let lastOurs = 0;
  let delivery: DeliveryPath | undefined;
  const rows: ScaleRow[] = [];
  try {
    delivery = await startDeliveryPath({
      logKeys: ['process.pid'],
      onLog(rec, arrival) {
        const pid = Number(rec.attrs['process.pid']);
        if (!current?.pids.has(pid)) return;
        counts.set(pid, (counts.get(pid) ?? 0) + 1);
        lastOurs = arrival;
      },
    });
    const endpoint = delivery.logsEndpoint;

    const measure = async (kind: ScaleRow['kind'], n: number, group: Group, spawnMs: number, rootsDir?: string): Promise<ScaleRow> => {
      counts.clear();
      lastOurs = 0;
      current = group;
      const notes: string[] = [];
      let soload: SoloadProcess | undefined;
      try {
        const t0 = nowMs();
        soload = await startSoload({ otel: { exporters: ['otlp'], endpoint }, capture: { snapshot: true } }, { readyTimeoutMs: 120_000, env: DEFAULT_RESOURCE_MODE });
        const readyAt = nowMs();
        const pid = soload.pid;
        const cpuReady = cpuMs(pid);
        const rssReady = memoryMiB(pid).rss;
        const probesAtReady = probesOf(pid).length;
        // Every snapshot record of our processes at the Collector (or nothing new for 2 s, at most 60 s)
        const expected = group.pids.size * perProcessObjects;
        let last = -1;
        let since = nowMs();
        for (const deadline = nowMs() + 60_000; nowMs() < deadline; ) {
          const got = [...counts.values()].reduce((a, b) => a + b, 0);
          if (got >= expected) break;
          if (got !== last) {
            last = got;
            since = nowMs();
          } else if (nowMs() - since > 2000) break;
          await sleep(100);
        }
        await sleep(Math.max(0, 1000 - (nowMs() - readyAt)));
        const probeLines = probesOf(pid);
        const fileOf = (l: string) => l.split(/\s+/)[1]!.replace(/:0x[0-9a-f]+$/, '');
        const files = new Set(probeLines.map(fileOf));
        const inOurRoots = (f: string) => rootsDir !== undefined && f.startsWith(rootsDir + '/');
        const c0 = cpuMs(pid);
        const r0 = delivery!.sink.logRecords;
        const s0 = nowMs();
        await sleep(steadyMs);
        const c1 = cpuMs(pid);
        const s1 = nowMs();
        const windowRecords = delivery!.sink.logRecords - r0;
        const mem = memoryMiB(pid);
        const per = group.pids.size ? [...group.pids].map((p) => counts.get(p) ?? 0) : [0];
        const snap = /snapshot: reported (\d+) objects/.exec(soload.stderr());
        const probesAtStop = probesOf(pid).length;
        // Removing uprobes is slow on some kernels (~0.1 s each measured here): give it time, and say how long
        const q0 = nowMs();
        const code = await soload.stop('SIGINT', 180_000);
        const stopMs = nowMs() - q0;
        if (code !== 130) notes.push(`soload exited ${code} after SIGINT; its last words: ${soload.stderr().trim().split('\n').slice(-2).join(' / ').slice(0, 300)}`);
        if (process.env.SOLOAD_BENCH_DEBUG) console.error(`--- soload ${kind} ${n} stderr:\n${soload.stderr()}`);
        const left = leftoversOf(pid);
        const clean = left.probes === 0 && !left.instance;
        if (!clean) notes.push(`LEFTOVERS: ${left.probes} probes, instance ${left.instance}`);
        const warn = soload.stderr().split('\n').filter((l) => /soload: (warn|error)/.test(l));
        if (warn.length) notes.push(`${warn.length} warnings, first: ${warn[0]!.replace(/^soload: /, '').slice(0, 160)}`);
        return {
          kind,
          n,
          spawnMs,
          readyMs: readyAt - t0,
          cpuToReadyMs: cpuReady,
          rssReadyMiB: rssReady,
          peakRssMiB: mem.hwm,
          ...(snap ? { snapshotObjects: Number(snap[1]) } : {}),
          ourRecords: per.reduce((a, b) => a + b, 0),
          perProcessMin: Math.min(...per),
          perProcessMax: Math.max(...per),
          deliveredMs: lastOurs > readyAt ? lastOurs - readyAt : 0,
          probesAtReady,
          probes: probeLines.length,
          probesAtStop,
          probedFiles: files.size,
          ourRootProbes: probeLines.filter((l) => inOurRoots(fileOf(l))).length,
          ourRootFiles: [...files].filter(inOurRoots).length,
          idleCpuPct: ((c1 - c0) / (s1 - s0)) * 100,
          idleRssMiB: mem.rss,
          windowRecords,
          stopMs,
          clean,
          notes,
        };
      } finally {
        await soload?.stop('SIGKILL');
        current = undefined;
      }
    };

    for (const n of processCounts) {
      const t0 = nowMs();
      const g = n ? await spawnSleepers(spawner, sleeper, n) : { pgids: [], pids: new Set<number>() };
      const spawnMs = nowMs() - t0;
      const one = g.pids.values().next().value;
      if (one !== undefined) perProcessObjects = mappedObjects(one);
      try {
        rows.push(await measure('processes', n, g, spawnMs));
      } finally {
        await killGroup(g);
      }
    }

    const rootsDir = path.join(dir, 'roots');
    for (const n of rootCounts) {
      const roots = Array.from({ length: n }, (_, i) => path.join(rootsDir, `r${n}-${i}`));
      for (const r of roots) makeRoot(r, { bin: sleeper, libs });
      const t0 = nowMs();
      const g = await spawnInRoots(roots);
      const spawnMs = nowMs() - t0;
      try {
        rows.push(await measure('roots', n, g, spawnMs, rootsDir));
      } finally {
        await killGroup(g);
        for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
      }
    }
  } finally {
    if (current) await killGroup(current);
    await delivery?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return { rows, table: formatTable(rows, steadyMs) };
}

function formatTable(rows: ScaleRow[], steadyMs: number): string {
  const head = [
    'host',
    'spawn',
    'ready',
    'CPU to ready',
    'RSS ready',
    'peak RSS',
    'snapshot objects',
    'our records (per process)',
    'delivered',
    'probes (ready → +1 s → stop)',
    'probed files',
    'ours: probes / loaders',
    `idle CPU (${steadyMs / 1000} s)`,
    'idle RSS',
    'records meanwhile',
    'stop (SIGINT → exit)',
    'clean exit',
    'notes',
  ];
  const ms = (x: number) => (x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : `${Math.round(x)} ms`);
  const body = rows.map((r) => [
    r.kind === 'processes' ? (r.n ? `+${r.n} processes` : 'host only') : `${r.n} root${r.n > 1 ? 's' : ''}`,
    r.n ? ms(r.spawnMs) : '–',
    ms(r.readyMs),
    ms(r.cpuToReadyMs),
    `${r.rssReadyMiB.toFixed(0)} MiB`,
    `${r.peakRssMiB.toFixed(0)} MiB`,
    r.snapshotObjects === undefined ? '–' : String(r.snapshotObjects),
    r.n ? `${r.ourRecords} (${r.perProcessMin === r.perProcessMax ? r.perProcessMin : `${r.perProcessMin}–${r.perProcessMax}`})` : '–',
    r.n ? `+${ms(r.deliveredMs)}` : '–',
    `${r.probesAtReady} → ${r.probes} → ${r.probesAtStop}`,
    String(r.probedFiles),
    r.kind === 'roots' ? `${r.ourRootProbes} / ${r.ourRootFiles}` : '–',
    `${r.idleCpuPct.toFixed(1)} %`,
    `${r.idleRssMiB.toFixed(0)} MiB`,
    String(r.windowRecords),
    ms(r.stopMs),
    r.clean ? 'yes' : 'NO',
    r.notes.join('; '),
  ]);
  const rootRows = rows.filter((r) => r.kind === 'roots');
  const notes: string[] = [
    "ready: soload's node process spawned → `ready` on stderr (after the snapshot and arming every running process's loader); CPU to ready is its whole CPU time by then",
    'delivered: ready → the last snapshot record of the benchmark\'s processes at the Collector',
  ];
  if (rootRows.length) {
    notes.push(
      `ours: probes on files inside the benchmark's roots / loader files probed there (one ld.so + libc.so.6 set per root): ` +
        rootRows.map((r) => `${r.n} root${r.n > 1 ? 's' : ''}: ${(r.ourRootProbes / r.n).toFixed(1)} probes per root`).join(', '),
    );
  }
  notes.push(
    "probes, probed files, records meanwhile count the whole host: on a shared machine other people's processes, chroots and containers are in them",
  );
  return [markdownTable(head, body), '', ...notes.map((n) => `- ${n}`)].join('\n');
}

if (require.main === module) {
  benchScale({ quick: process.argv.includes('--quick') })
    .then((r) => console.log(r.table))
    .catch((err) => {
      console.error(err);
      process.exit(1);
    });
}
