import { ExportResultCode, hrTimeToNanoseconds, type ExportResult } from '@opentelemetry/core';
import type { LogRecordExporter, ReadableLogRecord } from '@opentelemetry/sdk-logs';

/** One exported record as printed on the console (one JSON object per line). */
export interface ConsoleRecord {
  timestamp: string;
  observedTimestamp: string;
  timeUnixNano: string;
  eventName?: string;
  severityText?: string;
  body: unknown;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
  /** The instrumentation scope: soload, with its agent identity as attributes in process resource mode. */
  scope: { name: string; version?: string; attributes?: Record<string, unknown> };
}

/** Flattens a ReadableLogRecord into the console's JSON shape (pure). */
export function toConsoleRecord(r: ReadableLogRecord): ConsoleRecord {
  // exact: hrTimeToNanoseconds returns a float number, which rounds ns since the epoch (> 2^53)
  const ns = BigInt(r.hrTime[0]) * 1_000_000_000n + BigInt(r.hrTime[1]);
  return {
    timestamp: new Date(Number(ns / 1_000_000n)).toISOString(),
    observedTimestamp: new Date(Number(BigInt(hrTimeToNanoseconds(r.hrTimeObserved)) / 1_000_000n)).toISOString(),
    timeUnixNano: ns.toString(),
    eventName: r.eventName,
    severityText: r.severityText,
    body: r.body,
    attributes: { ...r.attributes },
    resource: { ...r.resource.attributes },
    scope: {
      name: r.instrumentationScope.name,
      ...(r.instrumentationScope.version !== undefined ? { version: r.instrumentationScope.version } : {}),
      ...(r.instrumentationScope.attributes && Object.keys(r.instrumentationScope.attributes).length ? { attributes: { ...r.instrumentationScope.attributes } } : {}),
    },
  };
}

/**
 * Writes each record as one JSON line. Unlike the SDK's ConsoleLogRecordExporter (multi-line
 * util.inspect output), this is machine-readable: `soload | jq` works.
 */
export class JsonLinesLogExporter implements LogRecordExporter {
  private readonly out: NodeJS.WritableStream;

  constructor(out: NodeJS.WritableStream = process.stdout) {
    this.out = out;
  }

  export(logs: ReadableLogRecord[], resultCallback: (result: ExportResult) => void): void {
    const out = this.out as NodeJS.WritableStream & { destroyed?: boolean; writable?: boolean };
    if (out.destroyed || out.writable === false) {
      // The reader is gone (EPIPE): the process is stopping; writing again would only throw again.
      resultCallback({ code: ExportResultCode.FAILED, error: new Error('console output is closed') });
      return;
    }
    try {
      this.out.write(logs.map((r) => JSON.stringify(toConsoleRecord(r)) + '\n').join(''));
      resultCallback({ code: ExportResultCode.SUCCESS });
    } catch (error) {
      resultCallback({ code: ExportResultCode.FAILED, error: error as Error });
    }
  }

  async shutdown(): Promise<void> {}

  async forceFlush(): Promise<void> {}
}
