import os from 'node:os';
import type { Logger } from '@opentelemetry/api-logs';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider, SimpleLogRecordProcessor, type LogRecordProcessor } from '@opentelemetry/sdk-logs';
import type { SoloadConfig } from '../config/schema';
import { JsonLinesLogExporter } from './console-exporter';
import { createOtlpBatchSender, createOtlpLogExporterSender, type OtlpHttpTarget } from './otlp-sender';
import { RetryingLogExporter, type DeliveryStats, type ExportObservation } from './retrying-exporter';
import { SpillStore } from './spill';

/** soload's own version, reported as service.version. */
export const SOLOAD_VERSION: string = (() => {
  try {
    return (require('../../../package.json') as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();

/** The export side of soload: a Logger plus what it takes to flush and stop it. */
export interface LogPipeline {
  logger: Logger;
  delivery?: DeliveryStats;
  /** Subscribes to per-request export observations (self-metrics); returns an unsubscribe function. */
  onExport?(fn: (o: ExportObservation) => void): () => void;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * Resource = the host and soload's own service identity. The traced process's service.name is a
 * record attribute instead: one soload reports for every service on the host.
 */
export function buildResource(config: SoloadConfig) {
  return defaultResource().merge(
    resourceFromAttributes({
      'host.name': os.hostname(),
      'host.arch': process.arch,
      'os.type': 'linux',
      'os.version': os.release(),
      'service.version': SOLOAD_VERSION,
      'service.instance.id': `${os.hostname()}:${process.pid}`,
      ...config.otel.resourceAttributes,
      'service.name': config.otel.serviceName,
    }),
  );
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

/** Builds the LoggerProvider with the exporters the config selects. */
export function createLogPipeline(
  config: SoloadConfig,
  opts: { consoleOut?: NodeJS.WritableStream; warn?: (m: string) => void; info?: (m: string) => void } = {},
): LogPipeline {
  const processors: LogRecordProcessor[] = [];
  let retrying: RetryingLogExporter | undefined;
  const observers = new Set<(o: ExportObservation) => void>();
  const exporters = new Set(config.otel.exporters);
  if (exporters.has('otlp')) {
    // http/json (default): records are sent by @opentelemetry/exporter-logs-otlp-http's OTLPLogExporter;
    // http/protobuf: pre-encoded protobuf bodies through the same OTel node transport.
    const sender = config.otel.protocol === 'http/json' ? createOtlpLogExporterSender(logsTarget(config)) : createOtlpBatchSender(logsTarget(config));
    const d = config.otel.delivery;
    retrying = new RetryingLogExporter({
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
      observe: (o) => observers.forEach((fn) => fn(o)),
      onShutdown: () => sender.shutdown(),
    });
    processors.push(
      new BatchLogRecordProcessor({
        exporter: retrying,
        maxQueueSize: config.otel.batch.maxQueueSize,
        maxExportBatchSize: config.otel.batch.maxExportBatchSize,
        scheduledDelayMillis: config.otel.batch.scheduledDelayMs,
        exportTimeoutMillis: config.otel.timeoutMs,
      }),
    );
  }
  if (exporters.has('console')) {
    processors.push(new SimpleLogRecordProcessor({ exporter: new JsonLinesLogExporter(opts.consoleOut) }));
  }
  const provider = new LoggerProvider({ resource: buildResource(config), processors });
  const logger = provider.getLogger('soload', SOLOAD_VERSION);
  return {
    logger,
    delivery: retrying?.stats,
    onExport(fn) {
      observers.add(fn);
      return () => observers.delete(fn);
    },
    forceFlush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}
