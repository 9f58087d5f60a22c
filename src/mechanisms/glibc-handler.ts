import { LoaderTracker, type TrackerMode } from '../capture/loader';
import type { LoadEvent, ProbeRole, ProbeSpec, TraceRecord } from '../types';
import { isZero } from './musl';
import type { HandlerOptions, HandlerStats, MechanismHandler } from './types';

/**
 * The record side shared by the glibc mechanisms: one {@link LoaderTracker} per loader set, in the
 * mode of that set's mechanism (what its probes can see). Lists longer than the probes carry — a
 * start-up list past the slices, a dlopen adding more than the walk reads — are completed from the
 * process's memory while it lives (counted as missed when it does not).
 */
export class GlibcHandler implements MechanismHandler {
  readonly tracker: LoaderTracker;
  private readonly opts: HandlerOptions;
  private readonly ldso: string | undefined;
  private completed = 0;

  constructor(mode: TrackerMode, opts: HandlerOptions, listCapacity?: number, loaderNames?: readonly string[], ldso?: string) {
    this.opts = opts;
    this.ldso = ldso;
    this.tracker = new LoaderTracker({
      mode,
      reportExecutable: opts.reportExecutable,
      neededOf: opts.neededOf,
      canonical: opts.canonical,
      initiallyLoaded: opts.initiallyLoaded,
      execOf: opts.execOf,
      ...(opts.dlopenMaxAgeMs !== undefined ? { dlopenMaxAgeMs: opts.dlopenMaxAgeMs } : {}),
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
      case 'libc.init':
        return t.onLibcInit(rec, this.ldso ?? spec.path);
      case 'loader.list': {
        if (!spec.slice) return [];
        const out = t.onList(rec, spec.slice, this.ldso ?? spec.path);
        const n = Number(rec.fields.n);
        if (out.length > 0 && n > (this.opts.listCapacity ?? n)) this.complete(rec, out);
        return out;
      }
      case 'dlopen.list': {
        if (!spec.slice) return [];
        if (rec.fields.x1 === undefined) return t.onDlopenList(rec, spec.slice);
        const { synth, size, more } = walkRecord(rec);
        const out = size > 1 ? t.onDlopenList(synth, { first: 0, size }) : [];
        if (more && out.length > 0) this.complete(rec, out);
        return out;
      }
      case 'loader.open': {
        // ld.so's _dl_open returned: the `_self` probe names the opened object (reported when
        // new), the `_walk` probe the maps after it (the two records come in either order).
        if (rec.fields.x1 === undefined) return t.onOpen(rec, rec, 1);
        const { synth, size, more } = walkRecord(rec);
        const out = size > 1 ? t.onDlopenList(synth, { first: 0, size }) : [];
        if (more && out.length > 0) this.complete(rec, out);
        return out;
      }
      case 'loader.unmap':
        t.onUnmap(rec);
        return [];
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

  /** Appends what `rec`'s process has beyond what its probes carried, read from its memory now. */
  private complete(rec: TraceRecord, out: LoadEvent[]): void {
    const pid = rec.tgid ?? rec.tid;
    this.completed++;
    for (const ev of this.opts.recoverList?.(pid, 0) ?? []) {
      if (ev.method === 'interpreter' || !ev.path || !this.tracker.noteKnown(pid, ev.path)) continue;
      out.push(ev);
    }
  }

  onExec(pid: number): void {
    this.tracker.onExec(pid);
  }

  onFork(parent: number, child: number): void {
    this.tracker.onFork(parent, child);
  }

  adopt(pid: number, loaded: readonly string[], startupDone: boolean): void {
    this.tracker.adopt(pid, loaded, startupDone);
  }

  onExit(pid: number): LoadEvent[] {
    return this.tracker.onExit(pid);
  }

  onThreadGone(tid: number): LoadEvent[] {
    return this.tracker.onThreadGone(tid);
  }

  expire(nowNs: bigint): LoadEvent[] {
    return this.tracker.expire(nowNs);
  }

  sizes(): Record<string, number> {
    return this.tracker.sizes();
  }

  stats(): HandlerStats {
    return { ...this.tracker.stats, ...prefixed('dlopen', this.tracker.dlopen.stats), listCompleted: this.completed, tracked: this.tracker.tracked };
  }
}

/**
 * A dlopen walk record (plan/list-probes.ts dlopenWalkProbe: `x<k>`/`p<k>`/`q<k>`/`i<k>` for the
 * maps after the returned one) as the `n`/`p<k>`/`q<k>`/`i<k>` slice the tracker reads, entry 0
 * standing for the dlopened object. An entry counts only while every address up to it is non-zero
 * (a failed dereference leaves stale bytes, not a fault marker); `more` means the walk reached its
 * depth with the list going on.
 */
export function walkRecord(rec: TraceRecord): { synth: TraceRecord; size: number; more: boolean } {
  const f = rec.fields;
  const fields: Record<string, string | null> = { self: f.self ?? null, comm: f.comm ?? null, ...(f.selfreq !== undefined ? { selfreq: f.selfreq } : {}), ...(f.selfino !== undefined ? { selfino: f.selfino } : {}) };
  let k = 1;
  for (; ; k++) {
    const x = f[`x${k}`];
    if (x === undefined || x === null || isZero(x)) break;
    const p = f[`p${k}`];
    if (p === undefined || p === null) break;
    fields[`p${k}`] = p;
    fields[`q${k}`] = f[`q${k}`] ?? null;
    if (f[`i${k}`] !== undefined) fields[`i${k}`] = f[`i${k}`] ?? null;
  }
  const depthReached = f[`x${k}`] === undefined;
  const m = f.more;
  fields.n = String(k);
  return { synth: { ...rec, fields }, size: k, more: depthReached && m !== undefined && m !== null && !isZero(m) };
}

function prefixed(prefix: string, o: object): HandlerStats {
  const out: HandlerStats = {};
  for (const [k, v] of Object.entries(o)) if (typeof v === 'number') out[`${prefix}.${k}`] = v;
  return out;
}
