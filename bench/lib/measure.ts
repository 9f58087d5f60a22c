/**
 * What the benchmarks read about a process and about soload's tracefs instance, straight from the
 * kernel: /proc/<pid>/stat CPU ticks, /proc/<pid>/status memory, per-CPU ring-buffer stats, the
 * probes of a group in uprobe_events.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../../test/helpers/collector';
import { TRACEFS } from '../../test/helpers/soload';

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat (100 on every Linux ABI in use). */
const USER_HZ = 100;

/** utime + stime of every thread of `pid`, in ms (USER_HZ resolution: 10 ms). */
export function cpuMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / USER_HZ;
}

/** Busy and total jiffies of all CPUs together (/proc/stat `cpu` line; idle and iowait are not busy). */
export function hostCpu(): { busy: number; total: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total };
}

/** Share of all CPUs that was busy between two hostCpu() readings, %. */
export const hostBusyPct = (a: { busy: number; total: number }, b: { busy: number; total: number }): number =>
  b.total > a.total ? ((b.busy - a.busy) / (b.total - a.total)) * 100 : NaN;

/** VmRSS and VmHWM (peak RSS) of `pid`, in MiB. */
export function memoryMiB(pid: number): { rss: number; hwm: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

/** Samples VmRSS every `everyMs` until stopped; the maximum seen (MiB). */
export function rssSampler(pid: number, everyMs = 200): { stop(): number } {
  let max = 0;
  const take = () => {
    try {
      max = Math.max(max, memoryMiB(pid).rss);
    } catch {
      /* the process is gone: keep what was seen */
    }
  };
  take();
  const t = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(t);
      take();
      return max;
    },
  };
}

/** Sums of the per-CPU ring-buffer counters of a tracefs instance. */
export interface RingStats {
  entries: number;
  overrun: number;
  commitOverrun: number;
  droppedEvents: number;
  readEvents: number;
}

export function ringStats(instance: string): RingStats {
  const dir = path.join(TRACEFS, 'instances', instance, 'per_cpu');
  const sum: RingStats = { entries: 0, overrun: 0, commitOverrun: 0, droppedEvents: 0, readEvents: 0 };
  for (const cpu of fs.readdirSync(dir)) {
    const text = fs.readFileSync(path.join(dir, cpu, 'stats'), 'utf8');
    const v = (k: string) => Number(new RegExp(`^${k}: (\\d+)`, 'm').exec(text)?.[1] ?? 0);
    sum.entries += v('entries');
    sum.overrun += v('overrun');
    sum.commitOverrun += v('commit overrun');
    sum.droppedEvents += v('dropped events');
    sum.readEvents += v('read events');
  }
  return sum;
}

export function ringDelta(a: RingStats, b: RingStats): RingStats {
  return {
    entries: b.entries - a.entries,
    overrun: b.overrun - a.overrun,
    commitOverrun: b.commitOverrun - a.commitOverrun,
    droppedEvents: b.droppedEvents - a.droppedEvents,
    readEvents: b.readEvents - a.readEvents,
  };
}

/** uprobe_events lines of soload's group `<prefix>_<pid>`. */
export function probesOf(pid: number, prefix = 'soload'): string[] {
  const re = new RegExp(`^[pr]:${prefix}_${pid}/`);
  return fs.readFileSync(path.join(TRACEFS, 'uprobe_events'), 'utf8').split('\n').filter((l) => re.test(l));
}

/**
 * What soload `pid` left in tracefs after it exited: its group's probes and its instance. Only
 * this pid's: other soload processes on a shared host are none of this benchmark's business.
 */
export function leftoversOf(pid: number, prefix = 'soload'): { probes: number; instance: boolean } {
  return { probes: probesOf(pid, prefix).length, instance: fs.existsSync(path.join(TRACEFS, 'instances', `${prefix}_${pid}`)) };
}

/** Compiles `bench/c/<source>` with gcc into `outDir`; throws with gcc's output on failure. */
export function compileC(source: string, out: string, args: string[] = []): string {
  const src = path.join(REPO_ROOT, 'bench', 'c', source);
  const r = spawnSync('gcc', ['-O2', '-Wall', '-o', out, src, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc ${source} failed:\n${r.stderr}`);
  return out;
}

/** A temp dir under the real path of os.tmpdir() (soload reports canonical paths). */
export function benchTmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(fs.realpathSync(os.tmpdir()), prefix));
}

/** q-quantile (0..1) of `xs` (sorted in place); NaN when empty. Nearest rank. */
export function quantile(xs: Float64Array | number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = xs instanceof Float64Array ? xs.sort() : xs.sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/** A markdown table. */
export function markdownTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
