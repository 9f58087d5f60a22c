import { LoaderTracker, type TrackerMode } from '../capture/loader';
import type { LoadEvent, ProbeRole, ProbeSpec, TraceRecord } from '../types';
import type { HandlerOptions, HandlerStats, MechanismHandler } from './types';

/**
 * The record side shared by the glibc mechanisms: one {@link LoaderTracker} per loader set, in the
 * mode of that set's mechanism (what its probes can see).
 */
export class GlibcHandler implements MechanismHandler {
  readonly tracker: LoaderTracker;

  constructor(mode: TrackerMode, opts: HandlerOptions, listCapacity?: number, loaderNames?: readonly string[]) {
    this.tracker = new LoaderTracker({
      mode,
      reportExecutable: opts.reportExecutable,
      neededOf: opts.neededOf,
      canonical: opts.canonical,
      initiallyLoaded: opts.initiallyLoaded,
      execOf: opts.execOf,
      ...(listCapacity !== undefined ? { listCapacity } : {}),
      ...(loaderNames ? { loaderNames } : {}),
    });
  }

  handle(role: ProbeRole, rec: TraceRecord, spec: ProbeSpec): LoadEvent[] {
    const t = this.tracker;
    switch (role) {
      case 'loader.add':
        return t.onAdd(rec, spec.path);
      case 'loader.state':
        return t.onState(rec, spec.path);
      case 'loader.list':
        return spec.slice ? t.onList(rec, spec.slice, spec.path) : [];
      case 'dlopen.list':
        return spec.slice ? t.onDlopenList(rec, spec.slice) : [];
      case 'dlopen.entry':
        t.onDlopenEntry(rec);
        return [];
      case 'dlopen.return': {
        const ev = t.onDlopenReturn(rec, rec.event);
        return ev ? [ev] : [];
      }
      default:
        return [];
    }
  }

  onExec(pid: number): void {
    this.tracker.onExec(pid);
  }

  adopt(pid: number, loaded: readonly string[], startupDone: boolean): void {
    this.tracker.adopt(pid, loaded, startupDone);
  }

  onExit(pid: number): void {
    this.tracker.onExit(pid);
  }

  expire(nowNs: bigint): void {
    this.tracker.dlopen.expire(nowNs);
  }

  stats(): HandlerStats {
    return { ...this.tracker.stats, ...prefixed('dlopen', this.tracker.dlopen.stats), tracked: this.tracker.tracked };
  }
}

function prefixed(prefix: string, o: object): HandlerStats {
  const out: HandlerStats = {};
  for (const [k, v] of Object.entries(o)) if (typeof v === 'number') out[`${prefix}.${k}`] = v;
  return out;
}
