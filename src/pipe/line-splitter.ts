import { isUtf8 } from 'node:buffer';
import { Transform, type TransformCallback } from 'node:stream';
import { ErrorCodes, SoloadError } from '../errors';
import { decodeLineBytes } from './decode';

/** Default cap on one line, in bytes (the kernel's own trace_seq is one page, so real lines are far shorter). */
export const DEFAULT_MAX_LINE_LENGTH = 64 * 1024;

/** Options of {@link LineSplitter}. */
export interface LineSplitterOptions {
  /**
   * Longest line kept, in bytes (default 64 KiB). A longer line is cut to this many bytes, counted in
   * {@link LineSplitter.truncatedLines}, and the rest of it up to the next `\n` is discarded without
   * being buffered.
   */
  maxLineLength?: number;
}

/** Receives each line, in order; `truncated` is true for a line that was cut at `maxLineLength`. */
export type LineHandler = (line: string, truncated: boolean) => void;

/**
 * Splits a byte stream into `\n`-terminated lines and decodes each with {@link decodeLineBytes}
 * (UTF-8 when valid, else invalid bytes as `\xNN`). Keeps the partial last line across chunks;
 * never retains the chunk passed in (callers may reuse their read buffer), and never buffers
 * more than `maxLineLength` bytes.
 */
export class LineSplitter {
  /** Lines cut at `maxLineLength` so far. */
  truncatedLines = 0;
  /** Bytes consumed so far. */
  bytes = 0;

  private readonly max: number;
  private parts: Buffer[] = [];
  private partLen = 0;
  /** Inside an over-long line whose head was already emitted: drop bytes until the next `\n`. */
  private discarding = false;

  constructor(options: LineSplitterOptions = {}) {
    const max = options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
    if (!Number.isInteger(max) || max < 1) throw new SoloadError(ErrorCodes.INTERNAL, `maxLineLength must be a positive integer, got ${max}`);
    this.max = max;
  }

  /** Splits `chunk`, returning the complete lines it finished (without their `\n`). */
  push(chunk: Buffer): string[] {
    const out: string[] = [];
    this.write(chunk, (line) => {
      out.push(line);
    });
    return out;
  }

  /** Flushes a final line that had no trailing `\n` (if any) and resets the splitter. */
  end(): string[] {
    const out: string[] = [];
    this.flush((line) => {
      out.push(line);
    });
    return out;
  }

  /** True when no partial line is held or being discarded: the next byte starts a line. */
  get atLineStart(): boolean {
    return this.partLen === 0 && !this.discarding;
  }

  /** Like {@link push} but hands each line to `onLine` (no array, and tells which lines were cut). */
  write(chunk: Buffer, onLine: LineHandler): void {
    const len = chunk.length;
    this.bytes += len;
    let pos = 0;
    // One validation of all the lines that start and end inside this chunk (SIMD in Node, ~free)
    // instead of scanning each decoded line for U+FFFD: when it passes, toString() is already the
    // exact decoding (a \n byte is never inside a multi-byte sequence, so every line of a valid
    // range is valid). A line continued from the previous chunk is outside the range: its first
    // bytes may finish a sequence begun there.
    const lastNl = chunk.lastIndexOf(10);
    let validFrom = 0;
    if (this.partLen > 0 || this.discarding) validFrom = chunk.indexOf(10) + 1;
    // A backslash may need escaping (before `x`+hex, see util/path-bytes.ts): such chunks decode per line.
    const valid = lastNl > validFrom && isUtf8(chunk.subarray(validFrom, lastNl)) && chunk.subarray(validFrom, lastNl).indexOf(92) === -1;
    while (pos < len) {
      const nl = chunk.indexOf(10, pos);
      const stop = nl === -1 ? len : nl;
      if (this.discarding) {
        if (nl === -1) return;
        this.discarding = false;
        pos = nl + 1;
        continue;
      }
      const room = this.max - this.partLen;
      if (stop - pos > room) {
        // Over-long: emit the head now, drop the remainder of the line as it streams by.
        this.append(chunk, pos, pos + room);
        this.emitPending(onLine, true);
        this.truncatedLines++;
        if (nl === -1) {
          this.discarding = true;
          return;
        }
        pos = nl + 1;
        continue;
      }
      if (nl === -1) {
        this.append(chunk, pos, len);
        return;
      }
      if (this.partLen === 0) {
        onLine(valid && pos >= validFrom ? chunk.toString('utf8', pos, nl) : decodeLineBytes(chunk, pos, nl), false);
      } else {
        this.append(chunk, pos, nl);
        this.emitPending(onLine, false);
      }
      pos = nl + 1;
    }
  }

  /** Like {@link end} with a callback. */
  flush(onLine: LineHandler): void {
    this.discarding = false;
    if (this.partLen > 0) this.emitPending(onLine, false);
  }

  private append(chunk: Buffer, start: number, end: number): void {
    if (end <= start) return;
    // Copy: the caller owns `chunk` and may overwrite it with the next read.
    this.parts.push(Buffer.from(chunk.subarray(start, end)));
    this.partLen += end - start;
  }

  private emitPending(onLine: LineHandler, truncated: boolean): void {
    const buf = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.partLen);
    this.parts = [];
    this.partLen = 0;
    onLine(decodeLineBytes(buf, 0, buf.length), truncated);
  }
}

/**
 * Stream form of {@link LineSplitter}: bytes in, one string per line out (object mode).
 * Over-long lines are emitted cut; see {@link LineSplitter.truncatedLines}.
 */
export class LineSplitterStream extends Transform {
  readonly splitter: LineSplitter;

  constructor(options: LineSplitterOptions = {}) {
    super({ readableObjectMode: true });
    this.splitter = new LineSplitter(options);
  }

  override _transform(chunk: Buffer | string, _enc: BufferEncoding, cb: TransformCallback): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    this.splitter.write(buf, (line) => {
      this.push(line);
    });
    cb();
  }

  override _flush(cb: TransformCallback): void {
    this.splitter.flush((line) => {
      this.push(line);
    });
    cb();
  }
}
