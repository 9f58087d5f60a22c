/**
 * soload's own CPU per load record, end to end (parse, correlate, canonical path, enrich, encode,
 * export), measured on the real CLI against the live kernel.
 *
 * For each exporter mode (`none`; `otlp` to a real OpenTelemetry Collector, because encoding and
 * sending are part of the cost, in the default process resource mode; `otlp-agent`, the same with
 * soload's agent resource) and each workload, a fresh soload is started, its idle CPU rate is
 * measured for 3 s, the workload is spawned N times, soload is given time to drain what the kernel
 * queued, and its CPU over that window minus the idle rate × the window is divided by the loads it
 * reported (its `stats: loads N` line, printed every 250 ms, read at the instant CPU is sampled).
 * Workloads:
 *   needed-42-libs   the recall corpus program with 40 DT_NEEDED libraries (+ libc, ld.so, itself)
 *   dlopen-200       a program that dlopens 200 distinct small libraries and exits
 *   bin-true         /bin/true: a per-process cost, reported per spawn as well
 *
 * CPU is the sum of /proc/<pid>/task/<tid>/schedstat run time (ns) over soload's threads: USER_HZ
 * ticks are 10 ms, too coarse for a few seconds of work.
 *
 * Run alone: `node dist/bench/own-cpu.js [--quick] [--prof DIR]` (root). --prof runs soload under
 * `node --cpu-prof` and prints the top self-time functions of each profile (bench/cpuprofile.ts).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildCorpus } from '../test/recall/corpus';
import { startCollector, type CollectorHandle } from '../test/helpers/collector';
import { startSoload, type SoloadProcess } from '../test/helpers/soload';
import { DEFAULT_RESOURCE_MODE } from './lib/resource-mode';
import { summarizeCpuProfile, formatProfileSummary } from './cpuprofile';

export interface OwnCpuRow {
  workload: string;
  loads: number;
  cpuMs: number;
  usPerLoad: number;
}

export interface OwnCpuOptions {
  /** Fewer spawns per workload (a smoke run, not a measurement). */
  quick?: boolean;
  /** Merged (deeply) over the bench's soload config. */
  config?: object;
  /** Prefixed to every row's workload name. */
  label?: string;
  /** Exporter modes to measure (default both). */
  exporters?: ExporterMode[];
  /** Workloads to run (default all). */
  workloads?: string[];
  /** Node flags for soload (e.g. --cpu-prof). */
  nodeArgs?: string[];
}

interface Workload {
  name: string;
  file: string;
  args: string[];
  env?: Record<string, string>;
  runs: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** ns of CPU soload's live threads have run (exited threads are not counted: node keeps its pool). */
function cpuNs(pid: number): number {
  let sum = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      sum += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      /* thread exited between readdir and read */
    }
  }
  return sum;
}

/** utime + stime in ns (whole process, exited threads included): a cross-check of cpuNs. */
function tickNs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 1e7;
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)
        ? deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

async function gccParallel(jobs: string[][], width = os.cpus().length): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const args = jobs[next++]!;
      await new Promise<void>((resolve, reject) => {
        const c = spawn('gcc', args, { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        c.stderr.on('data', (d: Buffer) => (err += d.toString()));
        c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`gcc ${args.join(' ')}:\n${err}`))));
      });
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
}

const DLOPEN_MANY_C = `
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  char name[4096];
  int n = atoi(argv[2]);
  for (int i = 0; i < n; i++) {
    snprintf(name, sizeof name, "%s/libd%d.so", argv[1], i);
    if (!dlopen(name, RTLD_NOW)) { fprintf(stderr, "%s\\n", dlerror()); return 1; }
  }
  return 0;
}
`;

/** 200 distinct one-function libraries and the program that dlopens them all. */
async function buildDlopenMany(dir: string, count: number): Promise<{ file: string; args: string[] }> {
  const libDir = path.join(dir, 'dl');
  fs.mkdirSync(libDir, { recursive: true });
  const jobs: string[][] = [];
  for (let i = 0; i < count; i++) {
    const src = path.join(libDir, `d${i}.c`);
    fs.writeFileSync(src, `int d${i}_fn(void) { return ${i}; }\n`);
    jobs.push(['-shared', '-fPIC', '-O1', '-o', path.join(libDir, `libd${i}.so`), src]);
  }
  const prog = path.join(dir, 'dlopen-many');
  fs.writeFileSync(`${prog}.c`, DLOPEN_MANY_C);
  jobs.push(['-O1', '-o', prog, `${prog}.c`, '-ldl']);
  await gccParallel(jobs);
  return { file: prog, args: [libDir, String(count)] };
}

/** Waits until soload has used no more than its idle rate (+1 ms) for `quietMs`, at most 60 s. */
async function settle(pid: number, idleNsPerMs: number, quietMs: number): Promise<void> {
  const until = Date.now() + 60_000;
  let last = cpuNs(pid);
  let lastAt = Date.now();
  let quietSince = Date.now();
  while (Date.now() < until) {
    await sleep(100);
    const now = Date.now();
    const c = cpuNs(pid);
    if (c - last > idleNsPerMs * (now - lastAt) + 1e6) quietSince = now;
    last = c;
    lastAt = now;
    if (now - quietSince >= quietMs) return;
  }
}

function runWorkload(w: Workload): void {
  for (let i = 0; i < w.runs; i++) {
    const r = spawnSync(w.file, w.args, { env: { ...process.env, ...w.env }, stdio: 'ignore' });
    if (r.status !== 0) throw new Error(`${w.name} exited ${r.status ?? r.signal}`);
  }
}

interface Measured {
  row: OwnCpuRow;
  spawns: number;
  idleUsPerS: number;
  tickCpuMs: number;
  exported?: number;
  /** soload's pid and the workload's span on the monotonic clock V8's profiler stamps samples with. */
  window: { pid: number; fromUs: number; toUs: number };
}

interface Sample {
  at: number;
  cpuNs: number;
  tickNs: number;
  loads: number;
  exported?: number;
}

/** Waits for soload's next stats line and samples its CPU at once: both counters at one instant. */
async function sample(soload: SoloadProcess): Promise<Sample> {
  const seen = soload.stderr().length;
  // arming a loader met in another root (a container started meanwhile) can hold soload's event
  // loop for seconds of calibration
  const until = Date.now() + 120_000;
  for (;;) {
    const tail = soload.stderr().slice(seen);
    const nl = tail.lastIndexOf('\n');
    const line = tail.slice(0, nl + 1).split('\n').filter((l) => l.includes('stats: loads ')).pop();
    if (line) {
      const exported = /; exported (\d+)/.exec(line)?.[1];
      return {
        at: Date.now(),
        cpuNs: cpuNs(soload.pid),
        tickNs: tickNs(soload.pid),
        loads: Number(/stats: loads (\d+)/.exec(line)![1]),
        exported: exported !== undefined ? Number(exported) : undefined,
      };
    }
    if (Date.now() > until) throw new Error(`no stats line from soload within 120 s:\n${soload.stderr()}`);
    await sleep(5);
  }
}

/**
 * `none`: nothing exported; `otlp`: to a real Collector in soload's default process resource mode
 * (a LoggerProvider and Resource per traced process); `otlp-agent`: the same in agent resource
 * mode (one resource), so the table shows what the per-process resource costs.
 */
export type ExporterMode = 'none' | 'otlp' | 'otlp-agent';
const EXPORTER_MODES: ExporterMode[] = ['none', 'otlp', 'otlp-agent'];

async function measureOne(w: Workload, config: object, nodeArgs: string[] | undefined, env: NodeJS.ProcessEnv): Promise<Measured> {
  const soload: SoloadProcess = await startSoload(config, { readyTimeoutMs: 120_000, nodeArgs, env });
  try {
    // start-up work may trail "ready" (inventory, debug files): let it finish before the idle phase
    await settle(soload.pid, 0.02e6, 1000);
    // soload traces the whole host, and other users' processes load objects too: the idle rate is
    // taken from a window without any load (the quietest of a few when none is free of them)
    let prev = await sample(soload);
    let best: { rate: number; quiet: boolean } | undefined;
    for (let i = 0; i < 8; i++) {
      await sleep(2000);
      const next = await sample(soload);
      const w = { rate: (next.cpuNs - prev.cpuNs) / (next.at - prev.at), quiet: next.loads === prev.loads };
      prev = next;
      if (!best || (w.quiet && !best.quiet) || (w.quiet === best.quiet && w.rate < best.rate)) best = w;
      if (best.quiet && i >= 1) break;
    }
    const idleNsPerMs = best!.rate;
    const b = await sample(soload);
    const t0us = Number(process.hrtime.bigint() / 1000n);
    runWorkload(w);
    await settle(soload.pid, idleNsPerMs, 800);
    const c = await sample(soload);
    const t1us = Number(process.hrtime.bigint() / 1000n);
    const tw = c.at - b.at;
    const lw = c.loads - b.loads;
    const cpuMs = (c.cpuNs - b.cpuNs - idleNsPerMs * tw) / 1e6;
    const tickCpuMs = (c.tickNs - b.tickNs - idleNsPerMs * tw) / 1e6;

    // CPU is sampled already: the exit only has to be clean. Removing hundreds of probes (other
    // roots' loaders met meanwhile) or writing a .cpuprofile takes a while.
    const code = await soload.stop('SIGTERM', 180_000);
    if (code !== 143) process.stderr.write(`own-cpu: soload exited ${code} after SIGTERM\n`);
    return {
      row: { workload: w.name, loads: lw, cpuMs, usPerLoad: lw ? (cpuMs * 1000) / lw : NaN },
      spawns: w.runs,
      idleUsPerS: idleNsPerMs,
      window: { pid: soload.pid, fromUs: t0us, toUs: t1us },
      tickCpuMs,
      exported: c.exported !== undefined && b.exported !== undefined ? c.exported - b.exported : undefined,
    };
  } finally {
    await soload.stop('SIGKILL');
  }
}

const COLLECTOR_YAML = `receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{{OTLP_HTTP_PORT}}
exporters:
  debug:
    verbosity: basic
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [debug]
`;

export async function benchOwnCpu(
  opts: OwnCpuOptions = {},
): Promise<{ rows: OwnCpuRow[]; table: string; /** per row: soload's pid and the workload's span (profiles) */ windows: Measured['window'][] }> {
  if (process.getuid?.() !== 0) throw new Error('the benchmark installs uprobes: run it as root');
  const scale = opts.quick ? 0.1 : 1;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-owncpu-'));
  let collector: CollectorHandle | undefined;
  try {
    const corpus = await buildCorpus(dir, { only: ['needed-42-libs'], repeat: 1 });
    const many = corpus.scenarios.find((s) => s.name === 'needed-42-libs')!.spec(0, path.join(dir, 'truth.txt'));
    const dl = await buildDlopenMany(dir, 200);
    const all: Workload[] = [
      { name: 'needed-42-libs', file: many.file, args: many.args, env: many.env, runs: Math.max(20, Math.round(300 * scale)) },
      { name: 'dlopen-200', file: dl.file, args: dl.args, runs: Math.max(10, Math.round(100 * scale)) },
      { name: 'bin-true', file: '/bin/true', args: [], runs: Math.max(50, Math.round(1000 * scale)) },
    ];
    const workloads = opts.workloads ? all.filter((w) => opts.workloads!.includes(w.name)) : all;
    const modes = opts.exporters ?? EXPORTER_MODES;
    const base = { capture: { snapshot: false, reportExecutable: true }, log: { statsIntervalMs: 250 } };
    const rows: OwnCpuRow[] = [];
    const windows: Measured['window'][] = [];
    const lines: string[][] = [];
    for (const mode of modes) {
      let otel: object = { exporters: ['none'] };
      if (mode !== 'none') {
        collector ??= await startCollector({ configYaml: COLLECTOR_YAML });
        otel = { exporters: ['otlp'], endpoint: `${collector.httpEndpoint}/v1/logs`, metrics: { enabled: false } };
      }
      const config = deepMerge(deepMerge(base, { otel }), (opts.config ?? {}) as Record<string, unknown>);
      for (const w of workloads) {
        const m = await measureOne(w, config, opts.nodeArgs, mode === 'otlp-agent' ? { SOLOAD_RESOURCE_MODE: 'agent' } : DEFAULT_RESOURCE_MODE);
        const name = `${opts.label ? `${opts.label} ` : ''}${w.name} / ${mode}`;
        const row = { ...m.row, workload: name };
        rows.push(row);
        windows.push(m.window);
        const perSpawn = (m.row.cpuMs * 1000) / m.spawns;
        lines.push([
          name,
          String(m.spawns),
          String(row.loads) + (m.exported !== undefined && mode !== 'none' ? ` (exported ${m.exported})` : ''),
          row.cpuMs.toFixed(1),
          `${m.tickCpuMs.toFixed(0)}`,
          row.usPerLoad.toFixed(1),
          perSpawn.toFixed(0),
          m.idleUsPerS.toFixed(0),
        ]);
      }
    }
    const head = ['workload / exporter', 'spawns', 'loads', 'cpu ms', 'ticks ms', 'µs/load', 'µs/process', 'idle µs/s'];
    const widths = head.map((h, i) => Math.max(h.length, ...lines.map((r) => r[i]!.length)));
    const fmt = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
    const table = [fmt(head), widths.map((n) => '-'.repeat(n)).join('  '), ...lines.map(fmt)].join('\n');
    return { rows, table, windows };
  } finally {
    await collector?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const profDir = argv.includes('--prof') ? argv[argv.indexOf('--prof') + 1]! : undefined;
  const pick = (flag: string) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1]!.split(',') : undefined);
  const nodeArgs = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : undefined;
  const before = profDir && fs.existsSync(profDir) ? new Set(fs.readdirSync(profDir)) : new Set<string>();
  benchOwnCpu({ quick: argv.includes('--quick'), nodeArgs, exporters: pick('--exporters') as ExporterMode[] | undefined, workloads: pick('--workloads') })
    .then(({ table, rows, windows }) => {
      console.log(`soload own CPU: ${os.cpus().length} CPUs, kernel ${os.release()}, node ${process.version}`);
      console.log(table);
      if (profDir) {
        const files = fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile') && !before.has(f));
        windows.forEach((w, i) => {
          // node names a profile CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile
          const f = files.find((n) => n.split('.')[3] === String(w.pid));
          if (!f) return;
          console.log(`\n${rows[i]!.workload} (${f}, workload span only):`);
          console.log(formatProfileSummary(summarizeCpuProfile(JSON.parse(fs.readFileSync(path.join(profDir, f), 'utf8')), w), 30));
        });
      }
    })
    .catch((err) => {
      console.error(err);
      process.exit(1);
    });
}
