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
}

/**
 * Routes parsed trace records: sched tracepoints to the process facts and every handler, probe
 * records by the typed role of their probe to the handler that owns it (a routing table built
 * once from the plan, never a switch on event names), loads to the processing chain.
 */
export class RecordRouter {
  readonly stats: RouterStats = { records: 0, processExits: 0, processExecs: 0, threadExits: 0, unknownEvents: 0 };
  private readonly o: RouterOptions;

  constructor(opts: RouterOptions) {
    this.o = opts;
  }

  route(rec: TraceRecord): void {
    this.stats.records++;
    switch (rec.event) {
      case 'sched_process_exit': {
        const pid = Number(rec.fields.pid);
        // Without group_dead, a non-leader thread's exit is not the process's.
        if (!this.o.exitIsGroupDead && rec.tgid !== undefined && pid !== rec.tgid) {
          this.stats.threadExits++;
          return;
        }
        this.stats.processExits++;
        this.o.facts.onExit(pid);
        for (const h of this.o.handlers) h.onExit(pid);
        this.o.lifecycle?.onExit(pid);
        return;
      }
      case 'sched_process_fork':
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
}
