import fs from 'node:fs';
import type https from 'node:https';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPExporterBase, OTLPExporterError, CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
// A public entry point: otlp-exporter-base's package.json "exports" lists "./node-http", and it is what
// OTLPLogExporter itself is built from. (tsconfig "paths" maps it to the .d.ts that export names under
// "types", because the node10 module resolution of this project does not read "exports".)
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import { JsonLogsSerializer, ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { ErrorCodes, SoloadError } from '../errors';

/** Body encoding of an OTLP/HTTP request. */
export type OtlpEncoding = 'protobuf' | 'json';

/** One OTLP/HTTP ExportLogsServiceRequest body, ready to POST (or to write to the spill dir). */
export interface EncodedBatch {
  /**
   * The request body: the only form in which a batch is kept once it entered the delivery queue (the
   * records themselves are released), sent as is, retried as is and spilled as is.
   */
  body: Uint8Array;
  /** Log records in the request. */
  records: number;
  encoding: OtlpEncoding;
  /** When the records were handed to the delivery queue (ms since epoch); for latency. */
  enqueuedAt: number;
}

/** Outcome of one send: acknowledged, or failed (retryable: keep the batch and try again later). */
export type SendOutcome = { ok: true } | { ok: false; retryable: boolean; error: Error };

/** Sends one encoded batch; never rejects. */
export type BatchSender = (batch: EncodedBatch) => Promise<SendOutcome>;

/**
 * Serializes records into an OTLP request body, with the serializers OTLPLogExporter uses
 * (JsonLogsSerializer for http/json, ProtobufLogsSerializer for http/protobuf): the bytes are the ones
 * OTLPLogExporter would POST for these records. The only serialization a record goes through.
 */
export function encodeLogs(records: ReadableLogRecord[], encoding: OtlpEncoding): Uint8Array {
  const body = (encoding === 'json' ? JsonLogsSerializer : ProtobufLogsSerializer).serializeRequest(records);
  if (!body) throw new SoloadError(ErrorCodes.INTERNAL, 'OTLP serializer produced no request');
  return body;
}

export const CONTENT_TYPES: Record<OtlpEncoding, string> = {
  protobuf: 'application/x-protobuf',
  json: 'application/json',
};

/** TLS material for an OTLP endpoint (file paths; contents are read here and never logged). */
export interface OtlpTlsFiles {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/**
 * Node https.Agent options from TLS file paths: `ca` (trust these CAs for the collector's certificate),
 * `cert`+`key` (client certificate for mTLS). Throws SoloadError CONFIG_FILE naming the file (never
 * its content) when one cannot be read.
 */
export function tlsAgentOptions(tls: OtlpTlsFiles): https.AgentOptions {
  const read = (file: string | undefined, what: string): Buffer | undefined => {
    if (!file) return undefined;
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new SoloadError(ErrorCodes.CONFIG_FILE, `cannot read OTLP ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file });
    }
  };
  if (Boolean(tls.certFile) !== Boolean(tls.keyFile)) {
    throw new SoloadError(ErrorCodes.CONFIG_INVALID, 'otel.tls.certFile and otel.tls.keyFile must be set together (client certificate and its private key)');
  }
  const opts: https.AgentOptions = { keepAlive: true };
  const ca = read(tls.caFile, 'CA certificate file (otel.tls.caFile)');
  const cert = read(tls.certFile, 'client certificate file (otel.tls.certFile)');
  const key = read(tls.keyFile, 'client key file (otel.tls.keyFile)');
  if (ca) opts.ca = ca;
  if (cert) opts.cert = cert;
  if (key) opts.key = key;
  return opts;
}

/** What an OTLP/HTTP exporter of soload needs: the same for logs (here) and metrics (self-telemetry). */
export interface OtlpHttpTarget {
  url: string;
  headers: Record<string, string>;
  timeoutMs: number;
  compression: 'gzip' | 'none';
  tls: OtlpTlsFiles;
}

/** Options in the shape the OTel JS OTLP/HTTP exporters take (OTLPExporterNodeConfigBase). */
export function otlpExporterOptions(target: OtlpHttpTarget) {
  return {
    url: target.url,
    headers: { ...target.headers },
    timeoutMillis: target.timeoutMs,
    compression: target.compression === 'gzip' ? CompressionAlgorithm.GZIP : CompressionAlgorithm.NONE,
    httpAgentOptions: tlsAgentOptions(target.tls),
  };
}

/**
 * True when a failed request should be retried later. 4xx answers that mean "this request is
 * malformed/too big/unsupported" (400, 413, 415, …) will fail the same way forever, so the batch is
 * dropped (counted as "rejected"); everything else — network errors, timeouts, 5xx, 429, 408, and
 * 401/403/404 (credentials or routing being fixed by an operator) — is retried.
 */
export function isRetryable(error: unknown): boolean {
  const code = error instanceof OTLPExporterError ? error.code : undefined;
  if (typeof code !== 'number') return true;
  if (code < 400 || code >= 500) return true;
  return [401, 403, 404, 408, 429].includes(code);
}

/**
 * A failed export as one line for soload's log: the HTTP status and reason when the collector
 * answered, else the transport error. Never the response body: a proxy or collector may reflect
 * the request's headers (credentials) into it.
 */
export function describeExportError(error: Error): string {
  if (error instanceof OTLPExporterError && typeof error.code === 'number') return `HTTP ${error.code}${error.message ? ` ${error.message}` : ''}`;
  return error.message;
}

/** One export() through an OTel exporter, as a SendOutcome (never rejects). */
function exportOnce<T>(exporter: { export(items: T, cb: (r: { code: ExportResultCode; error?: Error }) => void): void }, items: T): Promise<SendOutcome> {
  return new Promise((resolve) => {
    try {
      exporter.export(items, (result) => {
        if (result.code === ExportResultCode.SUCCESS) resolve({ ok: true });
        else {
          const error = result.error ?? new Error('OTLP export failed');
          resolve({ ok: false, retryable: isRetryable(error), error });
        }
      });
    } catch (err) {
      resolve({ ok: false, retryable: true, error: err as Error });
    }
  });
}

/**
 * The one transport of soload's records: OTLP/HTTP request bodies, already encoded (once, when the
 * batch entered the delivery queue), POSTed byte for byte.
 *
 * Built exactly the way `OTLPLogExporter` (@opentelemetry/exporter-logs-otlp-http 0.223, node
 * platform) builds itself — `OTLPExporterBase` over `createOtlpHttpExportDelegate(convertLegacyHttpOptions(
 * config, 'LOGS', 'v1/logs', {Content-Type}))` from otlp-exporter-base's public "./node-http" export —
 * with one difference: its serializer passes the stored body through instead of serializing records.
 * So soload keeps everything that exporter stack does (TLS via httpAgentOptions, gzip, User-Agent,
 * OTEL_EXPORTER_OTLP_* environment, partial-success logging, its short in-request retry bounded by the
 * timeout) without OTLPLogExporter's own JsonLogsSerializer pass: with it, every http/json batch was
 * serialized twice (once for the byte bound and the spill file, once to send), and a replayed spill
 * file needed a second, body-level transport anyway. One path now serves json and protobuf, memory
 * and disk, first attempt and retry alike; `test/unit/otel/otlp-sender.test.ts` checks that a request
 * is byte-identical, headers included, to what OTLPLogExporter sends for the same records.
 *
 * One exporter per body encoding (the Content-Type differs), created on first use: normally only the
 * configured one; the other only when the spill directory holds files from a run with the other
 * protocol.
 */
export function createOtlpBatchSender(target: OtlpHttpTarget): { send: BatchSender; shutdown(): Promise<void> } {
  const exporters = new Map<OtlpEncoding, OTLPExporterBase<EncodedBatch>>();
  const agentOptions = tlsAgentOptions(target.tls); // read once; fail at start, not at first send
  const exporterFor = (encoding: OtlpEncoding): OTLPExporterBase<EncodedBatch> => {
    let ex = exporters.get(encoding);
    if (ex) return ex;
    const responses = encoding === 'json' ? JsonLogsSerializer : ProtobufLogsSerializer;
    const serializer = {
      serializeRequest: (b: EncodedBatch) => b.body,
      deserializeResponse: (data: Uint8Array) => responses.deserializeResponse(data),
    };
    const options = convertLegacyHttpOptions(
      {
        url: target.url,
        headers: { ...target.headers },
        timeoutMillis: target.timeoutMs,
        compression: target.compression === 'gzip' ? CompressionAlgorithm.GZIP : CompressionAlgorithm.NONE,
        httpAgentOptions: agentOptions,
        // soload sends one request at a time (RetryingLogExporter); the limit only has to admit it.
        concurrencyLimit: 4,
      },
      'LOGS',
      'v1/logs',
      { 'Content-Type': CONTENT_TYPES[encoding] },
    );
    const delegate = createOtlpHttpExportDelegate(options, serializer, 'otlp_http_log_exporter', { name: 'log', countItems: (b: EncodedBatch) => b.records }, undefined);
    ex = new OTLPExporterBase<EncodedBatch>(delegate);
    exporters.set(encoding, ex);
    return ex;
  };
  const send: BatchSender = (batch) => exportOnce(exporterFor(batch.encoding), batch);
  return {
    send,
    async shutdown() {
      await Promise.all([...exporters.values()].map((e) => e.shutdown().catch(() => undefined)));
    },
  };
}
