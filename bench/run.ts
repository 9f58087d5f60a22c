/**
 * `npm run bench`: what soload costs the processes it watches, as ratios against a baseline measured
 * in the same run (timings on a 2-core VM are noisy; ratios of medians over many runs are not).
 *
 * Workloads (compiled from the recall corpus): a program with 42 DT_NEEDED libraries, a program that
 * dlopens a library with dependencies, and /bin/true. Each is spawned N times, sequentially, under:
 *   baseline        no probes
 *   loader probe    soload with debug symbols (_dl_add_to_namespace_list)
 *   search lists    soload with debug symbols hidden (calibrated l_searchlist probes)
 * and soload's own CPU time per reported load is printed, then the per-record cost of canonical
 * path resolution (bench/paths.ts).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildCorpus, type RunSpec } from '../test/recall/corpus';
import { startSoload } from '../test/helpers/soload';
import { benchPaths } from './paths';

const N = Number(process.env.SOLOAD_BENCH_RUNS ?? 300);

interface Workload {
  name: string;
  spec: RunSpec;
}

function timeRuns(w: Workload, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(w.spec.file, w.spec.args, { env: { ...process.env, ...w.spec.env }, cwd: w.spec.cwd, stdio: 'ignore' });
    const t1 = process.hrtime.bigint();
    if (r.status !== 0) throw new Error(`${w.name} exited ${r.status}`);
    out.push(Number(t1 - t0) / 1e6);
  }
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p90 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)]!;

function cpuTicks(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the benchmark installs uprobes: run it as root');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-bench-'));
  const corpus = await buildCorpus(dir, { only: ['needed-42-libs', 'dlopen-with-deps'], repeat: 1 });
  const truth = path.join(dir, 'truth');
  fs.mkdirSync(truth, { recursive: true });
  const workloads: Workload[] = [
    ...corpus.scenarios.map((s) => ({ name: s.name, spec: s.spec(0, path.join(truth, `${s.name}.txt`)) })),
    { name: 'bin-true', spec: { file: '/bin/true', args: [] } },
  ];
  const emptyDebug = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-bench-nodebug-'));
  const configs: Array<{ name: string; config?: object }> = [
    { name: 'baseline' },
    { name: 'loader probe', config: {} },
    { name: 'search lists', config: { debugRoot: emptyDebug } },
  ];
  const hz = 100; // USER_HZ on Linux
  const rows: string[][] = [];
  const base = new Map<string, number>();
  for (const c of configs) {
    const soload = c.config
      ? await startSoload({ otel: { exporters: ['none'] }, capture: { snapshot: false, reportExecutable: true }, ...c.config }, { readyTimeoutMs: 60_000 })
      : undefined;
    const cpu0 = soload ? cpuTicks(soload.pid) : 0;
    for (const w of workloads) {
      timeRuns(w, 20); // warm caches
      const ts = timeRuns(w, N);
      const m = median(ts);
      if (!soload) base.set(w.name, m);
      const ratio = m / base.get(w.name)!;
      rows.push([c.name, w.name, m.toFixed(2), p90(ts).toFixed(2), ratio.toFixed(3)]);
    }
    if (soload) {
      const ticks = cpuTicks(soload.pid) - cpu0;
      const stop = await soload.stop('SIGINT');
      const stats = /stats: loads (\d+)/.exec(soload.stderr());
      const loads = Number(stats?.[1] ?? 0);
      rows.push([c.name, '(soload CPU)', `${((ticks / hz) * 1000).toFixed(0)} ms`, `${loads} loads`, loads ? `${(((ticks / hz) * 1e6) / loads).toFixed(1)} µs/load` : '-']);
      if (stop !== 130) throw new Error(`soload exited ${stop}`);
    }
  }
  const head = ['config', 'workload', 'median ms', 'p90 ms', 'ratio vs baseline'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(`soload bench: ${N} spawns per workload and config, ${os.cpus().length} CPUs, kernel ${os.release()}`);
  console.log(fmt(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(fmt(r));
  console.log('\nper-record cost of canonical path resolution (file.path as /proc/<pid>/maps names it):');
  for (const r of benchPaths()) console.log(`  ${r.condition.padEnd(48)} ${String(r.records).padStart(7)} records  ${r.usPerRecord.toFixed(2)} µs/record`);
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
