import type { CwdTracker } from '../capture/cwd';
import type { LoadFilter } from '../capture/filters';
import type { ProcessEnricher } from '../enrich/enricher';
import type { LoadPathResolver } from '../enrich/paths';
import type { TraceClock } from '../otel/clock';
import type { SoLoadLogMapper } from '../otel/mapper';
import type { RecordLoggers } from '../otel/resources';
import type { LoadEvent, ProbeSpec, TraceRecord } from '../types';

/** Counters of the processing chain. */
export interface ChainStats {
  loadsEmitted: number;
  loadsFiltered: number;
  customEmitted: number;
  customFiltered: number;
}

/** What the chain is made of (built by the agent). */
export interface LoadChainParts {
  cwd: CwdTracker;
  enricher: ProcessEnricher;
  paths: LoadPathResolver;
  filter: LoadFilter;
  mapper: SoLoadLogMapper;
  clock: TraceClock;
  /** The Logger of each record (its resource: the loading process, or soload). */
  loggers: RecordLoggers;
  /** Sees every load after filtering, before export (tests, the recall harness). */
  onLoad?: (ev: LoadEvent) => void;
}

/**
 * The one processing chain every record goes through, built-in and custom probes alike:
 * cwd (relative loader names made absolute) → path completion and the kernel's canonical name →
 * filter → /proc enrichment → LogRecord mapping → export.
 */
export class LoadChain {
  readonly stats: ChainStats = { loadsEmitted: 0, loadsFiltered: 0, customEmitted: 0, customFiltered: 0 };
  private readonly p: LoadChainParts;

  constructor(parts: LoadChainParts) {
    this.p = parts;
  }

  load(ev: LoadEvent): void {
    const { cwd, enricher, paths, filter, mapper, clock, loggers } = this.p;
    if (ev.path !== undefined && !ev.path.startsWith('/')) {
      const abs = cwd.resolve(ev.pid, ev.path);
      // The loader's own (relative) string stays visible as soload.loader_path.
      if (abs) ev = { ...ev, path: abs, loaderPath: ev.loaderPath ?? ev.path };
    }
    if (ev.loadedBy !== undefined && !ev.loadedBy.startsWith('/')) {
      const abs = cwd.resolve(ev.pid, ev.loadedBy);
      if (abs) ev = { ...ev, loadedBy: abs };
    }
    const completed = enricher.completePath(ev);
    ev = paths.resolve(completed.event);
    if (!filter.accepts(ev)) {
      this.stats.loadsFiltered++;
      return;
    }
    const enriched = enricher.enrich(ev, completed.missing);
    this.stats.loadsEmitted++;
    this.p.onLoad?.(enriched.event);
    loggers.loggerFor(enriched.process, ev.pid).emit(mapper.map(enriched, clock.toWallNs(clock.nowTraceNs())));
  }

  /** A hit of a user-declared probe: the same pid/comm filters and process enrichment as loads. */
  custom(rec: TraceRecord, _spec: ProbeSpec): void {
    const { enricher, filter, mapper, clock, loggers } = this.p;
    const pid = rec.tgid ?? rec.tid;
    const comm = rec.fields.comm ?? rec.comm;
    if (!filter.acceptsProcess(pid, comm)) {
      this.stats.customFiltered++;
      return;
    }
    const info = enricher.processOf(pid);
    this.stats.customEmitted++;
    loggers.loggerFor(info.process, pid).emit(mapper.mapCustom(rec, info.process, info.missing, clock.toWallNs(clock.nowTraceNs())));
  }
}
