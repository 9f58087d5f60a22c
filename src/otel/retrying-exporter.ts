import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { LogRecordExporter, ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { describeExportError, encodeLogs, type BatchSender, type EncodedBatch, type OtlpEncoding } from './otlp-sender';
import { heldBytes, type SpillStore, type SpilledBatch } from './spill';
import { escapeForLog } from '../util/path-bytes';

/** Why records were dropped (the `reason` attribute of soload.records.dropped). */
export type DropReason = 'queue_full' | 'rejected' | 'shutdown' | 'spill_error';
export const DROP_REASONS: readonly DropReason[] = ['queue_full', 'rejected', 'shutdown', 'spill_error'];

/** Delivery counters of a {@link RetryingLogExporter}. Monotonic unless noted. */
export interface DeliveryStats {
  /** Records the collector acknowledged. */
  exported: number;
  /** Records given up on, total (= sum of droppedByReason). */
  dropped: number;
  droppedByReason: Record<DropReason, number>;
  /** Records waiting in memory (gauge). */
  buffered: number;
  /**
   * Bytes of memory held by the delivery queue (gauge): the request bodies waiting in memory plus the
   * ones on their way to the spill directory. Bodies are all that is kept — the records themselves are
   * released once encoded — so this is the queue's real footprint, and what maxBufferedBytes bounds.
   */
  bufferedBytes: number;
  /** Records waiting in the spill directory (gauge). */
  spilled: number;
  /** Bytes waiting in the spill directory (gauge). */
  spilledBytes: number;
  /** Records ever written to the spill directory (overflow and at shutdown). */
  spilledTotal: number;
  /** Records found in the spill directory at start (a previous run's undelivered records). */
  recovered: number;
  /** Failed OTLP requests (each retry counts). */
  failedAttempts: number;
}

/** Delivery counters all at zero (an exporter that has not delivered anything yet). */
export function emptyDeliveryStats(): DeliveryStats {
  return {
    exported: 0,
    dropped: 0,
    droppedByReason: { queue_full: 0, rejected: 0, shutdown: 0, spill_error: 0 },
    buffered: 0,
    bufferedBytes: 0,
    spilled: 0,
    spilledBytes: 0,
    spilledTotal: 0,
    recovered: 0,
    failedAttempts: 0,
  };
}

/** Per-request observation, for the export latency histograms. */
export interface ExportObservation {
  records: number;
  ok: boolean;
  /** Duration of the request (including the OTLP transport's own short retries), ms. */
  durationMs: number;
  /** Time from entering the queue to acknowledgement, ms (only when ok). */
  latencyMs: number;
}

/** Options of {@link RetryingLogExporter}. */
export interface RetryOptions {
  send: BatchSender;
  encoding?: OtlpEncoding;
  /** Request body encoder (default: the OTLP protobuf/JSON serializer for `encoding`). */
  encode?: (logs: ReadableLogRecord[], encoding: OtlpEncoding) => Uint8Array;
  /** In-memory bound, in records. */
  maxBufferedRecords: number;
  /**
   * In-memory bound, in bytes of request bodies held (default 256 MiB). With a spill store, 1/8 of it
   * (at most 16 MiB) is kept for bodies waiting to be written to disk.
   */
  maxBufferedBytes?: number;
  /** Optional on-disk overflow/persistence queue. */
  spill?: SpillStore;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** How long shutdown keeps trying to deliver what is buffered before spilling/dropping it. */
  shutdownDrainMs?: number;
  /** Upper bound of one request (shutdown waits at most this long for one in flight). */
  requestTimeoutMs?: number;
  warn?: (msg: string) => void;
  info?: (msg: string) => void;
  observe?: (o: ExportObservation) => void;
  /** Called once the sender is shut down (e.g. to close its transport). */
  onShutdown?: () => Promise<void>;
  now?: () => number;
}

type Head = { kind: 'memory'; batch: EncodedBatch } | { kind: 'disk'; entry: SpilledBatch };

/** What the pump does after an attempt. */
type Next = 'continue' | 'backoff';

const MAX_SPILL_WRITE_BUFFER = 16 * 1024 * 1024;

/**
 * The delivery queue between the BatchLogRecordProcessor and the collector.
 *
 * - Every batch is encoded once into an OTLP request body and acknowledged to the batch processor at
 *   once, so the processor's own queue keeps flowing while the collector is away. The body is the only
 *   thing kept: it is sent, retried and spilled as is (the records are released), so the byte bound
 *   counts what the queue really holds.
 * - Bodies are sent one at a time, oldest first; a failed request is retried with exponential backoff
 *   (one request in flight, so a request the collector acknowledged is never sent again, and nothing
 *   is sent twice at shutdown).
 * - Bounded: maxBufferedRecords/maxBufferedBytes in memory; past that, with a SpillStore, batches go to
 *   disk (and, to keep order, so does everything after them until the disk queue is empty); without
 *   one, or when the disk bound is hit too, the newest records are dropped — counted by reason and
 *   warned about, never silent.
 * - At shutdown, what could not be delivered within shutdownDrainMs is written to the spill directory
 *   (replayed by the next start) or, without one, counted as dropped.
 */
export class RetryingLogExporter implements LogRecordExporter {
  /** Live counters; the byte and spill gauges are read from the queues when accessed. */
  readonly stats: DeliveryStats;
  private readonly opts: Required<Omit<RetryOptions, 'spill' | 'observe' | 'onShutdown'>> & Pick<RetryOptions, 'spill' | 'observe' | 'onShutdown'>;
  private readonly memory: EncodedBatch[] = [];
  /** heldBytes() of the bodies in `memory`. */
  private memoryBytes = 0;
  /** Part of maxBufferedBytes kept for bodies on their way to the spill directory. */
  private readonly spillWriteBuffer: number;
  private inflight?: Promise<void>;
  private backoffMs: number;
  private timer?: NodeJS.Timeout;
  private outage = false;
  /**
   * Set when a drain ran out of time during an outage: the SDK calls forceFlush and then shutdown,
   * each of which drains; waiting a second time for a collector that just failed for the whole
   * budget only delays the exit (and the spill of what is left). Cleared by a delivery.
   */
  private drainGaveUp = false;
  private closed = false;
  private draining = false;
  private lastDropWarn = 0;
  private dropsSinceWarn = 0;
  private lastSlowDiskWarn = 0;

  constructor(opts: RetryOptions) {
    this.opts = {
      encoding: 'protobuf',
      encode: encodeLogs,
      maxBufferedBytes: 256 * 1024 * 1024,
      initialBackoffMs: 500,
      maxBackoffMs: 5_000,
      shutdownDrainMs: 5_000,
      requestTimeoutMs: 10_000,
      warn: (m) => process.stderr.write(`soload: warn: ${escapeForLog(m)}\n`),
      info: () => {},
      now: Date.now,
      ...opts,
    };
    this.backoffMs = this.opts.initialBackoffMs;
    const spill = this.opts.spill;
    this.spillWriteBuffer = spill ? Math.min(MAX_SPILL_WRITE_BUFFER, Math.floor(this.opts.maxBufferedBytes / 8)) : 0;
    const memoryBytes = () => this.memoryBytes + (spill?.size.pendingBytes ?? 0);
    this.stats = Object.defineProperties(emptyDeliveryStats(), {
      bufferedBytes: { get: memoryBytes, enumerable: true },
      spilled: { get: () => spill?.size.records ?? 0, enumerable: true },
      spilledBytes: { get: () => spill?.size.bytes ?? 0, enumerable: true },
    });
    if (spill) {
      spill.onWriteError = (entry, err) => {
        this.opts.warn(`cannot write to spill directory ${spill.dir}: ${err.message}`);
        this.drop(entry.records, 'spill_error');
      };
      this.stats.recovered = spill.size.records;
      if (spill.size.records > 0) {
        this.opts.info(`spill directory ${spill.dir} holds ${spill.size.records} undelivered records from an earlier run; delivering them first`);
        setImmediate(() => this.pump());
      }
    }
  }

  export(logs: ReadableLogRecord[], resultCallback: (result: ExportResult) => void): void {
    if (this.closed) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error('exporter is shut down') });
      return;
    }
    if (logs.length > 0) this.admit(logs);
    resultCallback({ code: ExportResultCode.SUCCESS });
    this.pump();
  }

  private admit(logs: ReadableLogRecord[]): void {
    const now = this.opts.now();
    const spill = this.opts.spill;
    const roomRecords = this.opts.maxBufferedRecords - this.stats.buffered;
    // With a spill dir: once anything is on disk, later batches queue behind it on disk too.
    if (spill && (spill.size.files > 0 || roomRecords < logs.length)) {
      const batch = this.encode(logs, now);
      if (batch && !this.toDisk(batch)) this.drop(batch.records, 'queue_full');
      return;
    }
    const take = Math.max(0, Math.min(roomRecords, logs.length));
    if (take < logs.length) this.drop(logs.length - take, 'queue_full');
    if (take === 0) return;
    const batch = this.encode(take === logs.length ? logs : logs.slice(0, take), now);
    if (!batch) return;
    const held = heldBytes(batch.body);
    if (this.stats.bufferedBytes + held > this.opts.maxBufferedBytes - this.spillWriteBuffer && this.memory.length > 0) {
      if (!(spill && this.toDisk(batch))) this.drop(batch.records, 'queue_full');
      return;
    }
    this.memory.push(batch);
    this.stats.buffered += batch.records;
    this.memoryBytes += held;
  }

  private encode(logs: ReadableLogRecord[], now: number): EncodedBatch | undefined {
    try {
      return { body: this.opts.encode(logs, this.opts.encoding), records: logs.length, encoding: this.opts.encoding, enqueuedAt: now };
    } catch (err) {
      this.opts.warn(`cannot encode ${logs.length} records as OTLP: ${(err as Error).message}`);
      this.drop(logs.length, 'rejected');
      return undefined;
    }
  }

  /**
   * Queues a batch for the spill dir; false when the disk bound is reached, or when the bodies still
   * waiting to be written already fill their share of maxBufferedBytes (the disk does not keep up;
   * `force` at shutdown, when that memory is held anyway). The write itself is asynchronous: an I/O
   * error arrives later through SpillStore.onWriteError and counts the batch as dropped (spill_error).
   */
  private toDisk(batch: EncodedBatch, force = false): boolean {
    const spill = this.opts.spill!;
    const pending = spill.size.pendingBytes;
    if (!force && pending > 0 && pending + heldBytes(batch.body) > this.spillWriteBuffer) {
      const now = this.opts.now();
      if (now - this.lastSlowDiskWarn >= 10_000) {
        this.lastSlowDiskWarn = now;
        this.opts.warn(`spill directory ${spill.dir} does not keep up: ${pending} bytes still waiting to be written`);
      }
      return false;
    }
    if (!spill.append(batch)) return false;
    this.stats.spilledTotal += batch.records;
    return true;
  }

  private drop(n: number, reason: DropReason): void {
    if (n <= 0) return;
    this.stats.dropped += n;
    this.stats.droppedByReason[reason] += n;
    this.dropsSinceWarn += n;
    const now = this.opts.now();
    // Loud but not a flood: the first drop at once, then at most one summary per 10 s.
    if (this.lastDropWarn === 0 || now - this.lastDropWarn >= 10_000 || reason !== 'queue_full') {
      const bound = this.opts.spill
        ? `memory (${this.opts.maxBufferedRecords} records) and spill directory (${this.opts.spill.maxBytes} bytes) full`
        : `delivery buffer full (${this.opts.maxBufferedRecords} records)`;
      const why = reason === 'queue_full' ? bound : reason;
      this.opts.warn(`dropped ${this.dropsSinceWarn} records (${why}); total dropped ${this.stats.dropped} (${this.dropSummary()})`);
      this.lastDropWarn = now;
      this.dropsSinceWarn = 0;
    }
  }

  private dropSummary(): string {
    return DROP_REASONS.filter((r) => this.stats.droppedByReason[r] > 0)
      .map((r) => `${r}=${this.stats.droppedByReason[r]}`)
      .join(', ');
  }

  /** The oldest undelivered batch: memory first (it is older than anything on disk), then disk. */
  private head(): Head | undefined {
    const m = this.memory[0];
    if (m) return { kind: 'memory', batch: m };
    const entry = this.opts.spill?.peek();
    return entry ? { kind: 'disk', entry } : undefined;
  }

  private get pending(): boolean {
    return this.memory.length > 0 || (this.opts.spill?.size.files ?? 0) > 0;
  }

  /** Sends the head batch if nothing is in flight and no backoff timer is waiting. */
  private pump(): void {
    if (this.inflight || this.timer) return;
    const head = this.head();
    if (!head) return;
    this.inflight = this.attempt(head).then((next) => {
      this.inflight = undefined;
      if (next === 'continue') {
        if (!this.closed || this.draining) this.pump();
        return;
      }
      if (this.closed && !this.draining) return;
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, this.backoffMs);
      this.timer.unref?.();
      this.backoffMs = Math.min(this.backoffMs * 2, this.opts.maxBackoffMs);
    });
  }

  /** One request of the head batch (read back from its spill file first when it is on disk). Never rejects. */
  private async attempt(head: Head): Promise<Next> {
    let batch: EncodedBatch;
    if (head.kind === 'memory') batch = head.batch;
    else {
      const spill = this.opts.spill!;
      try {
        batch = await spill.read(head.entry);
      } catch (err) {
        // A failed write is already out of the queue and counted (onWriteError); anything else is a file
        // that vanished or became unreadable since it was indexed.
        if (spill.has(head.entry)) {
          this.opts.warn(`spilled batch ${head.entry.file} unreadable (${(err as Error).message}); dropping its ${head.entry.records} records`);
          void spill.remove(head.entry);
          this.drop(head.entry.records, 'spill_error');
        }
        return 'continue';
      }
    }
    const started = this.opts.now();
    const outcome = await this.opts.send(batch);
    const end = this.opts.now();
    this.opts.observe?.({ records: batch.records, ok: outcome.ok, durationMs: end - started, latencyMs: end - batch.enqueuedAt });
    if (outcome.ok || !outcome.retryable) {
      this.removeHead(head);
      if (outcome.ok) this.stats.exported += batch.records;
      else {
        this.opts.warn(`collector rejected a request of ${batch.records} records (${describeExportError(outcome.error)}); not retrying it`);
        this.drop(batch.records, 'rejected');
      }
      if (outcome.ok && this.outage) {
        this.outage = false;
        this.drainGaveUp = false;
        this.opts.warn(`collector reachable again; delivering ${this.stats.buffered + this.stats.spilled} queued records`);
      }
      this.backoffMs = this.opts.initialBackoffMs;
      return 'continue';
    }
    this.stats.failedAttempts++;
    if (!this.outage) {
      this.outage = true;
      this.opts.warn(`OTLP export failed (${describeExportError(outcome.error)}); keeping ${this.stats.buffered + this.stats.spilled} records and retrying with backoff`);
    }
    return 'backoff';
  }

  private removeHead(head: Head): void {
    if (head.kind === 'memory') {
      const i = this.memory.indexOf(head.batch);
      if (i >= 0) this.memory.splice(i, 1);
      this.stats.buffered -= head.batch.records;
      this.memoryBytes -= heldBytes(head.batch.body);
    } else {
      // Out of the queue now (never sent again); the file goes once the delete completes.
      const entry = head.entry;
      void this.opts.spill!.remove(entry).then((err) => {
        if (err) this.opts.warn(`cannot delete delivered spill file ${entry.file} (${err.message}); remove it by hand or the next start sends it again`);
      });
    }
  }

  /** Tries to deliver everything queued within `ms`; resolves with nothing in flight. */
  private async drain(ms: number): Promise<void> {
    if (this.drainGaveUp && this.outage) {
      if (this.inflight) await Promise.race([this.inflight, sleep(this.opts.requestTimeoutMs + 2_000)]);
      return;
    }
    this.draining = true;
    try {
      const until = this.opts.now() + ms;
      while (this.pending && this.opts.now() < until) {
        if (this.timer) {
          // skip the backoff wait, but do not hammer: at most one request every 250 ms
          clearTimeout(this.timer);
          this.timer = undefined;
          await sleep(Math.min(250, Math.max(0, until - this.opts.now())));
        }
        this.pump();
        if (this.inflight) await this.inflight;
        else if (this.pending) await sleep(20);
      }
      // A request still in flight finishes (bounded by the request timeout) before the caller decides
      // what to do with the rest: resending it would duplicate it if the collector took it.
      if (this.inflight) await Promise.race([this.inflight, sleep(this.opts.requestTimeoutMs + 2_000)]);
      if (this.pending && this.outage) this.drainGaveUp = true;
    } finally {
      this.draining = false;
    }
  }

  async forceFlush(): Promise<void> {
    await this.drain(this.opts.shutdownDrainMs);
  }

  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.drain(this.opts.shutdownDrainMs);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const left = this.memory.splice(0);
    this.stats.buffered = 0;
    this.memoryBytes = 0;
    const spill = this.opts.spill;
    if (left.length > 0) {
      const n = left.reduce((a, b) => a + b.records, 0);
      let kept = 0;
      for (const batch of left) {
        if (spill && this.toDisk(batch, true)) kept += batch.records;
        else this.drop(batch.records, spill ? 'queue_full' : 'shutdown');
      }
      if (spill) {
        // durable before soload exits; a write that fails now is counted as spill_error
        const failedBefore = this.stats.droppedByReason.spill_error;
        await spill.flush();
        kept -= this.stats.droppedByReason.spill_error - failedBefore;
        this.opts.warn(`collector unreachable or refusing at shutdown: wrote ${kept} of ${n} undelivered records to ${spill.dir}; the next start delivers them`);
      } else {
        this.opts.warn(`shutting down with ${n} records undelivered (collector unreachable or refusing them); they are counted as dropped (set otel.delivery.spillDir to keep them across restarts)`);
      }
    }
    await spill?.flush(); // deletes of acknowledged files, writes of batches spilled earlier
    if (this.opts.spill && this.stats.spilled > 0) this.opts.info(`${this.stats.spilled} records remain in ${this.opts.spill.dir} for the next start`);
    await this.opts.onShutdown?.();
  }
}

// Not unref'd: during shutdown these timers may be all that keeps the process alive until delivery ends.
function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
