/**
 * Crash soak: soload is SIGKILLed at random moments of start-up, steady state (under a dlopen
 * workload) and shutdown, cycle after cycle, each next start cleaning what the killed one left.
 *
 * After every start that reaches ready, the only soload state in the kernel is that process's own
 * (every group/instance a dead soload left is gone, and the start's log names what it removed);
 * after the final clean stop there is none at all (uprobe_events, dynamic_events, instances/,
 * events/, set_event, /run/soload). The foreign tracing state (another tool's probes, instance,
 * the top-level buffer's settings) is byte-for-byte what it was before the first cycle.
 *
 * `npm run test:soak` runs 100 cycles (`-- --cycles N --seed S` to change); the integration suite
 * runs a few through {@link runCrashSoak}.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLI, FIXTURES_C, gcc, ROOT, tmpDir, TRACEFS } from '../helpers/soload';
import { diffStates, foreignTracingState, ownTracingTraces } from '../helpers/tracefs-snapshot';

/** Where in soload's life a cycle's SIGKILL lands. */
export type SoakPhase = 'startup' | 'steady' | 'shutdown';

export interface SoakCycle {
  cycle: number;
  phase: SoakPhase;
  delayMs: number;
  pid: number;
  /** soload reached ready before the kill. */
  ready: boolean;
  /** Groups/instances of this process in the kernel right after it died. */
  left: string[];
  /** Groups of dead soloads this start said it removed. */
  cleaned: string[];
  ms: number;
}

export interface SoakResult {
  cycles: SoakCycle[];
  failures: string[];
  /** Cycles that left state for the next start to clean. */
  leftBehind: number;
  totalMs: number;
}

/** A small deterministic PRNG (mulberry32) so a failing seed can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FOREIGN_GROUP = 'soakforeign';
const FOREIGN_INSTANCE = 'soak_foreign';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A deadline for Promise.race that does not keep the process alive once the race is decided. */
const deadline = <T>(ms: number, value: T) => new Promise<T>((r) => setTimeout(() => r(value), ms).unref());

function dlopenOffset(): string {
  const out = spawnSync('readelf', ['-Ws', '--dyn-syms', '/lib/x86_64-linux-gnu/libc.so.6'], { encoding: 'utf8' }).stdout;
  const m = /:\s+([0-9a-f]+)\s+\d+\s+FUNC\s+\w+\s+\w+\s+\d+\s+dlopen@@/.exec(out);
  if (!m) throw new Error('readelf found no dlopen in libc.so.6');
  return `0x${m[1]}`;
}

/** Another tool's state: a uprobe in its own group, enabled in its own instance, with a filter. */
function installForeign(): () => void {
  const ev = path.join(TRACEFS, 'uprobe_events');
  fs.appendFileSync(ev, `p:${FOREIGN_GROUP}/dlopen /lib/x86_64-linux-gnu/libc.so.6:${dlopenOffset()} name=+0(%di):ustring\n`);
  const inst = path.join(TRACEFS, 'instances', FOREIGN_INSTANCE);
  fs.mkdirSync(inst, { recursive: true });
  fs.writeFileSync(path.join(inst, 'buffer_size_kb'), '64');
  fs.writeFileSync(path.join(inst, 'events', FOREIGN_GROUP, 'dlopen', 'filter'), 'common_pid != 1');
  fs.writeFileSync(path.join(inst, 'events', FOREIGN_GROUP, 'dlopen', 'enable'), '1');
  return () => {
    try {
      fs.writeFileSync(path.join(inst, 'events', FOREIGN_GROUP, 'dlopen', 'enable'), '0');
      fs.rmdirSync(inst);
    } catch {
      /* reported by the final comparison */
    }
    try {
      fs.appendFileSync(ev, `-:${FOREIGN_GROUP}/dlopen\n`);
    } catch {
      /* idem */
    }
  };
}

interface Running {
  child: ChildProcess;
  exited: Promise<number | string>;
  stderr(): string;
  isReady(): boolean;
  readyAt: Promise<boolean>;
}

function launch(cfgFile: string): Running {
  const child = spawn(process.execPath, [CLI, 'run', '--config', cfgFile], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  let ready = false;
  // 'close', not 'exit': the last stderr chunks (the cleanup log line) may arrive after 'exit'.
  const exited = new Promise<number | string>((r) => child.on('close', (code, sig) => r(code ?? sig ?? -1)));
  const readyAt = new Promise<boolean>((resolve) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString('utf8');
      if (!ready && /soload: info: ready/.test(err)) {
        ready = true;
        resolve(true);
      }
    });
    void exited.then(() => resolve(false));
  });
  return { child, exited, stderr: () => err, isReady: () => ready, readyAt };
}

/** A dlopen workload running until stopped: real processes dlopening a real library. */
function workload(prog: string, lib: string): () => Promise<void> {
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      await new Promise<void>((r) => {
        const c = spawn(prog, [lib], { stdio: 'ignore', env: { ...process.env, SOLOAD_TEST_LINGER_MS: '0' } });
        c.on('exit', () => r());
        c.on('error', () => r());
      });
      await sleep(5);
    }
  })();
  return async () => {
    stop = true;
    await loop;
  };
}

/** Groups and instances of `pid` in the kernel now. */
function stateOf(pid: number): string[] {
  return ownTracingTraces().filter((t) => Number(/soload_(\d+)/.exec(t)?.[1]) === pid);
}

/**
 * Runs `cycles` kill cycles and a final clean stop; never throws for a soload misbehaviour, it
 * lists it in `failures` (a harness error still throws).
 */
export async function runCrashSoak(opts: { cycles: number; seed?: number; log?: (m: string) => void }): Promise<SoakResult> {
  const log = opts.log ?? (() => undefined);
  const rnd = prng(opts.seed ?? 1);
  const failures: string[] = [];
  const started = Date.now();
  const dir = tmpDir('soload-soak-');
  const lib = path.join(dir, 'libplug.so');
  const prog = path.join(dir, 'dlopener');
  gcc(['-shared', '-fPIC', '-o', lib, path.join(FIXTURES_C, 'plug.c')]);
  gcc(['-o', prog, path.join(FIXTURES_C, 'dlopener.c'), '-ldl']);
  const cfgFile = path.join(dir, 'config.json');
  // The state directory is the soak's own, so first-seen state files are checked too.
  const stateDir = path.join(dir, 'state');
  fs.writeFileSync(cfgFile, JSON.stringify({ otel: { exporters: ['none'] }, log: { statsIntervalMs: 0 }, security: { stateDir } }));

  // Other soloads may be running on the host (they are left alone, and so is their state); state of
  // dead ones would be cleaned by the first start without this soak knowing whose it was.
  const pidOf = (t: string) => Number(/soload_(\d+)/.exec(t)?.[1] ?? 0);
  const alive = (pid: number) => fs.existsSync(`/proc/${pid}`);
  const mine = new Set<number>();
  const ours = () => ownTracingTraces().filter((t) => mine.has(pidOf(t)) || !alive(pidOf(t)));
  const stale = ours();
  if (stale.length) throw new Error(`state of a dead soload present before the soak (start and stop soload once to clean it): ${stale.join(', ')}`);
  const removeForeign = installForeign();
  const foreignBefore = foreignTracingState();
  const cycles: SoakCycle[] = [];
  /** Groups left by killed soloads and not yet seen removed. */
  const pending = new Set<string>();
  try {
    for (let i = 0; i < opts.cycles; i++) {
      const t0 = Date.now();
      const phase: SoakPhase = (['startup', 'steady', 'shutdown'] as const)[Math.floor(rnd() * 3)]!;
      const s = launch(cfgFile);
      const pid = s.child.pid!;
      mine.add(pid);
      let delayMs = 0;
      let stopWork: (() => Promise<void>) | undefined;
      if (phase === 'startup') {
        // Start-up takes ~0.5-1.5 s here: a kill anywhere from exec to just after ready.
        delayMs = Math.floor(rnd() * 1500);
        await Promise.race([sleep(delayMs), s.exited]);
      } else {
        const ready = await Promise.race([s.readyAt, deadline(30_000, false)]);
        if (!ready) failures.push(`cycle ${i}: soload ${pid} not ready within 30 s:\n${s.stderr()}`);
        if (phase === 'steady') {
          stopWork = workload(prog, lib);
          delayMs = Math.floor(rnd() * 800);
          await sleep(delayMs);
        } else {
          // Shutdown removes ~50 probes at ~50 ms each in the kernel: a kill anywhere in it.
          s.child.kill('SIGTERM');
          delayMs = Math.floor(rnd() * 3000);
          await Promise.race([sleep(delayMs), s.exited]);
        }
      }
      const ready = s.isReady();
      s.child.kill('SIGKILL');
      const code = await s.exited;
      await stopWork?.();
      const left = stateOf(pid);
      for (const l of left) if (l.startsWith('uprobe_events: ') || l.startsWith('instances/')) pending.add(`soload_${pid}`);
      const cleaned = [...s.stderr().matchAll(/removing state left by a soload that died: groups \[([^\]]*)\], instances \[([^\]]*)\]/g)].flatMap((m) =>
        [m[1]!, m[2]!].flatMap((x) => x.split(', ').filter(Boolean)),
      );
      for (const c of cleaned) pending.delete(c);
      if (ready) {
        // A start that reached ready had run its cleanup: nothing of an earlier soload may remain.
        for (const p of [...pending]) {
          const pidOf = Number(p.slice('soload_'.length));
          if (pidOf !== pid && stateOf(pidOf).length === 0) {
            failures.push(`cycle ${i}: ${p} was removed by soload ${pid} without a log line naming it`);
            pending.delete(p);
          }
        }
      }
      if (/\b(TypeError|RangeError|ReferenceError|SyntaxError)\b|uncaught|SOLOAD_ERR_INTERNAL/.test(s.stderr())) {
        failures.push(`cycle ${i} (${phase}, ${delayMs} ms): soload ${pid} printed an internal error:\n${s.stderr()}`);
      }
      cycles.push({ cycle: i, phase, delayMs, pid, ready, left, cleaned, ms: Date.now() - t0 });
      log(`cycle ${i}: ${phase} +${delayMs} ms, pid ${pid}, ${ready ? 'ready' : 'not ready'}, exit ${code}, left ${left.length}, cleaned [${cleaned.join(' ')}], ${Date.now() - t0} ms`);
    }

    // The final run: a clean start must clean whatever the last kill left and log it, and a clean
    // stop must leave nothing.
    const last = launch(cfgFile);
    mine.add(last.child.pid!);
    const ok = await Promise.race([last.readyAt, deadline(60_000, false)]);
    if (!ok) failures.push(`final start not ready:\n${last.stderr()}`);
    const others = ours().filter((t) => pidOf(t) !== last.child.pid);
    if (others.length) failures.push(`after the final start, state of dead soloads remains: ${others.join(', ')}`);
    const finalCleaned = [...last.stderr().matchAll(/groups \[([^\]]*)\], instances \[([^\]]*)\]/g)].flatMap((m) => [m[1]!, m[2]!].flatMap((x) => x.split(', ').filter(Boolean)));
    for (const c of finalCleaned) pending.delete(c);
    for (const p of pending) failures.push(`${p} was left by a kill and never named by a cleanup log line`);
    last.child.kill('SIGTERM');
    const code = await Promise.race([last.exited, deadline(60_000, 'timeout')]);
    if (code !== 143) failures.push(`final stop: exit ${code}\n${last.stderr()}`);
    const leftovers = ours();
    if (leftovers.length) failures.push(`after the final clean stop: ${leftovers.join(', ')}`);
    const strays = fs.existsSync(stateDir) ? fs.readdirSync(stateDir).filter((f) => f.endsWith('.tmp')) : [];
    if (strays.length > 1) failures.push(`state directory holds stray temporary files: ${strays.join(', ')}`);
  } finally {
    const diff = diffStates(foreignBefore, foreignTracingState());
    if (diff.length) failures.push(`foreign tracing state changed:\n${diff.join('\n')}`);
    removeForeign();
  }
  return { cycles, failures, leftBehind: cycles.filter((c) => c.left.length > 0).length, totalMs: Date.now() - started };
}

function summary(r: SoakResult): string {
  const by = (p: SoakPhase) => r.cycles.filter((c) => c.phase === p);
  const ms = r.cycles.map((c) => c.ms).sort((a, b) => a - b);
  return [
    `crash soak: ${r.cycles.length} cycles in ${(r.totalMs / 1000).toFixed(1)} s (median ${ms[Math.floor(ms.length / 2)] ?? 0} ms/cycle)`,
    `  kills: start-up ${by('startup').length} (${by('startup').filter((c) => c.ready).length} after ready), steady ${by('steady').length}, shutdown ${by('shutdown').length}`,
    `  cycles that left state for the next start: ${r.leftBehind}; failures: ${r.failures.length}`,
  ].join('\n');
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const num = (name: string, dflt: number) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : dflt;
  };
  const cycles = num('--cycles', 100);
  const seed = num('--seed', Date.now() % 100000);
  console.log(`crash soak: ${cycles} cycles, seed ${seed} (replay with --seed ${seed})`);
  runCrashSoak({ cycles, seed, log: (m) => console.log(m) })
    .then((r) => {
      console.log(summary(r));
      for (const f of r.failures) console.error(`FAIL: ${f}`);
      process.exit(r.failures.length ? 1 : 0);
    })
    .catch((err: Error) => {
      console.error(err.stack);
      process.exit(1);
    });
}

export { summary as soakSummary };
