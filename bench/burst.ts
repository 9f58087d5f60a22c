/**
 * Ring-buffer sizing (issue #13, kernel pressure): how many loads soload's instance absorbs while
 * soload does not read (a paused, CPU-starved or busy agent), per tracefs.bufferSizeKb, and what
 * that costs in kernel memory — the measurement behind the default.
 *
 * 1. Bytes per load: soload runs with a buffer far larger than the burst and is stopped
 *    (SIGSTOP); a burst of short-lived processes each dlopen()ing one library (fork, dlopen,
 *    exit: every event soload's probes and tracepoints write for such a load) fills the ring; per_cpu stats `bytes`/`entries` ÷ loads is the footprint of one load.
 * 2. For each size: capacity = size × CPUs ÷ bytes per load, then two bursts with soload stopped,
 *    at 0.6× and 1.6× that capacity: the first must lose nothing, the second must lose (the
 *    counters say how much). Stall tolerance = capacity ÷ rate at 1k and 5k loads/s (5k/s is the
 *    sustained bench's lossless rate).
 *
 * Run alone: `node dist/bench/burst.js [--quick]` (root).
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { FIXTURES_C, gcc, startSoload } from '../test/helpers/soload';
import { benchTmpDir, markdownTable, ringStats, sleep } from './lib/measure';

export interface BurstRow {
  bufferSizeKb: number;
  capacityLoads: number;
  underLoads: number;
  underLost: number;
  overLoads: number;
  overLost: number;
}

export interface BurstResult {
  bytesPerLoad: number;
  eventsPerLoad: number;
  rows: BurstRow[];
  table: string;
}

/** Runs loadgen for `loads` short-lived dlopen()ing processes as fast as it can. */
function burst(loadgen: string, lib: string, loads: number): number {
  const rate = 2000;
  const r = spawnSync(loadgen, [String(loads / rate), String(rate), lib], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`loadgen failed: ${r.stderr}`);
  return Number(/loads (\d+)/.exec(r.stdout)?.[1] ?? loads);
}

async function withStoppedSoload<T>(bufferSizeKb: number, f: (instance: string) => T): Promise<T> {
  const s = await startSoload({ tracefs: { bufferSizeKb }, otel: { exporters: ['none'] }, log: { statsIntervalMs: 0 }, security: { enabled: false } });
  try {
    await sleep(300);
    process.kill(s.pid, 'SIGSTOP');
    try {
      return f(`soload_${s.pid}`);
    } finally {
      process.kill(s.pid, 'SIGCONT');
    }
  } finally {
    await s.stop('SIGTERM', 60_000);
  }
}

export async function benchBurst(opts: { quick?: boolean } = {}): Promise<BurstResult> {
  const dir = benchTmpDir('soload-burst-');
  const lib = path.join(dir, 'libplug.so');
  const loadgen = path.join(dir, 'loadgen');
  gcc(['-shared', '-fPIC', '-o', lib, path.join(FIXTURES_C, 'plug.c')]);
  gcc(['-O2', '-o', loadgen, path.join(FIXTURES_C, 'loadgen.c'), '-ldl']);
  const cpus = os.cpus().length;

  const probeLoads = opts.quick ? 300 : 1000;
  const footprint = await withStoppedSoload(65536, (inst) => {
    const before = ringStats(inst);
    const loads = burst(loadgen, lib, probeLoads);
    const after = ringStats(inst);
    if (after.overrun > before.overrun) throw new Error('the footprint burst overran a 64 MiB buffer');
    // `bytes` is not in RingStats: read it here from the same files.
    const bytes = Number(spawnSync('sh', ['-c', `cat /sys/kernel/tracing/instances/${inst}/per_cpu/cpu*/stats | awk '/^bytes:/{s+=$2} END{print s}'`], { encoding: 'utf8' }).stdout.trim());
    return { bytesPerLoad: bytes / loads, eventsPerLoad: (after.entries - before.entries) / loads };
  });

  const sizes = opts.quick ? [1024] : [1024, 4096, 16384];
  const rows: BurstRow[] = [];
  for (const kb of sizes) {
    const capacityLoads = Math.floor((kb * 1024 * cpus) / footprint.bytesPerLoad);
    const run = async (factor: number) =>
      withStoppedSoload(kb, (inst) => {
        const before = ringStats(inst);
        const loads = burst(loadgen, lib, Math.ceil(capacityLoads * factor));
        const after = ringStats(inst);
        return { loads, lost: after.overrun - before.overrun + (after.droppedEvents - before.droppedEvents) };
      });
    const under = await run(0.6);
    const over = await run(1.6);
    rows.push({ bufferSizeKb: kb, capacityLoads, underLoads: under.loads, underLost: under.lost, overLoads: over.loads, overLost: over.lost });
  }
  const table = [
    `One load (a short-lived process: fork, dlopen, exit) writes ${footprint.eventsPerLoad.toFixed(1)} events, ${footprint.bytesPerLoad.toFixed(0)} bytes into soload's ring buffer; ${cpus} CPUs.`,
    '',
    markdownTable(
      ['tracefs.bufferSizeKb', 'kernel memory', 'loads absorbed while soload is stopped', 'stall tolerated at 1k loads/s', 'at 5k loads/s', 'burst 0.6× capacity: lost events', 'burst 1.6× capacity: lost events'],
      rows.map((r) => [
        `${r.bufferSizeKb}`,
        `${((r.bufferSizeKb * cpus) / 1024).toFixed(0)} MiB`,
        r.capacityLoads.toLocaleString('en'),
        `${(r.capacityLoads / 1000).toFixed(1)} s`,
        `${(r.capacityLoads / 5000).toFixed(1)} s`,
        `${r.underLost} events (${r.underLoads.toLocaleString('en')} loads made)`,
        `${r.overLost} events ≈ ${Math.round(r.overLost / footprint.eventsPerLoad).toLocaleString('en')} loads (${r.overLoads.toLocaleString('en')} made)`,
      ]),
    ),
  ].join('\n');
  return { ...footprint, rows, table };
}

if (require.main === module) {
  benchBurst({ quick: process.argv.includes('--quick') })
    .then((r) => console.log(r.table))
    .catch((err: Error) => {
      console.error(err.stack);
      process.exit(1);
    });
}
