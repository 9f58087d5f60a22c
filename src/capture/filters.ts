import type { SoloadConfig } from '../config/schema';
import type { LoadEvent } from '../types';
import { globToRegExp } from './discover';

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

  /** True when the event passes every configured filter. */
  accepts(ev: LoadEvent): boolean {
    if (this.excludePids.has(ev.pid)) return false;
    if (this.pids.size > 0 && !this.pids.has(ev.pid)) return false;
    if (this.excludeComms.has(ev.comm)) return false;
    if (this.comms.size > 0 && !this.comms.has(ev.comm)) return false;
    const subject = ev.path ?? ev.requestedName;
    if (subject !== undefined) {
      if (this.exclude.some((re) => re.test(subject))) return false;
      if (this.include.length > 0 && !this.include.some((re) => re.test(subject))) return false;
    } else if (this.include.length > 0) return false;
    return true;
  }
}
