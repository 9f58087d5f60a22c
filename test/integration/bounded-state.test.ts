/**
 * Bounded state on the live kernel: 5,000 short-lived processes end inside dlopen (the library's
 * constructor SIGKILLs the process, or ends the calling thread alone), so the dlopen entry probe
 * fires and the return never does. Afterwards every per-process and per-thread structure soload
 * keeps is back at its size before the burst (± a handful), the heap after a forced GC is within
 * 5 MiB of it, each process's unfinished dlopen was reported (soload.result=incomplete), and
 * nothing is left in tracefs. Sizes and heap come from soload's debug state view (state.debug:
 * one JSON line on stderr per SIGUSR2).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES_C, gcc, requireLiveKernel, soloadLeftovers, startSoload, tmpDir, type SoloadProcess } from '../helpers/soload';

interface StateReport {
  'soload.state': Record<string, number>;
  memory: NodeJS.MemoryUsage;
  dlopenIncomplete: number;
  sweptGone: number;
  /** The host's live threads when the report was read (added by the test). */
  tasks?: number[];
}

const TOTAL = 5000;
/** One process in THREAD_EVERY ends only its dlopen thread (the rest SIGKILL themselves). */
const THREAD_EVERY = 5;
const CONCURRENCY = 12;
const HOUSEKEEPING_MS = 500;
const DLOPEN_MAX_AGE_MS = 3000;
/** Entries a structure may differ from its baseline by (other processes on the host come and go). */
const HANDFUL = 8;
const HEAP_MARGIN = 5 * 1024 * 1024;

let dir: string;
let lib: string;
let prog: string;
let soload: SoloadProcess;
let reportsRead = 0;

before(async () => {
  requireLiveKernel();
  dir = tmpDir();
  lib = path.join(dir, 'libmidlopen.so');
  prog = path.join(dir, 'midlopen');
  gcc(['-shared', '-fPIC', '-DMIDLOPEN_LIB', '-o', lib, path.join(FIXTURES_C, 'midlopen.c')]);
  gcc(['-o', prog, path.join(FIXTURES_C, 'midlopen.c'), '-ldl', '-lpthread']);
  const stateDir = tmpDir('soload-state-');
  soload = await startSoload({
    otel: { exporters: ['console'], batch: { scheduledDelayMs: 100 } },
    filters: { comms: ['midlopen'] },
    security: { stateDir },
    state: { housekeepingIntervalMs: HOUSEKEEPING_MS, dlopenMaxAgeMs: DLOPEN_MAX_AGE_MS, exitedGraceMs: 1000, debug: true },
    log: { statsIntervalMs: 0 },
  });
});

after(async () => {
  const code = await soload?.stop('SIGTERM');
  assert.equal(code, 143, `soload exit code after SIGTERM; stderr:\n${soload?.stderr().slice(-4000)}`);
  // Other soloads (other suites on this host) may be running: only this one's group and instance count.
  const left = soloadLeftovers();
  const mine = (name: string) => name === `soload_${soload.pid}` || name.includes(`:soload_${soload.pid}/`);
  assert.deepEqual({ probes: left.probes.filter(mine), instances: left.instances.filter(mine) }, { probes: [], instances: [] }, 'soload left probes or an instance behind');
});

/** Asks soload for its state view and waits for the line. */
async function stateReport(): Promise<StateReport> {
  const want = reportsRead + 1;
  soload.child.kill('SIGUSR2');
  const until = Date.now() + 10_000;
  for (;;) {
    const lines = soload.stderr().split('\n').filter((l) => l.startsWith('{"soload.state"'));
    if (lines.length >= want) {
      reportsRead = lines.length;
      return { ...(JSON.parse(lines[want - 1]!) as StateReport), tasks: hostTasks() };
    }
    if (Date.now() > until) throw new Error(`no state report on SIGUSR2 within 10 s; stderr:\n${soload.stderr().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Runs one midlopen process to its end; resolves with its pid and how it ended. */
function runOne(mode: 'kill' | 'thread', holdMs = 20): Promise<{ pid: number; code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(prog, [lib], { env: { MIDLOPEN_MODE: mode, MIDLOPEN_HOLD_MS: String(holdMs) }, stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ pid: Number(/^(\d+) started/.exec(out)?.[1] ?? child.pid), code, signal }));
  });
}

/** `n` processes, `CONCURRENCY` at a time (spawnSync would block reading soload's pipes). */
async function burst(n: number): Promise<Map<number, 'kill' | 'thread'>> {
  const pids = new Map<number, 'kill' | 'thread'>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const mode = i % THREAD_EVERY === 0 ? 'thread' : 'kill';
      const r = await runOne(mode);
      if (mode === 'kill') assert.equal(r.signal, 'SIGKILL', `process ${r.pid} was to die by SIGKILL inside dlopen`);
      else assert.equal(r.code, 0, `process ${r.pid} (its dlopen thread ended inside dlopen) was to exit 0`);
      pids.set(r.pid, mode);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return pids;
}

/**
 * Per-file and per-root caches (keyed by files, views, loaders): bounded in size, not tied to
 * processes; the host's other programs (other tests running beside this one) add to them.
 */
const PER_FILE = new Set(['security.ldCaches', 'security.preloadFiles', 'security.muslPaths', 'security.dirFacts', 'security.packageRoots', 'registry.loaders', 'registry.interpCache', 'registry.layersSeen', 'neededCache', 'pathCache', 'views', 'resolverEntries']);

/** Ids of every thread on the host now (every task of every process). */
function hostTasks(): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      for (const t of fs.readdirSync(`/proc/${d}/task`)) out.push(Number(t));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/** Threads alive in `now` that did not exist at `base`: other suites' processes soload rightly follows. */
function newLive(base: StateReport, now: StateReport): number {
  const before = new Set(base.tasks ?? []);
  return (now.tasks ?? []).filter((t) => !before.has(t)).length;
}

/**
 * Per-process and per-thread structures whose size is above the baseline by more than a handful
 * plus the host's threads started since the baseline and still alive (other suites run beside
 * this one; a leak of the burst's 5,000 processes is three orders of magnitude above that).
 */
function grown(base: StateReport, now: StateReport): string[] {
  const slack = HANDFUL + newLive(base, now);
  return Object.entries(now['soload.state'])
    .filter(([k, v]) => !PER_FILE.has(k) && v > (base['soload.state'][k] ?? 0) + slack)
    .map(([k, v]) => `${k}: ${base['soload.state'][k] ?? 0} → ${v}`);
}

/** Polls the state view until nothing has grown (or `timeoutMs` passes); returns the last report. */
async function settle(base: StateReport, timeoutMs: number): Promise<StateReport> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await stateReport();
    if (grown(base, r).length === 0 || Date.now() > until) return r;
    await new Promise((res) => setTimeout(res, HOUSEKEEPING_MS));
  }
}

const incompleteOf = (pid: number) => (r: { attributes: Record<string, unknown> }) => r.attributes['process.pid'] === pid && r.attributes['soload.result'] === 'incomplete';

test('5,000 processes that end inside dlopen: state returns to its baseline, each unfinished dlopen is reported incomplete', async () => {
  // Warm-up: the host libraries' caches (ELF facts, canonical paths, digests, packages) are filled.
  const warm = await burst(50);
  const lastWarm = [...warm.keys()].at(-1)!;
  const dlopenOf = (pid: number) => (r: { attributes: Record<string, unknown> }) => r.attributes['process.pid'] === pid && r.attributes['soload.load.method'] === 'dlopen';
  assert.ok((await soload.waitFor(dlopenOf(lastWarm), 10_000)).length === 1, `no dlopen record for warm-up process ${lastWarm}:\n${soload.stderr().slice(-3000)}`);
  await new Promise((r) => setTimeout(r, 4 * HOUSEKEEPING_MS + 1000));
  await stateReport(); // the first forced GC compacts what start-up left
  const base = await stateReport();

  const t0 = Date.now();
  const pids = await burst(TOTAL);
  const burstMs = Date.now() - t0;
  const during = await stateReport();

  // Threads that died inside dlopen while their process lives on: found by the liveness sweep.
  const holders = Array.from({ length: 10 }, () => runOne('thread', 3 * DLOPEN_MAX_AGE_MS));
  await new Promise((r) => setTimeout(r, 4 * HOUSEKEEPING_MS + 500));
  const withHolders = await stateReport();
  const holderRecs = soload.records.filter((r) => r.attributes['soload.result'] === 'incomplete' && !pids.has(r.attributes['process.pid'] as number) && !warm.has(r.attributes['process.pid'] as number));

  for (const h of await Promise.all(holders)) assert.equal(h.code, 0);
  const after = await settle(base, 20_000);
  console.log(
    `bounded-state: ${TOTAL} processes in ${burstMs} ms; heapUsed baseline ${(base.memory.heapUsed / 1048576).toFixed(1)} MiB, ` +
      `after the burst (no GC wait) ${(during.memory.heapUsed / 1048576).toFixed(1)} MiB, settled ${(after.memory.heapUsed / 1048576).toFixed(1)} MiB; ` +
      `rss ${(base.memory.rss / 1048576).toFixed(1)} → ${(after.memory.rss / 1048576).toFixed(1)} MiB; swept ${after.sweptGone}; host threads started since the baseline and alive ${newLive(base, after)}; ` +
      `sizes during: ${JSON.stringify(during['soload.state'])}`,
  );
  assert.deepEqual(grown(base, after), [], `structures above their baseline after the burst (host threads started since the baseline and alive: ${newLive(base, after)}):\n${JSON.stringify({ base: base['soload.state'], after: after['soload.state'] })}`);
  assert.ok(after.memory.heapUsed <= base.memory.heapUsed + HEAP_MARGIN, `heapUsed after GC ${after.memory.heapUsed} > baseline ${base.memory.heapUsed} + 5 MiB`);
  // The holders' dead dlopen threads were freed while the processes were still alive.
  assert.ok(withHolders['soload.state']['handlers.dlopenThreads']! <= base['soload.state']['handlers.dlopenThreads']! + HANDFUL, `dlopen threads of live processes not freed: ${JSON.stringify(withHolders['soload.state'])}`);
  if (!/: loader-probe\b/.test(soload.stderr())) assert.equal(holderRecs.length, 10, `incomplete records of the 10 live processes whose dlopen thread died: ${holderRecs.length}`);

  // Every process's dlopen that never returned was reported, with the name it asked for: as
  // `incomplete`, or — with the per-object probe, which reports the object when ld.so adds it,
  // before its constructor runs — as the ok load of the library.
  const perObject = /: loader-probe\b/.test(soload.stderr());
  const missing: number[] = [];
  for (const pid of pids.keys()) {
    const recs = soload.records.filter(perObject ? dlopenOf(pid) : incompleteOf(pid));
    if (recs.length !== 1) missing.push(pid);
    else {
      assert.equal(recs[0]!.attributes['soload.requested_name'], lib);
      assert.equal(recs[0]!.attributes['soload.load.method'], 'dlopen');
      assert.equal(recs[0]!.attributes['file.path'], perObject ? lib : undefined);
    }
  }
  const detail = missing.slice(0, 5).map((pid) => `${pid} (${pids.get(pid)}): ${JSON.stringify(soload.records.filter((r) => r.attributes['process.pid'] === pid).map((r) => [r.attributes['soload.load.method'], r.attributes['soload.result'], r.attributes['file.path'] ?? r.attributes['soload.requested_name']]))}`);
  const warnings = soload.stderr().split('\n').filter((l) => /soload: (warn|error)/.test(l));
  assert.deepEqual(missing.slice(0, 20), [], `${missing.length} of ${TOTAL} processes without exactly one incomplete dlopen record:\n${detail.join('\n')}\nwarnings:\n${warnings.join('\n')}`);
  if (!perObject) assert.ok(after.dlopenIncomplete >= TOTAL + 50 + 10, `soload counted ${after.dlopenIncomplete} incomplete dlopens`);
});
