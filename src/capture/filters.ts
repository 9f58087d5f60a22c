import type { SoloadConfig } from '../config/schema';
import type { LoadEvent } from '../types';
import { globToRegExp } from '../plan/discover';

/** Decides which loads are reported (pure, compiled once from config). */
export class LoadFilter {
  private readonly pids: Set<number>;
  private readonly excludePids: Set<number>;
  private readonly comms: Set<string>;
  private readonly excludeComms: Set<string>;
  private readonly include: RegExp[];
  private readonly exclude: RegExp[];

  constructor(filters: SoloadConfig['filters'], selfPid?: number) {
    this.pids = new Set(filters.pids);
    this.excludePids = new Set(filters.excludePids);
    if (filters.excludeSelf && selfPid !== undefined) this.excludePids.add(selfPid);
    this.comms = new Set(filters.comms);
    this.excludeComms = new Set(filters.excludeComms);
    this.include = filters.pathInclude.map((g) => globToRegExp(g));
    this.exclude = filters.pathExclude.map((g) => globToRegExp(g));
  }

  /** True when a process passes the pid and comm filters. */
  acceptsProcess(pid: number, comm: string): boolean {
    if (this.excludePids.has(pid)) return false;
    if (this.pids.size > 0 && !this.pids.has(pid)) return false;
    if (this.excludeComms.has(comm)) return false;
    if (this.comms.size > 0 && !this.comms.has(comm)) return false;
    return true;
  }

  /** True when the event passes every configured filter. */
  accepts(ev: LoadEvent): boolean {
    if (!this.acceptsProcess(ev.pid, ev.comm)) return false;
    const subject = ev.path ?? ev.requestedName;
    if (subject !== undefined) {
      if (this.exclude.some((re) => re.test(subject))) return false;
      if (this.include.length > 0 && !this.include.some((re) => re.test(subject))) return false;
    } else if (this.include.length > 0) return false;
    return true;
  }
}
