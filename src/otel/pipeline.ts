import type { Logger } from '@opentelemetry/api-logs';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import {
  BatchLogRecordProcessor,
  LoggerProvider,
  SimpleLogRecordProcessor,
  type LogRecordExporter,
  type LogRecordProcessor,
  type ReadableLogRecord,
} from '@opentelemetry/sdk-logs';
import type { SoloadConfig } from '../config/schema';
import { JsonLinesLogExporter } from './console-exporter';
import { createOtlpBatchSender, type OtlpHttpTarget } from './otlp-sender';
import { emptyDeliveryStats, RetryingLogExporter, type DeliveryStats, type ExportObservation } from './retrying-exporter';
import { AgentLoggers, agentInstanceId, agentResource, DeclaredKeyFilter, hostAttributes, ProcessLoggers, SCOPE_NAME, type RecordLoggers } from './resources';
import { SpillStore } from './spill';

/** soload's own version, reported as service.version. */
export const SOLOAD_VERSION: string = (() => {
  try {
    return (require('../../../package.json') as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();

/** An exporter soload can be configured with (`otel.exporters`; "none" means an empty list). */
export type ExporterName = 'otlp' | 'console';

/** The delivery counters of one configured exporter. */
export interface SinkStats {
  name: ExporterName;
  stats: DeliveryStats;
}

/** An export observation, tagged with the exporter that made it. */
export type SinkObservation = ExportObservation & { exporter: ExporterName };

/** The export side of soload: a Logger plus what it takes to flush and stop it. */
export interface LogPipeline {
  /** soload's own Logger (its resource). */
  logger: Logger;
  /** The Logger of each record, by the resource mode: the process's resource, or soload's. */
  loggers: RecordLoggers;
  /** Delivery counters of every configured exporter, in a fixed order (otlp first); empty for "none". */
  sinks: readonly SinkStats[];
  /** The first sink's counters (undefined with exporters ["none"]). */
  delivery?: DeliveryStats;
  /** Subscribes to per-request export observations (self-metrics); returns an unsubscribe function. */
  onExport?(fn: (o: SinkObservation) => void): () => void;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/** soload's own resource: the host and soload's service identity (agent mode, self-metrics). */
export function buildResource(config: SoloadConfig) {
  return agentResource({ serviceName: config.otel.serviceName, version: SOLOAD_VERSION, attributes: config.otel.resourceAttributes });
}

/** The OTLP/HTTP target of the logs exporter (URL, headers, TLS files, timeout, compression). */
export function logsTarget(config: SoloadConfig): OtlpHttpTarget {
  return {
    url: config.otel.endpoint,
    headers: config.otel.headers,
    timeoutMs: config.otel.timeoutMs,
    compression: config.otel.compression === 'gzip' ? 'gzip' : 'none',
    tls: { caFile: config.otel.tls.caFile || undefined, certFile: config.otel.tls.certFile || undefined, keyFile: config.otel.tls.keyFile || undefined },
  };
}

/** What {@link createLogExporter} needs besides the config. */
export interface ExporterFactoryOptions {
  consoleOut?: NodeJS.WritableStream;
  warn?: (m: string) => void;
  info?: (m: string) => void;
  /** Receives every export observation of the exporter. */
  observe?: (o: ExportObservation) => void;
}

/** A built exporter: its processor for the LoggerProvider and its live delivery counters. */
export interface BuiltExporter {
  name: ExporterName;
  processor: LogRecordProcessor;
  stats: DeliveryStats;
}

/**
 * The one place exporters are built, so that every exporter — whatever `otel.exporters` selects —
 * comes with delivery counters and export observations, and the self-telemetry (stats line, metrics)
 * works the same with ["otlp"], ["console"] or both.
 *
 * - `otlp`: BatchLogRecordProcessor → RetryingLogExporter (bounded queue of encoded request bodies,
 *   spill directory) → {@link createOtlpBatchSender}, the OTel JS OTLP/HTTP exporter stack.
 * - `console`: SimpleLogRecordProcessor → {@link CountingLogExporter} around JsonLinesLogExporter
 *   (synchronous: nothing is ever queued; a closed stdout counts as `rejected`).
 */
export function createLogExporter(name: ExporterName, config: SoloadConfig, opts: ExporterFactoryOptions = {}): BuiltExporter {
  if (name === 'console') {
    const exporter = new CountingLogExporter(new JsonLinesLogExporter(opts.consoleOut), opts.observe);
    return { name, processor: new SimpleLogRecordProcessor({ exporter }), stats: exporter.stats };
  }
  const sender = createOtlpBatchSender(logsTarget(config));
  const d = config.otel.delivery;
  const retrying = new RetryingLogExporter({
    send: sender.send,
    encoding: config.otel.protocol === 'http/json' ? 'json' : 'protobuf',
    maxBufferedRecords: d.maxBufferedRecords,
    maxBufferedBytes: d.maxBufferedBytes,
    spill: d.spillDir ? new SpillStore(d.spillDir, d.maxSpillBytes) : undefined,
    initialBackoffMs: d.initialBackoffMs,
    maxBackoffMs: d.maxBackoffMs,
    shutdownDrainMs: d.shutdownDrainMs,
    requestTimeoutMs: config.otel.timeoutMs,
    warn: opts.warn,
    info: opts.info,
    observe: opts.observe,
    onShutdown: () => sender.shutdown(),
  });
  const processor = new BatchLogRecordProcessor({
    exporter: retrying,
    maxQueueSize: config.otel.batch.maxQueueSize,
    maxExportBatchSize: config.otel.batch.maxExportBatchSize,
    scheduledDelayMillis: config.otel.batch.scheduledDelayMs,
    exportTimeoutMillis: config.otel.timeoutMs,
  });
  return { name, processor, stats: retrying.stats };
}

/**
 * Delivery counters for an exporter without a queue of its own (the console): records it wrote are
 * `exported`, records it failed to write are `dropped` with reason `rejected` and one export failure.
 */
export class CountingLogExporter implements LogRecordExporter {
  readonly stats: DeliveryStats = emptyDeliveryStats();

  constructor(
    private readonly inner: LogRecordExporter,
    private readonly observe?: (o: ExportObservation) => void,
  ) {}

  export(logs: ReadableLogRecord[], resultCallback: (result: ExportResult) => void): void {
    const started = Date.now();
    this.inner.export(logs, (result) => {
      const ok = result.code === ExportResultCode.SUCCESS;
      if (ok) this.stats.exported += logs.length;
      else {
        this.stats.failedAttempts++;
        this.stats.dropped += logs.length;
        this.stats.droppedByReason.rejected += logs.length;
      }
      const ms = Date.now() - started;
      this.observe?.({ records: logs.length, ok, durationMs: ms, latencyMs: ms });
      resultCallback(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/** The exporters `otel.exporters` selects, in soload's fixed order (otlp, console); "none" selects none. */
export function selectedExporters(config: SoloadConfig): ExporterName[] {
  const set = new Set(config.otel.exporters);
  return (['otlp', 'console'] as const).filter((n) => set.has(n));
}

/** Builds the LoggerProvider with the exporters the config selects (through {@link createLogExporter}). */
export function createLogPipeline(
  config: SoloadConfig,
  opts: { consoleOut?: NodeJS.WritableStream; warn?: (m: string) => void; info?: (m: string) => void } = {},
): LogPipeline {
  const observers = new Set<(o: SinkObservation) => void>();
  const built = selectedExporters(config).map((name) =>
    createLogExporter(name, config, { ...opts, observe: (o) => observers.forEach((fn) => fn({ ...o, exporter: name })) }),
  );
  const processors = built.map((b) => b.processor);
  const provider = new LoggerProvider({ resource: buildResource(config), processors });
  const logger = provider.getLogger(SCOPE_NAME, SOLOAD_VERSION);
  const loggers: RecordLoggers =
    config.otel.resourceMode === 'agent'
      ? new AgentLoggers(logger)
      : new ProcessLoggers({
          processors,
          host: hostAttributes(),
          defaults: config.otel.processResourceAttributes,
          declared: new DeclaredKeyFilter(config.otel.processDeclaredAttributes),
          // soload's identity, now that the resource is the traced process's
          scope: {
            name: SCOPE_NAME,
            version: SOLOAD_VERSION,
            attributes: { 'soload.agent.service.name': config.otel.serviceName, 'soload.agent.instance.id': agentInstanceId() },
          },
        });
  const sinks = built.map(({ name, stats }) => ({ name, stats }));
  return {
    logger,
    loggers,
    sinks,
    delivery: sinks[0]?.stats,
    onExport(fn) {
      observers.add(fn);
      return () => observers.delete(fn);
    },
    forceFlush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}
