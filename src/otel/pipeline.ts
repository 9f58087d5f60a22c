import os from 'node:os';
import type { Logger } from '@opentelemetry/api-logs';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider, SimpleLogRecordProcessor, type LogRecordProcessor } from '@opentelemetry/sdk-logs';
import type { SoloadConfig } from '../config/schema';
import { JsonLinesLogExporter } from './console-exporter';
import { RetryingLogExporter, type DeliveryStats } from './retrying-exporter';

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

/** Builds the LoggerProvider with the exporters the config selects. */
export function createLogPipeline(config: SoloadConfig, opts: { consoleOut?: NodeJS.WritableStream; warn?: (m: string) => void } = {}): LogPipeline {
  const processors: LogRecordProcessor[] = [];
  let retrying: RetryingLogExporter | undefined;
  const exporters = new Set(config.otel.exporters);
  if (exporters.has('otlp')) {
    const otlp = new OTLPLogExporter({
      url: config.otel.endpoint,
      headers: config.otel.headers,
      timeoutMillis: config.otel.timeoutMs,
    });
    retrying = new RetryingLogExporter(otlp, { maxBufferedRecords: config.otel.batch.maxQueueSize, warn: opts.warn });
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
    forceFlush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}
