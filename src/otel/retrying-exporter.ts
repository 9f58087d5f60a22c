import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { LogRecordExporter, ReadableLogRecord } from '@opentelemetry/sdk-logs';

/** Delivery counters of a {@link RetryingLogExporter}. */
export interface DeliveryStats {
  exported: number;
  /** Records dropped because the retry buffer was full, or still buffered at shutdown. */
  dropped: number;
  /** Records waiting for the collector to come back. */
  buffered: number;
  failedAttempts: number;
}

/** Options of {@link RetryingLogExporter}. */
export interface RetryOptions {
  /** Bound of the retry buffer, in records. */
  maxBufferedRecords: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** How long shutdown keeps trying to deliver what is buffered. */
  shutdownDrainMs?: number;
  warn?: (msg: string) => void;
}

/**
 * Keeps batches the collector did not take and re-sends them, oldest first, with exponential
 * backoff — so an unreachable collector is a warning, not lost records, up to a bound. The batch
 * processor upstream sees every export succeed and keeps its own queue flowing; ordering is kept
 * because new batches queue behind buffered ones while an outage lasts. Drops past the bound are
 * counted and warned about, never silent.
 */
export class RetryingLogExporter implements LogRecordExporter {
  readonly stats: DeliveryStats = { exported: 0, dropped: 0, buffered: 0, failedAttempts: 0 };
  private readonly inner: LogRecordExporter;
  private readonly opts: Required<RetryOptions>;
  private readonly queue: ReadableLogRecord[][] = [];
  private backoffMs: number;
  private timer?: NodeJS.Timeout;
  private sending = false;
  private outage = false;
  private closed = false;

  constructor(inner: LogRecordExporter, opts: RetryOptions) {
    this.inner = inner;
    this.opts = {
      initialBackoffMs: 500,
      maxBackoffMs: 10_000,
      shutdownDrainMs: 5_000,
      warn: (m) => process.stderr.write(`soload: ${m}\n`),
      ...opts,
    };
    this.backoffMs = this.opts.initialBackoffMs;
  }

  export(logs: ReadableLogRecord[], resultCallback: (result: ExportResult) => void): void {
    if (this.closed) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error('exporter is shut down') });
      return;
    }
    this.enqueue(logs);
    resultCallback({ code: ExportResultCode.SUCCESS });
    if (!this.outage) this.pump();
  }

  private enqueue(logs: ReadableLogRecord[]): void {
    const room = this.opts.maxBufferedRecords - this.stats.buffered;
    const take = Math.max(0, Math.min(room, logs.length));
    if (take < logs.length) {
      this.stats.dropped += logs.length - take;
      this.opts.warn(`delivery buffer full (${this.opts.maxBufferedRecords} records): dropped ${logs.length - take} records (total dropped ${this.stats.dropped})`);
    }
    if (take > 0) {
      this.queue.push(take === logs.length ? logs : logs.slice(0, take));
      this.stats.buffered += take;
    }
  }

  /** Sends buffered batches one at a time until the buffer is empty or a send fails. */
  private pump(): void {
    if (this.sending || this.queue.length === 0) return;
    this.sending = true;
    const batch = this.queue[0]!;
    this.inner.export(batch, (result) => {
      this.sending = false;
      if (result.code === ExportResultCode.SUCCESS) {
        this.queue.shift();
        this.stats.buffered -= batch.length;
        this.stats.exported += batch.length;
        if (this.outage) {
          this.opts.warn(`collector reachable again; delivering ${this.stats.buffered} buffered records`);
          this.outage = false;
        }
        this.backoffMs = this.opts.initialBackoffMs;
        this.pump();
        return;
      }
      this.stats.failedAttempts++;
      if (!this.outage) {
        this.outage = true;
        this.opts.warn(`OTLP export failed (${result.error?.message ?? 'unknown error'}); keeping ${this.stats.buffered} records and retrying with backoff`);
      }
      if (this.closed) return;
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, this.backoffMs);
      this.timer.unref?.();
      this.backoffMs = Math.min(this.backoffMs * 2, this.opts.maxBackoffMs);
    });
  }

  async forceFlush(): Promise<void> {
    await this.drain(this.opts.shutdownDrainMs);
    await this.inner.forceFlush();
  }

  async shutdown(): Promise<void> {
    await this.drain(this.opts.shutdownDrainMs);
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.stats.buffered > 0) {
      this.stats.dropped += this.stats.buffered;
      this.opts.warn(`shutting down with ${this.stats.buffered} records undelivered (collector unreachable); they are counted as dropped`);
      this.queue.length = 0;
      this.stats.buffered = 0;
    }
    await this.inner.shutdown();
  }

  private async drain(deadlineMs: number): Promise<void> {
    const until = Date.now() + deadlineMs;
    while ((this.queue.length > 0 || this.sending) && Date.now() < until) {
      if (!this.sending) {
        if (this.timer) {
          clearTimeout(this.timer);
          this.timer = undefined;
        }
        this.pump();
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
