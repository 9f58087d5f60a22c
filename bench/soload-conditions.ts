/**
 * soload itself as benchmark conditions (bench/baselines.ts `Condition`): the real CLI started with
 * a capture mechanism forced by configuration, plus the kernel-floor condition at exactly the
 * places that mechanism probes. Each soload condition also accounts for soload's own CPU over the
 * time it ran, and the loads it reported.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startSoload, type SoloadProcess } from '../test/helpers/soload';
import { DEFAULT_RESOURCE_MODE } from './lib/resource-mode';
import { floorCondition, soloadProbePoints, type Condition, type ProbePoint } from './baselines';

/** A capture mechanism soload can pick, and the configuration that makes it pick it on this host. */
export interface MechanismSetup {
  /** Condition name in the tables, e.g. `soload, loader probe`. */
  name: string;
  mechanism: 'loader-lists' | 'loader-probe' | 'search-lists' | 'musl-lists';
  config: object;
}

/**
 * The text soload's start-up line must contain for `setup`: the host's glibc set (the glibc
 * mechanisms) or the host's musl set (`musl-lists`) with that mechanism.
 */
export function expectedMechanismLine(setup: MechanismSetup): string {
  return setup.mechanism === 'musl-lists' ? 'x86_64-linux-musl: musl-lists' : `x86_64-linux-gnu: ${setup.mechanism}`;
}

/**
 * The glibc mechanisms soload can pick on this host: with the distribution's debug symbols (the
 * default loader-lists, and the per-object probe it can be told to use), and with them hidden.
 */
export function mechanismSetups(): MechanismSetup[] {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-bench-nodebug-'));
  const capture = { snapshot: false };
  const base = { otel: { exporters: ['none'] }, capture, debuginfod: { enabled: false } };
  return [
    { name: 'soload, loader lists', mechanism: 'loader-lists', config: base },
    { name: 'soload, per-object probe', mechanism: 'loader-probe', config: { ...base, capture: { ...capture, perObjectProbe: true } } },
    { name: 'soload, search lists', mechanism: 'search-lists', config: { ...base, debugRoot: empty } },
  ];
}

/** soload's CPU (utime+stime, ms) from /proc. */
function cpuMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

/** What one soload condition used over all the rounds it ran. */
export interface SoloadUsage {
  cpuMs: number;
  loads: number;
  /** The mechanism each loader set got, from soload's start-up line. */
  mechanisms: string;
}

/** The mechanism per loader set from soload's start-up line ("tracing N probes in group …; <this>"). */
export function startupMechanisms(stderr: string): string {
  return /tracing \d+ probes in group \S+ \(instance \S+\); (.*)/.exec(stderr)?.[1] ?? '';
}

/**
 * soload as a condition: started (and ready: probes installed) for every round, stopped with
 * SIGINT after it. With a `mechanism`, throws when soload picked another one, so a row never
 * measures something else than its name says; without one (the kernel matrix), soload picks and
 * `usage.mechanisms` says what it picked.
 */
export function soloadCondition(setup: Omit<MechanismSetup, 'mechanism'> & { mechanism?: MechanismSetup['mechanism'] }, usage: SoloadUsage): Condition {
  let running: SoloadProcess | undefined;
  let cpu0 = 0;
  return {
    name: setup.name,
    async start() {
      running = await startSoload(setup.config, { readyTimeoutMs: 120_000, env: DEFAULT_RESOURCE_MODE });
      const line = startupMechanisms(running.stderr());
      usage.mechanisms = line;
      const mechanism = setup.mechanism;
      if (mechanism && !line.includes(expectedMechanismLine({ ...setup, mechanism }))) {
        await running.stop('SIGINT');
        running = undefined;
        const libc = setup.mechanism === 'musl-lists' ? 'musl' : 'glibc';
        throw new Error(`${setup.name}: soload did not pick ${setup.mechanism} for the host's ${libc} (${line || 'no tracing line'})`);
      }
      cpu0 = cpuMs(running.pid);
    },
    async stop() {
      const s = running;
      running = undefined;
      if (!s) return;
      usage.cpuMs += cpuMs(s.pid) - cpu0;
      const code = await s.stop('SIGINT');
      const loads = /stats: loads (\d+)/.exec(s.stderr());
      usage.loads += Number(loads?.[1] ?? 0);
      if (code !== 130) throw new Error(`${setup.name}: soload exited ${code}:\n${s.stderr().slice(-2000)}`);
    },
  };
}

/**
 * The places `setup`'s soload probes on this host (started once, read from uprobe_events, stopped):
 * the kernel floor for that mechanism is a fetch-less probe on each.
 */
export async function probePointsOf(setup: MechanismSetup): Promise<ProbePoint[]> {
  const s = await startSoload(setup.config, { readyTimeoutMs: 120_000, env: DEFAULT_RESOURCE_MODE });
  try {
    return soloadProbePoints(s.pid);
  } finally {
    await s.stop('SIGINT');
  }
}

/** The kernel-floor condition for a mechanism's probe places. */
export function floorFor(setup: MechanismSetup, points: ProbePoint[]): Condition {
  const c = floorCondition(points);
  return { name: `kernel floor (${setup.mechanism} places)`, start: () => c.start(), stop: () => c.stop() };
}
