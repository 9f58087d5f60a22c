import fs from 'node:fs';
import path from 'node:path';
import type { ProcReader } from '../host/proc-reader';
import { findStaleState, removeStaleState } from '../tracefs/session';
import type { DiagLog } from './log';

/** True when `pid` is a live soload process (stale-state detection). */
export function isSoloadProcess(proc: ProcReader, pid: number): boolean {
  const { comm, cmdline } = proc.commandOf(pid);
  if (comm === undefined) return false;
  return comm === 'soload' || /soload|dist\/src\/cli\/main\.js/.test(cmdline ?? '');
}

/**
 * Removes what a soload that died (SIGKILL, crash) left: its tracefs probe group and instance, and
 * its directory of probe-path aliases. Only names of soload's own shape whose pid is no live
 * soload are touched; everything else on the host is left alone.
 */
export function cleanupStale(opts: { root: string; groupPrefix: string; instancePrefix: string; aliasRoot: string; selfPid: number; proc: ProcReader; log: DiagLog }): void {
  const alive = (pid: number) => pid === opts.selfPid || isSoloadProcess(opts.proc, pid);
  const stale = findStaleState(opts.root, opts.groupPrefix, opts.instancePrefix, alive);
  if (stale.groups.length || stale.instances.length) {
    opts.log.warn(`removing state left by a soload that died: groups [${stale.groups.join(', ')}], instances [${stale.instances.join(', ')}]`);
    for (const f of removeStaleState(opts.root, stale)) opts.log.error(`could not remove stale ${f}`);
  }
  let dirs: string[] = [];
  try {
    dirs = fs.readdirSync(opts.aliasRoot);
  } catch {
    return;
  }
  const re = new RegExp(`^${opts.groupPrefix}_(\\d+)$`);
  for (const d of dirs) {
    const m = re.exec(d);
    if (!m || alive(Number(m[1]))) continue;
    fs.rmSync(path.join(opts.aliasRoot, d), { recursive: true, force: true });
    opts.log.warn(`removed probe-path aliases left by a soload that died: ${path.join(opts.aliasRoot, d)}`);
  }
}
