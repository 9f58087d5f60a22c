import type { MechanismHandler } from '../mechanisms/types';
import type { LoadEvent, ProbeRole, ProbeSpec, TraceRecord } from '../types';
import { FACT_ROLES, type ProcessFacts } from './process-facts';

/** Where one probe event's records go: its role, the probe, and the handler that owns the role. */
export interface Route {
  role: ProbeRole;
  spec: ProbeSpec;
  /** The mechanism handler of the probe's loader set (mechanism roles only). */
  handler?: MechanismHandler;
}

/** Counters of the router. */
export interface RouterStats {
  records: number;
  processExits: number;
  processExecs: number;
  threadExits: number;
  unknownEvents: number;
  /** Processes and threads the liveness sweep found gone without an exit event (lost in an overrun, or a thread). */
  sweptGone: number;
}

/** Options of {@link RecordRouter}. */
export interface RouterOptions {
  routes: ReadonlyMap<string, Route>;
  facts: ProcessFacts;
  handlers: readonly MechanismHandler[];
  onLoad: (ev: LoadEvent) => void;
  onCustom: (rec: TraceRecord, spec: ProbeSpec) => void;
  /**
   * True when `sched_process_exit` is filtered to whole thread groups in the kernel
   * (`group_dead == 1`). Kernels whose tracepoint lacks `group_dead` report every thread's exit:
   * then only the thread-group leader's exit counts as the process's.
   */
  exitIsGroupDead: boolean;
  /** Also told about every process start, image change and exit (loader discovery). */
  lifecycle?: { onExec(pid: number, filename: string | undefined): void; onFork(parent: number, child: number): void; onExit(pid: number): void };
  /** Process and thread ids followed for the liveness sweep at most (oldest dropped; default 131072). */
  maxTracked?: number;
  /** Ids checked against /proc per sweep at most (default 4096): the rest wait for the next sweep. */
  checksPerSweep?: number;
}

/**
 * Routes parsed trace records: sched tracepoints to the process facts and every handler, probe
 * records by the typed role of their probe to the handler that owns it (a routing table built
 * once from the plan, never a switch on event names), loads to the processing chain.
 */
export class RecordRouter {
  readonly stats: RouterStats = { records: 0, processExits: 0, processExecs: 0, threadExits: 0, unknownEvents: 0, sweptGone: 0 };
  private readonly o: RouterOptions;
  /**
   * Every process and thread id records were routed for → the sweep epoch it was last seen in, in
   * that order (oldest first): the ids whose state the liveness sweep may have to free.
   */
  private readonly seen = new Map<number, number>();
  private epoch = 0;
  private readonly maxTracked: number;
  private readonly checksPerSweep: number;

  constructor(opts: RouterOptions) {
    this.o = opts;
    this.maxTracked = opts.maxTracked ?? 131072;
    this.checksPerSweep = opts.checksPerSweep ?? 4096;
  }

  route(rec: TraceRecord): void {
    this.stats.records++;
    switch (rec.event) {
      case 'sched_process_exit': {
        const pid = Number(rec.fields.pid);
        // Without group_dead, a non-leader thread's exit is not the process's.
        if (!this.o.exitIsGroupDead && rec.tgid !== undefined && pid !== rec.tgid) {
          this.stats.threadExits++;
          this.threadGone(pid);
          this.o.facts.onExit(pid); // what its creation (a fork event) made under its tid
          return;
        }
        this.stats.processExits++;
        this.exit(pid);
        return;
      }
      case 'sched_process_fork':
        // the parent too: a parent older than soload gets its cwd and view learnt here
        this.touch(Number(rec.fields.pid));
        this.touch(Number(rec.fields.child_pid));
        this.o.facts.onFork(Number(rec.fields.pid), Number(rec.fields.child_pid));
        for (const h of this.o.handlers) h.onFork?.(Number(rec.fields.pid), Number(rec.fields.child_pid));
        this.o.lifecycle?.onFork(Number(rec.fields.pid), Number(rec.fields.child_pid));
        return;
      case 'sched_process_exec': {
        const pid = Number(rec.fields.pid);
        this.stats.processExecs++;
        this.o.facts.onExec(pid, rec.fields.filename ?? undefined);
        for (const h of this.o.handlers) h.onExec(pid);
        this.o.lifecycle?.onExec(pid, rec.fields.filename ?? undefined);
        return;
      }
      default:
        break;
    }
    this.touch(rec.tgid ?? rec.tid);
    if (rec.tgid !== undefined && rec.tgid !== rec.tid) this.touch(rec.tid);
    const route = this.o.routes.get(rec.event);
    if (!route) {
      this.stats.unknownEvents++;
      return;
    }
    if (route.handler) {
      for (const ev of route.handler.handle(route.role, rec, route.spec)) this.o.onLoad(ev);
    } else if (FACT_ROLES.has(route.role)) this.o.facts.handle(route.role, rec);
    else if (route.role === 'custom') this.o.onCustom(rec, route.spec);
    else this.stats.unknownEvents++;
  }

  /**
   * Periodic housekeeping: hands every handler the trace-clock time (dlopen calls too old come
   * back as `incomplete` loads), then the liveness sweep: ids not seen in a record since the last
   * sweep and that `alive` says are gone are forgotten as if their exit had been seen — a process
   * whose exit event was lost (ring-buffer overrun, soload stopped reading), or a thread that died
   * (sched_process_exit is filtered to whole thread groups). At most `checksPerSweep` ids are
   * checked; one still alive moves to the back of the queue.
   */
  housekeep(nowNs: bigint, alive: (id: number) => boolean): void {
    for (const h of this.o.handlers) for (const ev of h.expire(nowNs)) this.o.onLoad(ev);
    const settled = this.epoch; // seen before this epoch: quiet for a whole interval
    this.epoch++;
    let checks = 0;
    for (const [id, at] of this.seen) {
      if (at >= settled || checks >= this.checksPerSweep) break;
      checks++;
      this.seen.delete(id);
      if (alive(id)) {
        this.seen.set(id, this.epoch);
        continue;
      }
      this.stats.sweptGone++;
      // A process's state is keyed by its pid, a thread's (fork's child entry, calls in flight) by its tid.
      this.threadGone(id);
      this.exit(id);
    }
  }

  /** Ids followed by the liveness sweep. */
  get tracked(): number {
    return this.seen.size;
  }

  private exit(pid: number): void {
    this.seen.delete(pid);
    // What the process left unfinished goes out before its facts are dropped: resolving it needs
    // them (its view, its cwd), and would otherwise make them again for a pid that is gone.
    const unfinished: LoadEvent[] = [];
    for (const h of this.o.handlers) unfinished.push(...h.onExit(pid));
    for (const ev of unfinished) this.o.onLoad(ev);
    this.o.facts.onExit(pid);
    this.o.lifecycle?.onExit(pid);
  }

  private threadGone(tid: number): void {
    this.seen.delete(tid);
    this.o.facts.onThreadGone(tid);
    for (const h of this.o.handlers) for (const ev of h.onThreadGone(tid)) this.o.onLoad(ev);
  }

  private touch(id: number): void {
    if (this.seen.get(id) === this.epoch) return;
    // Re-inserted so the map stays ordered by last sighting (the sweep reads it oldest first).
    this.seen.delete(id);
    if (this.seen.size >= this.maxTracked) this.seen.delete(this.seen.keys().next().value as number);
    this.seen.set(id, this.epoch);
  }
}
