import type { Attributes } from '@opentelemetry/api';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import type { SoloadConfig } from '../config/schema';
import type { HealthSnapshot, HealthSource } from './health';
import { otlpExporterOptions } from './otlp-sender';
import { buildResource, logsTarget, SOLOAD_VERSION, type LogPipeline, type SinkObservation, type SinkStats } from './pipeline';
import { DROP_REASONS } from './retrying-exporter';

/** What the self-telemetry reads: the agent's health and the export pipeline's delivery counters. */
export interface SelfTelemetryOptions {
  config: SoloadConfig;
  health: HealthSource;
  pipeline?: Pick<LogPipeline, 'sinks' | 'onExport'>;
  log: { info(msg: string): void; warn(msg: string): void };
}

/** Running self-telemetry; shutdown() exports the final values and prints the last summary. */
export interface SelfTelemetry {
  /** The summary line (also printed every log.statsIntervalMs). */
  summary(): string;
  /**
   * `timeoutMs` bounds the final metrics export (default: the export timeout); the agent shortens
   * it when the log exporter could not reach the collector either.
   */
  shutdown(timeoutMs?: number): Promise<void>;
}

/** The metrics URL: configured, else the logs URL with /v1/logs → /v1/metrics (or + /v1/metrics). */
export function metricsEndpoint(config: SoloadConfig): string {
  if (config.otel.metrics.endpoint) return config.otel.metrics.endpoint;
  const logs = config.otel.endpoint;
  return /\/v1\/logs\/?$/.test(logs) ? logs.replace(/\/v1\/logs\/?$/, '/v1/metrics') : logs.replace(/\/+$/, '') + '/v1/metrics';
}

/**
 * True when self-metrics are exported: enabled, and there is somewhere to send them — the "otlp"
 * exporter's collector, or (with only "console"/"none") a metrics endpoint configured explicitly
 * (otel.metrics.endpoint, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT): without
 * one, the default localhost:4318 would only collect failures on a host that runs no collector.
 */
export function metricsExported(config: SoloadConfig): boolean {
  return config.otel.metrics.enabled && (config.otel.exporters.includes('otlp') || config.otel.metrics.endpoint !== '');
}

/**
 * The one-line summary of a snapshot and the delivery counters. The first exporter is summed up in
 * full (exported, queued, dropped by reason, failed requests), further ones by exported and dropped;
 * the kernel's loss counters are printed side by side because they overlap (never added up).
 */
export function formatSummary(h: HealthSnapshot, sinks: readonly SinkStats[]): string {
  const parts = [`loads ${h.loads.emitted} (filtered ${h.loads.filtered}${h.loads.custom ? `, custom ${h.loads.custom}` : ''})`];
  const [first, ...rest] = sinks;
  if (first) {
    const d = first.stats;
    const drops = DROP_REASONS.filter((r) => d.droppedByReason[r] > 0).map((r) => `${r} ${d.droppedByReason[r]}`);
    parts.push(
      `exported ${d.exported}`,
      `queued ${d.buffered}${d.spilled || d.spilledTotal ? ` + disk ${d.spilled}` : ''}`,
      `dropped ${d.dropped}${drops.length ? ` (${drops.join(', ')})` : ''}`,
      `export failures ${d.failedAttempts}`,
    );
    for (const s of rest) parts.push(`${s.name} exported ${s.stats.exported} dropped ${s.stats.dropped}`);
  } else {
    parts.push('exporters none');
  }
  const r = h.trace.ring;
  parts.push(
    `trace_pipe lost ${h.trace.lostEvents}`,
    `ring overrun ${r.overrun} commit_overrun ${r.commitOverrun} dropped ${r.droppedEvents}`,
    `faults avoided ${h.faults.avoided}, unresolved name ${h.faults.nameUnresolved} path ${h.faults.pathUnresolved}`,
    `paths renamed ${h.paths.renamed}, deleted ${h.paths.deleted}, memfd ${h.paths.memfd}, replaced ${h.paths.replaced}, namespace guessed ${h.paths.namespaceGuessed}, fd unresolved ${h.paths.fdUnresolved}`,
  );
  return `stats: ${parts.join('; ')}`;
}

const LATENCY_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/**
 * soload's health as OpenTelemetry metrics (soload.*), exported over OTLP/HTTP to the same collector
 * as the records (same headers and TLS), plus a periodic summary line on stderr.
 */
export function startSelfTelemetry(opts: SelfTelemetryOptions): SelfTelemetry {
  const { config, health, log } = opts;
  const sinks = opts.pipeline?.sinks ?? [];
  const summary = () => formatSummary(health(), sinks);
  let provider: MeterProvider | undefined;
  let unsubscribe: (() => void) | undefined;

  if (metricsExported(config)) {
    const target = { ...logsTarget(config), url: metricsEndpoint(config) };
    const exporter = new OTLPMetricExporter(otlpExporterOptions(target));
    const interval = Math.max(1000, config.otel.metrics.intervalMs);
    provider = new MeterProvider({
      resource: buildResource(config),
      readers: [
        new PeriodicExportingMetricReader({
          exporter,
          exportIntervalMillis: interval,
          exportTimeoutMillis: Math.min(interval, config.otel.timeoutMs, 5000),
        }),
      ],
    });
    const meter = provider.getMeter('soload', SOLOAD_VERSION);
    const counter = (name: string, description: string, unit = '{record}') => meter.createObservableCounter(name, { description, unit });
    const gauge = (name: string, description: string, unit: string) => meter.createObservableUpDownCounter(name, { description, unit });
    const loadsEmitted = counter('soload.loads.emitted', 'so.load records handed to the exporters');
    const loadsFiltered = counter('soload.loads.filtered', 'loads skipped by the configured filters');
    const exported = counter('soload.records.exported', 'records the collector acknowledged');
    const dropped = counter('soload.records.dropped', 'records given up on, by reason (queue_full, rejected, shutdown, spill_error)');
    const spilled = counter('soload.records.spilled', 'records written to the on-disk spill queue');
    const queued = gauge('soload.delivery.queued', 'records waiting for delivery, by store (memory, disk)', '{record}');
    const queuedBytes = gauge('soload.delivery.queued_bytes', 'bytes the delivery queue holds, by store: memory (request bodies waiting, including those on their way to disk) and disk (spill files)', 'By');
    const failures = counter('soload.export.failures', 'failed OTLP export requests (each retry counts)', '{request}');
    // The kernel reports losses in overlapping ways (a LOST marker on trace_pipe and the per-CPU ring
    // counters can describe the same events), so each source is its own metric: attribute values of
    // one metric must add up to a meaningful total, and these do not.
    const pipeLost = counter('soload.trace.pipe_lost_events', 'events trace_pipe reported lost ("LOST n EVENTS" markers, summed)', '{event}');
    const ringOverrun = counter('soload.ring.overrun', "events overwritten in soload's kernel ring buffer before they were read (per_cpu/cpu*/stats overrun, summed over CPUs)", '{event}');
    const ringCommitOverrun = counter('soload.ring.commit_overrun', 'events lost because a ring-buffer page filled while being written (per_cpu stats commit overrun)', '{event}');
    const ringDropped = counter('soload.ring.dropped_events', 'events the ring buffer refused (per_cpu stats dropped events; non-overwrite mode)', '{event}');
    const traceRecords = counter('soload.trace.records', 'records parsed from trace_pipe', '{event}');
    const malformed = counter('soload.trace.malformed_lines', 'trace_pipe lines that did not parse', '{line}');
    const elfInvalid = counter('soload.elf.invalid', 'files read as ELF objects at run time that could not be used, by reason (unreadable, not_elf, headers, contents)', '{read}');
    const avoided = counter('soload.faults.avoided', 'dlopen names unreadable at entry ("(fault)") recovered at return', '{load}');
    const unresolved = counter('soload.faults.unresolved', 'names (kind=name) or paths (kind=path) that stayed unreadable', '{load}');
    // One metric per outcome: a record can be renamed and deleted at once, so these do not add up.
    const pathMetrics = [
      ['renamed', counter('soload.paths.renamed', "records whose file.path differs from the loader's string (symlinks, .., merged /usr, memfd)", '{load}')],
      ['deleted', counter('soload.paths.deleted', 'records of files no longer present under their name (soload.file.deleted)', '{load}')],
      ['memfd', counter('soload.paths.memfd', 'records of memfd loads (soload.file.memfd)', '{load}')],
      ['replaced', counter('soload.paths.replaced', 'records whose name another file has taken since the load (soload.file.replaced)', '{load}')],
      ['namespaceGuessed', counter('soload.paths.namespace_guessed', 'records named in a fallback view: the process moved to a namespace soload could not pin in time', '{load}')],
      ['fdUnresolved', counter('soload.paths.fd_unresolved', '/proc/self/fd/N loads that could not be named (file.path left out)', '{load}')],
    ] as const;

    meter.addBatchObservableCallback(
      (r) => {
        const h = health();
        const obs = (o: Parameters<typeof r.observe>[0], v: number, a?: Attributes) => r.observe(o, v, a);
        obs(loadsEmitted, h.loads.emitted);
        obs(loadsFiltered, h.loads.filtered);
        obs(traceRecords, h.trace.records);
        obs(malformed, h.trace.malformed);
        obs(pipeLost, h.trace.lostEvents);
        obs(ringOverrun, h.trace.ring.overrun);
        obs(ringCommitOverrun, h.trace.ring.commitOverrun);
        obs(ringDropped, h.trace.ring.droppedEvents);
        for (const [reason, n] of Object.entries(h.elf?.invalid ?? {})) obs(elfInvalid, n, { reason });
        obs(avoided, h.faults.avoided);
        obs(unresolved, h.faults.nameUnresolved, { kind: 'name' });
        obs(unresolved, h.faults.pathUnresolved, { kind: 'path' });
        for (const [key, metric] of pathMetrics) obs(metric, h.paths[key]);
        // Per exporter: summed over `exporter`, exported is record deliveries (a record sent to two
        // exporters counts twice), as in the Collector's own otelcol_exporter_* metrics.
        for (const { name: exporter, stats: d } of sinks) {
          obs(exported, d.exported, { exporter });
          for (const reason of DROP_REASONS) obs(dropped, d.droppedByReason[reason], { exporter, reason });
          obs(spilled, d.spilledTotal, { exporter });
          obs(queued, d.buffered, { exporter, store: 'memory' });
          obs(queued, d.spilled, { exporter, store: 'disk' });
          obs(queuedBytes, d.bufferedBytes, { exporter, store: 'memory' });
          obs(queuedBytes, d.spilledBytes, { exporter, store: 'disk' });
          obs(failures, d.failedAttempts, { exporter });
        }
      },
      [loadsEmitted, loadsFiltered, traceRecords, malformed, elfInvalid, pipeLost, ringOverrun, ringCommitOverrun, ringDropped, avoided, unresolved, ...pathMetrics.map(([, m]) => m), exported, dropped, spilled, queued, queuedBytes, failures],
    );

    const latency = meter.createHistogram('soload.export.latency', {
      description: 'time from a record batch entering the delivery queue to the collector acknowledging it',
      unit: 's',
      advice: { explicitBucketBoundaries: LATENCY_BUCKETS_S },
    });
    const duration = meter.createHistogram('soload.export.duration', {
      description: 'duration of one OTLP export request, by outcome',
      unit: 's',
      advice: { explicitBucketBoundaries: LATENCY_BUCKETS_S },
    });
    unsubscribe = opts.pipeline?.onExport?.((o: SinkObservation) => {
      duration.record(o.durationMs / 1000, { exporter: o.exporter, outcome: o.ok ? 'success' : 'failure' });
      if (o.ok) latency.record(o.latencyMs / 1000, { exporter: o.exporter });
    });
  }

  let timer: NodeJS.Timeout | undefined;
  if (config.log.statsIntervalMs > 0) {
    timer = setInterval(() => log.info(summary()), config.log.statsIntervalMs);
    timer.unref();
  }

  let stopping: Promise<void> | undefined;
  return {
    summary,
    shutdown(timeoutMs?: number) {
      stopping ??= (async () => {
        if (timer) clearInterval(timer);
        unsubscribe?.();
        if (provider) {
          // Final export of the last values; bounded by exportTimeoutMillis, errors are not fatal.
          const done = provider.shutdown(timeoutMs !== undefined ? { timeoutMillis: timeoutMs } : undefined).catch((err: Error) => log.warn(`self-metrics: final export failed: ${err.message}`));
          // The OTLP exporter retries a refused connection inside its own timeout whatever the
          // provider's: past `timeoutMs` the final export is abandoned, not awaited.
          if (timeoutMs === undefined) await done;
          else {
            let t: NodeJS.Timeout | undefined;
            await Promise.race([done, new Promise<void>((r) => (t = setTimeout(r, timeoutMs)))]);
            clearTimeout(t);
          }
        }
        if (config.log.statsIntervalMs > 0) log.info(summary());
      })();
      return stopping;
    },
  };
}
