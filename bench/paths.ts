/**
 * Per-record cost of canonical path resolution (issue 7): the loader strings of a real program's
 * loads (merged-/usr aliases, versioned symlinks) resolved by LoadPathResolver against this host's
 * file system, cold (every resolution walks: TTL 0) and warm (steady state: one map lookup), plus a
 * plain fs.realpathSync of the same strings for scale. Needs no root and no probes.
 */
import fs from 'node:fs';
import { MemfdTracker, ViewTracker } from '../src/capture/views';
import { PathCache } from '../src/enrich/canonical';
import { LoadPathResolver } from '../src/enrich/paths';
import { ProcReader } from '../src/host/proc-reader';
import { ViewRegistry } from '../src/enrich/views';
import type { LoadEvent } from '../src/types';

/** Loader strings as ld.so writes them for curl on Debian 12 (found on this host, else skipped). */
function loaderStrings(): string[] {
  const dir = '/lib/x86_64-linux-gnu';
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).filter((n) => /^lib[a-z0-9_+-]+\.so\.\d+$/.test(n)).slice(0, 40);
  } catch {
    /* not a Debian multiarch host */
  }
  return names.map((n) => `${dir}/${n}`);
}

export interface PathBenchRow {
  condition: string;
  records: number;
  usPerRecord: number;
}

/** Runs the micro-benchmark and returns its rows. */
export function benchPaths(rounds = 2000): PathBenchRow[] {
  const strings = loaderStrings();
  if (strings.length === 0) return [];
  const proc = new ProcReader('/proc');
  const rows: PathBenchRow[] = [];
  const run = (condition: string, ttlMs: number): void => {
    const viewOf = new ViewTracker();
    viewOf.set(1, 'host');
    const paths = new LoadPathResolver({
      proc,
      views: new ViewRegistry(proc),
      viewOf,
      memfds: new MemfdTracker(),
      toWallNs: () => BigInt(Date.now()) * 1_000_000n,
      cache: new PathCache({ ttlMs }),
    });
    const ev: LoadEvent = { timestampNs: 0n, pid: 1, tid: 1, comm: 'curl', method: 'needed', result: 'ok', probe: 'loader_add' };
    for (const s of strings) paths.resolve({ ...ev, path: s }); // warm the kernel's dentry cache
    const n = ttlMs === 0 ? Math.max(1, Math.floor(rounds / 20)) : rounds;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) for (const s of strings) paths.resolve({ ...ev, path: s });
    const us = Number(process.hrtime.bigint() - t0) / 1e3;
    rows.push({ condition, records: n * strings.length, usPerRecord: us / (n * strings.length) });
  };
  run('canonical path, cold (walk every record)', 0);
  run('canonical path, warm (steady state)', 60_000);
  const n = Math.max(1, Math.floor(rounds / 20));
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) for (const s of strings) fs.realpathSync(s);
  rows.push({ condition: 'fs.realpathSync (reference, soload view only)', records: n * strings.length, usPerRecord: Number(process.hrtime.bigint() - t0) / 1e3 / (n * strings.length) });
  return rows;
}

if (require.main === module) {
  for (const r of benchPaths()) console.log(`${r.condition.padEnd(48)} ${String(r.records).padStart(7)} records  ${r.usPerRecord.toFixed(2)} µs/record`);
}
