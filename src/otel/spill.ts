import fs from 'node:fs';
import path from 'node:path';
import type { EncodedBatch, OtlpEncoding } from './otlp-sender';

/** One request body waiting on disk. */
export interface SpilledBatch {
  file: string;
  records: number;
  bytes: number;
  encoding: OtlpEncoding;
  /** ms since epoch when the records entered the delivery queue (from the file name). */
  enqueuedAt: number;
}

// <enqueuedAt ms, 15 digits>-<seq, 9 digits>-<pid>-<records>.<pb|json>: names sort in delivery order
// across restarts (time first), and carry what the index needs without reading the file.
const NAME_RE = /^(\d{15})-(\d{9})-(\d+)-(\d+)\.(pb|json)$/;
const EXT: Record<OtlpEncoding, string> = { protobuf: 'pb', json: 'json' };

/**
 * A bounded on-disk FIFO of OTLP/HTTP request bodies (one file per ExportLogsServiceRequest, exactly
 * the bytes that would have been POSTed). Files are written atomically (temp file, fsync, rename), so a
 * crash leaves either a whole file or none; they are deleted only after the collector acknowledged
 * them, so a restart replays exactly what was not delivered. One soload per directory.
 */
export class SpillStore {
  readonly dir: string;
  readonly maxBytes: number;
  private readonly index: SpilledBatch[] = [];
  private bytes = 0;
  private records = 0;
  private seq = 0;

  constructor(dir: string, maxBytes: number) {
    this.dir = path.resolve(dir);
    this.maxBytes = maxBytes;
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

  /** Records / bytes / files currently on disk. */
  get size(): { records: number; bytes: number; files: number } {
    return { records: this.records, bytes: this.bytes, files: this.index.length };
  }

  /** True when `bytes` more would fit under maxBytes. */
  fits(bytes: number): boolean {
    return this.bytes + bytes <= this.maxBytes;
  }

  /** Writes a batch at the tail; false (nothing written) when it would exceed maxBytes. Throws on I/O errors. */
  append(batch: EncodedBatch): boolean {
    if (!this.fits(batch.body.length)) return false;
    const name = `${String(batch.enqueuedAt).padStart(15, '0')}-${String(this.seq++ % 1e9).padStart(9, '0')}-${process.pid}-${batch.records}.${EXT[batch.encoding]}`;
    const full = path.join(this.dir, name);
    const tmp = `${full}.tmp`;
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, batch.body);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, full);
    this.push({ file: full, records: batch.records, bytes: batch.body.length, encoding: batch.encoding, enqueuedAt: batch.enqueuedAt });
    return true;
  }

  /** The oldest spilled batch, or undefined. */
  peek(): SpilledBatch | undefined {
    return this.index[0];
  }

  /** Reads a spilled batch's body (throws when the file is gone or unreadable). */
  read(entry: SpilledBatch): EncodedBatch {
    return { body: fs.readFileSync(entry.file), records: entry.records, encoding: entry.encoding, enqueuedAt: entry.enqueuedAt };
  }

  /**
   * Forgets an entry and deletes its file (after the collector acknowledged it, or when it is
   * unreadable). Returns the error when the file could not be deleted (it would be replayed by the
   * next start: a duplicate), undefined otherwise.
   */
  remove(entry: SpilledBatch): Error | undefined {
    const i = this.index.indexOf(entry);
    if (i < 0) return undefined;
    this.index.splice(i, 1);
    this.bytes -= entry.bytes;
    this.records -= entry.records;
    try {
      fs.rmSync(entry.file, { force: true });
      return undefined;
    } catch (err) {
      return err as Error;
    }
  }

  private push(e: SpilledBatch): void {
    this.index.push(e);
    this.bytes += e.bytes;
    this.records += e.records;
  }
}
