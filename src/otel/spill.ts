import fs from 'node:fs';
import path from 'node:path';
import type { EncodedBatch, OtlpEncoding } from './otlp-sender';

/** One request body waiting on disk (or on its way there). */
export interface SpilledBatch {
  file: string;
  records: number;
  bytes: number;
  encoding: OtlpEncoding;
  /** ms since epoch when the records entered the delivery queue (from the file name). */
  enqueuedAt: number;
}

/** Options of {@link SpillStore}. */
export interface SpillOptions {
  /** Files written at the same time (each is written, fsynced and renamed on its own). Default 4. */
  maxConcurrentWrites?: number;
}

// <enqueuedAt ms, 15 digits>-<seq, 9 digits>-<pid>-<records>.<pb|json>: names sort in delivery order
// across restarts (time first), and carry what the index needs without reading the file.
const NAME_RE = /^(\d{15})-(\d{9})-(\d+)-(\d+)\.(pb|json)$/;
const EXT: Record<OtlpEncoding, string> = { protobuf: 'pb', json: 'json' };

/** A batch appended but not yet durable: its body stays in memory until the file is renamed into place. */
interface PendingWrite {
  body?: Uint8Array;
  held: number;
  started: boolean;
  error?: Error;
  done: Promise<void>;
  settle: () => void;
}

/** Bytes of memory a body keeps alive (its whole backing buffer, in case it is a view). */
export function heldBytes(body: Uint8Array): number {
  return Math.max(body.byteLength, body.buffer.byteLength);
}

/**
 * A bounded on-disk FIFO of OTLP/HTTP request bodies (one file per ExportLogsServiceRequest, exactly
 * the bytes that would have been POSTed). Files are written atomically (temp file, fsync, rename), so a
 * crash leaves either a whole file or none; they are deleted only after the collector acknowledged
 * them, so a restart replays exactly what was not delivered. One soload per directory.
 *
 * Disk I/O never runs on the caller's turn of the event loop: soload's delivery queue lives on the same
 * loop that drains trace_pipe, and a synchronous fsync on a slow or saturated disk (which is when
 * spilling happens: during an outage, under load) would stall the reader long enough for the kernel
 * ring buffer to overwrite events. So {@link append} only decides and indexes (bounds are enforced at
 * once, the order is fixed by the file name) and the write happens with fs.promises, at most
 * `maxConcurrentWrites` at a time; the body is held in memory until its file is durable
 * (`size.pendingBytes`, which the delivery queue counts as memory). {@link read} of an entry waits for
 * its write, {@link remove} deletes the file after it, {@link flush} (shutdown) waits for everything.
 * Only the constructor (startup, before the trace_pipe reader runs) uses synchronous calls.
 */
export class SpillStore {
  readonly dir: string;
  readonly maxBytes: number;
  /**
   * Called when writing an appended batch failed: the entry is already out of the index (its records
   * are lost unless the caller still has them); the delivery queue counts them as dropped (spill_error).
   */
  onWriteError?: (entry: SpilledBatch, err: Error) => void;
  private readonly index: SpilledBatch[] = [];
  private readonly writes = new Map<SpilledBatch, PendingWrite>();
  private readonly waiting: SpilledBatch[] = [];
  private readonly ops = new Set<Promise<unknown>>();
  private readonly maxConcurrentWrites: number;
  private active = 0;
  private pending = 0;
  private bytes = 0;
  private records = 0;
  private seq = 0;

  constructor(dir: string, maxBytes: number, opts: SpillOptions = {}) {
    this.dir = path.resolve(dir);
    this.maxBytes = maxBytes;
    this.maxConcurrentWrites = Math.max(1, opts.maxConcurrentWrites ?? 4);
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    for (const name of fs.readdirSync(this.dir).sort()) {
      const full = path.join(this.dir, name);
      if (name.endsWith('.tmp')) {
        // a write interrupted by a crash: never renamed, so never acknowledged or replayed
        fs.rmSync(full, { force: true });
        continue;
      }
      const m = NAME_RE.exec(name);
      if (!m) continue;
      let size = 0;
      try {
        size = fs.statSync(full).size;
      } catch {
        continue;
      }
      this.push({ file: full, records: Number(m[4]), bytes: size, encoding: m[5] === 'json' ? 'json' : 'protobuf', enqueuedAt: Number(m[1]) });
    }
  }

  /**
   * Records / bytes / files in the queue (including batches still being written), and `pendingBytes`:
   * memory held by bodies not yet durable on disk.
   */
  get size(): { records: number; bytes: number; files: number; pendingBytes: number } {
    return { records: this.records, bytes: this.bytes, files: this.index.length, pendingBytes: this.pending };
  }

  /** True when `bytes` more would fit under maxBytes. */
  fits(bytes: number): boolean {
    return this.bytes + bytes <= this.maxBytes;
  }

  /** True while the entry is queued (not yet removed, its write has not failed). */
  has(entry: SpilledBatch): boolean {
    return this.index.includes(entry);
  }

  /**
   * Queues a batch at the tail and starts writing it in the background; false (nothing queued) when it
   * would exceed maxBytes. Never blocks on disk I/O; write errors arrive through {@link onWriteError}.
   */
  append(batch: EncodedBatch): boolean {
    if (!this.fits(batch.body.length)) return false;
    const name = `${String(batch.enqueuedAt).padStart(15, '0')}-${String(this.seq++ % 1e9).padStart(9, '0')}-${process.pid}-${batch.records}.${EXT[batch.encoding]}`;
    const entry: SpilledBatch = { file: path.join(this.dir, name), records: batch.records, bytes: batch.body.length, encoding: batch.encoding, enqueuedAt: batch.enqueuedAt };
    this.push(entry);
    let settle!: () => void;
    const done = new Promise<void>((r) => (settle = r));
    const w: PendingWrite = { body: batch.body, held: heldBytes(batch.body), started: false, done, settle };
    this.writes.set(entry, w);
    this.pending += w.held;
    this.waiting.push(entry);
    this.startWrites();
    return true;
  }

  /** The oldest queued batch, or undefined. */
  peek(): SpilledBatch | undefined {
    return this.index[0];
  }

  /**
   * Reads a queued batch's body back from its file, after its write finished (rejects when the write
   * failed, or the file is gone or unreadable).
   */
  async read(entry: SpilledBatch): Promise<EncodedBatch> {
    const w = this.writes.get(entry);
    if (w) {
      await w.done;
      if (w.error) throw w.error;
    }
    const body = await fs.promises.readFile(entry.file);
    return { body, records: entry.records, encoding: entry.encoding, enqueuedAt: entry.enqueuedAt };
  }

  /**
   * Forgets an entry at once and deletes its file (after the collector acknowledged it, or when it is
   * unreadable), once any write of it has finished. Resolves with the error when the file could not be
   * deleted (it would be replayed by the next start: a duplicate), undefined otherwise.
   */
  remove(entry: SpilledBatch): Promise<Error | undefined> {
    const i = this.index.indexOf(entry);
    if (i < 0) return Promise.resolve(undefined);
    this.index.splice(i, 1);
    this.bytes -= entry.bytes;
    this.records -= entry.records;
    const w = this.writes.get(entry);
    if (w && !w.started) {
      // never written: nothing to delete
      this.waiting.splice(this.waiting.indexOf(entry), 1);
      this.finishWrite(entry, w);
      return Promise.resolve(undefined);
    }
    return this.track(
      (w?.done ?? Promise.resolve()).then(() =>
        fs.promises.rm(entry.file, { force: true }).then(
          () => undefined,
          (err: Error) => err,
        ),
      ),
    );
  }

  /** Resolves once every write and delete started so far has finished (shutdown: files are durable). */
  async flush(): Promise<void> {
    while (this.ops.size > 0 || this.waiting.length > 0) {
      this.startWrites();
      await Promise.allSettled([...this.ops]);
    }
  }

  private startWrites(): void {
    while (this.active < this.maxConcurrentWrites && this.waiting.length > 0) {
      const entry = this.waiting.shift()!;
      const w = this.writes.get(entry)!;
      w.started = true;
      this.active++;
      this.track(
        writeDurably(entry.file, w.body!).then(
          () => this.finishWrite(entry, w),
          (err: Error) => {
            w.error = err;
            const i = this.index.indexOf(entry);
            if (i >= 0) {
              this.index.splice(i, 1);
              this.bytes -= entry.bytes;
              this.records -= entry.records;
            }
            this.finishWrite(entry, w);
            if (i >= 0) this.onWriteError?.(entry, err);
          },
        ),
      );
    }
  }

  private finishWrite(entry: SpilledBatch, w: PendingWrite): void {
    if (w.started) this.active--;
    this.writes.delete(entry);
    this.pending -= w.held;
    w.body = undefined;
    w.settle();
    this.startWrites();
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.ops.add(p);
    void p.finally(() => this.ops.delete(p)).catch(() => undefined);
    return p;
  }

  private push(e: SpilledBatch): void {
    this.index.push(e);
    this.bytes += e.bytes;
    this.records += e.records;
  }
}

/** temp file, write, fsync, rename: the file appears whole or not at all. fs.promises runs on libuv's pool. */
async function writeDurably(file: string, body: Uint8Array): Promise<void> {
  const tmp = `${file}.tmp`;
  try {
    const fh = await fs.promises.open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(body);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}
