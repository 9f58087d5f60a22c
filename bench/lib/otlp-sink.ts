/**
 * The far end of the benchmarks' delivery path: an OTLP/HTTP (protobuf) receiver that the real
 * Collector's otlphttp exporter forwards to, stamping each request with the time its body was
 * complete. With the Collector configured to forward synchronously (no batch processor, no sending
 * queue: see collectorPath.ts), a request reaches this receiver while soload's own request to the
 * Collector is still open, so that stamp is the Collector's receipt plus one loopback hop — and the
 * Collector acknowledges soload only after this receiver answered.
 *
 * Why not the file exporter and its file's mtime: it batches writes on a flush interval, so an mtime
 * dates a whole flush, not a record, and re-reading a growing file costs more than the records.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import zlib from 'node:zlib';
import { readLogRecords, readMetricSums, type SeenLog } from './otlp-proto';

export interface OtlpSinkOptions {
  /** Log attributes to decode (others are skipped). */
  logKeys: readonly string[];
  /** Called for every log record, with the arrival time of its request (ms since the epoch, sub-ms). */
  onLog(rec: SeenLog, arrivalMs: number): void;
}

export interface OtlpSink {
  /** Base URL for the Collector's otlphttp `endpoint` (it appends /v1/logs, /v1/metrics). */
  url: string;
  /** Log records received so far. */
  readonly logRecords: number;
  /** Latest value of every counter/gauge soload exported, and when it arrived. */
  readonly metrics: ReadonlyMap<string, number>;
  readonly metricsArrivedAt: number;
  /** Requests the receiver could not decode (answered 400; should stay 0). */
  readonly badRequests: number;
  /** Resolves at the first metrics request arriving after `afterMs`, or at the timeout (false). */
  nextMetrics(afterMs: number, timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** Wall-clock now in ms with sub-millisecond resolution (Date.now() has whole ms). */
export const nowMs = (): number => performance.timeOrigin + performance.now();

export async function startOtlpSink(opts: OtlpSinkOptions): Promise<OtlpSink> {
  const keys = new Set(opts.logKeys);
  let logRecords = 0;
  let badRequests = 0;
  let metrics = new Map<string, number>();
  let metricsArrivedAt = 0;
  const metricWaiters: Array<{ after: number; resolve: (ok: boolean) => void }> = [];

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const arrival = nowMs();
      try {
        let body = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') body = zlib.gunzipSync(body);
        if (!/protobuf/.test(req.headers['content-type'] ?? '')) throw new Error(`unexpected content type ${req.headers['content-type']}`);
        if (req.url === '/v1/logs') {
          logRecords += readLogRecords(body, keys, (rec) => opts.onLog(rec, arrival));
        } else if (req.url === '/v1/metrics') {
          // soload exports cumulative sums: the latest request holds the totals
          const got = readMetricSums(body);
          metrics = new Map([...metrics, ...got]);
          metricsArrivedAt = arrival;
          for (let i = metricWaiters.length - 1; i >= 0; i--) {
            if (arrival > metricWaiters[i]!.after) metricWaiters.splice(i, 1)[0]!.resolve(true);
          }
        } else {
          res.writeHead(404).end();
          return;
        }
        // An empty Export*ServiceResponse: full success, no partial-success message.
        res.writeHead(200, { 'Content-Type': 'application/x-protobuf', 'Content-Length': '0' }).end();
      } catch (err) {
        badRequests++;
        res.writeHead(400, { 'Content-Type': 'text/plain' }).end(String((err as Error).message));
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    get logRecords() {
      return logRecords;
    },
    get metrics() {
      return metrics;
    },
    get metricsArrivedAt() {
      return metricsArrivedAt;
    },
    get badRequests() {
      return badRequests;
    },
    nextMetrics(afterMs, timeoutMs) {
      if (metricsArrivedAt > afterMs) return Promise.resolve(true);
      return new Promise((resolve) => {
        const w = { after: afterMs, resolve };
        metricWaiters.push(w);
        setTimeout(() => {
          const i = metricWaiters.indexOf(w);
          if (i >= 0) {
            metricWaiters.splice(i, 1);
            resolve(false);
          }
        }, timeoutMs).unref();
      });
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
