import type { CwdTracker } from '../capture/cwd';
import type { LoadFilter } from '../capture/filters';
import type { ProcessEnricher } from '../enrich/enricher';
import type { LoadPathResolver } from '../enrich/paths';
import type { TraceClock } from '../otel/clock';
import { processAttributesOf, type SoLoadLogMapper } from '../otel/mapper';
import type { LoadSecurity, SecurityVerdict } from '../enrich/security';
import { SeverityNumber, type LogAttributes, type LogRecord, type Logger } from '@opentelemetry/api-logs';
import type { ProcessInfo } from '../host/proc-reader';
import type { RecordLoggers } from '../otel/resources';
import type { LoadEvent, ProbeSpec, TraceRecord } from '../types';

/** Counters of the processing chain. */
export interface ChainStats {
  loadsEmitted: number;
  loadsFiltered: number;
  customEmitted: number;
  customFiltered: number;
  /** Records whose security signal could not be computed (sent without it). */
  securityFailures: number;
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
  /** The security signal (search step, package, digest, risk); absent when security.enabled is off. */
  security?: LoadSecurity;
  /** soload's diagnostics (a failing security stage is reported, never thrown into the capture). */
  warn?: (msg: string) => void;
  /** Sees every load after filtering, before export (tests, the recall harness). */
  onLoad?: (ev: LoadEvent) => void;
}

/**
 * The one processing chain every record goes through, built-in and custom probes alike:
 * cwd (relative loader names made absolute) → path completion and the kernel's canonical name →
 * filter → /proc enrichment → LogRecord mapping → export.
 */
export class LoadChain {
  readonly stats: ChainStats = { loadsEmitted: 0, loadsFiltered: 0, customEmitted: 0, customFiltered: 0, securityFailures: 0 };
  private readonly p: LoadChainParts;
  private readonly held = new Set<Promise<void>>();
  private readonly procAttrs = new WeakMap<ProcessInfo, LogAttributes>();

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
    const logger = loggers.loggerFor(enriched.process, ev.pid);
    const record = mapper.map(enriched, clock.toWallNs(clock.nowTraceNs()));
    const security = this.p.security;
    if (!security) {
      logger.emit(record);
      return;
    }
    const processAttrs = enriched.process ? this.processAttrs(enriched.process) : { 'process.pid': ev.pid };
    let verdict: SecurityVerdict;
    try {
      verdict = security.assess(enriched, record.attributes ?? {}, processAttrs);
    } catch (err) {
      // the security signal must never cost a load record: it goes without, and the failure counts
      this.stats.securityFailures++;
      if (this.stats.securityFailures <= 3) this.p.warn?.(`security signal of ${ev.path ?? ev.requestedName ?? '?'} failed: ${(err as Error).stack ?? String(err)}`);
      logger.emit(record);
      return;
    }
    if (!verdict.pending) {
      emitWith(logger, record, verdict);
      return;
    }
    // Only this record waits for its file's first digest (bounded by security.hash.waitMs); the
    // ones behind it go on.
    const done = verdict.pending.then(
      (v) => emitWith(logger, record, v),
      // never expected (the stage catches), but a record is never lost to it
      () => emitWith(logger, record, verdict),
    );
    this.held.add(done);
    void done.finally(() => this.held.delete(done));
  }

  /** The process's attributes for the risk rules, once per ProcessInfo (shared by its records). */
  private processAttrs(p: ProcessInfo): LogAttributes {
    let a = this.procAttrs.get(p);
    if (!a) {
      a = { 'process.pid': p.pid, ...processAttributesOf(p, 'service.name') };
      this.procAttrs.set(p, a);
    }
    return a;
  }

  /** Records still waiting for a digest (each at most security.hash.waitMs). */
  get pending(): number {
    return this.held.size;
  }

  /** Resolves when every held record has been emitted (shutdown, before the exporters flush). */
  async drain(): Promise<void> {
    while (this.held.size) await Promise.allSettled([...this.held]);
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

const SEVERITY_BY_TEXT: Record<string, SeverityNumber> = {
  TRACE: SeverityNumber.TRACE,
  DEBUG: SeverityNumber.DEBUG,
  INFO: SeverityNumber.INFO,
  WARN: SeverityNumber.WARN,
  ERROR: SeverityNumber.ERROR,
  FATAL: SeverityNumber.FATAL,
};

/** The record with its security attributes, its severity raised (never lowered) to its risk's. */
function emitWith(logger: Logger, record: LogRecord, v: SecurityVerdict): void {
  const out: LogRecord = { ...record, attributes: { ...record.attributes, ...v.attributes } };
  const n = v.severity ? SEVERITY_BY_TEXT[v.severity] : undefined;
  if (n !== undefined && n > (record.severityNumber ?? 0)) {
    out.severityNumber = n;
    out.severityText = v.severity!;
  }
  logger.emit(out);
}
