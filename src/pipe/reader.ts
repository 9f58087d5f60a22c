import fs from 'node:fs';
import type { TraceRecord } from '../types';
import { ErrorCodes, SoloadError } from '../errors';
import { DEFAULT_MAX_LINE_LENGTH, LineSplitter } from './line-splitter';
import { isAscii } from 'node:buffer';
import { decodeLineBytes } from './decode';
import { parseSegmentLine, parseTraceLine, type ParseResult, type ProbeSchemaMap } from './parse';

/** parseTraceLine's reason for a line whose fields stop short of (or differ from) the schema. */
const SCHEMA_MISMATCH = 'fields do not match the probe schema';

/** Counters of a {@link TracePipeReader}; read them with {@link TracePipeReader.stats}. */
export interface PipeStats {
  /** Bytes read from the pipe. */
  bytes: number;
  /** Physical `\n`-terminated lines seen. */
  lines: number;
  /** Records delivered to `onRecord`. */
  records: number;
  /** Records that spanned several physical lines (a string value contained `\n`). */
  joined: number;
  /** Logical lines that did not parse (includes `truncated`). */
  malformed: number;
  /** Lines longer than `maxLineLength`, cut and counted as malformed. */
  truncated: number;
  /** `#` comment and blank lines. */
  comments: number;
  /** Events the kernel reported as dropped (sum of `[LOST n EVENTS]`, +1 per count-less notice). */
  lostEvents: number;
  /** Number of LOST / `[LINE TOO BIG]` notices. */
  lostReports: number;
  /** Exceptions thrown by the caller's callbacks (caught; the reader keeps going). */
  callbackErrors: number;
}

/** Options of {@link TraceStreamParser}: what to do with the text, wherever its bytes come from. */
export interface TraceStreamParserOptions {
  /** Field lists of the probes, for robust splitting of string values (see {@link ProbeSchemaMap}). */
  schemas?: ProbeSchemaMap;
  /** Longest line kept, bytes. Default 64 KiB. */
  maxLineLength?: number;
  /** Most physical lines joined into one record when values contain newlines. Default 16. */
  maxJoinedLines?: number;
  /** Called synchronously for each parsed record, in pipe order. */
  onRecord: (record: TraceRecord) => void;
  /** Called for each kernel notice of dropped events (see {@link ParseResult} kind `lost`). */
  onLost?: (info: { cpu: number; lost: number; exact: boolean }) => void;
  /** Called for each line that could not be parsed. */
  onMalformed?: (line: string, reason: string) => void;
  /** Called with each exception thrown by the callbacks above (caught, counted, parsing goes on). */
  onCallbackError?: (err: Error) => void;
}

/** Options of {@link TracePipeReader}. */
export interface TracePipeReaderOptions extends Omit<TraceStreamParserOptions, 'onCallbackError'> {
  /** Path of the `trace_pipe` to read (any readable file or FIFO works, which tests use). */
  path: string;
  /** Wait after the pipe ran dry (EAGAIN, or EOF on a regular file) before reading again. Default 50. */
  pollIntervalMs?: number;
  /** Size of the single read buffer, bytes. Default 64 KiB. */
  readBufferSize?: number;
  /** On stop(), read what is still buffered (until EAGAIN/EOF, at most 16 MiB) before closing. Default true. */
  drainOnStop?: boolean;
  /**
   * Called when reading fails for a reason other than "no data yet" (the reader then stops and
   * closes the fd), and for exceptions thrown by the callbacks above. Default: process.emitWarning.
   */
  onError?: (err: Error) => void;
}

const FINAL_DRAIN_LIMIT = 16 * 1024 * 1024;

/**
 * Bytes of whole lines decoded into one string by {@link TraceStreamParser.write} (the segment ends at
 * the first line end past this). Decoding and scanning per segment costs ~55 ns/line at 2 KiB against
 * ~140 ns/line for a Buffer.indexOf and a decode per line (~40 ns at 64 KiB). The size is a memory
 * bound, not only a speed knob: values of 13 or more characters are V8 sliced strings that keep their
 * whole segment alive, and consumers keep some for long (exec filenames per live process, paths in
 * caches); a 64 KiB chunk string pinned per kept value could hold hundreds of MiB, and copying each
 * long value out measured ~70 ns per value (about 2 per line). At 2 KiB a kept value pins at most
 * ~2 KiB plus one line, against one line (~200–700 bytes on soload's probes) before.
 */
const SEGMENT_BYTES = 2048;

/**
 * The byte stream of a trace_pipe → records: line splitting, parsing, re-joining records whose string
 * values contained a newline, and the counters. No I/O: {@link TracePipeReader} feeds it what it
 * reads, and the parser benchmark feeds it recorded bytes, so both measure and run the same path.
 */
export class TraceStreamParser {
  private readonly opts: TraceStreamParserOptions;
  private readonly schemas: ProbeSchemaMap | undefined;
  private readonly maxLen: number;
  private readonly maxJoin: number;
  private readonly splitter: LineSplitter;
  private readonly counters: PipeStats = {
    bytes: 0,
    lines: 0,
    records: 0,
    joined: 0,
    malformed: 0,
    truncated: 0,
    comments: 0,
    lostEvents: 0,
    lostReports: 0,
    callbackErrors: 0,
  };
  /** A line that ended inside a quoted value, waiting for its continuation. */
  private pending: string | null = null;
  private pendingLines = 0;

  constructor(options: TraceStreamParserOptions) {
    this.opts = options;
    this.schemas = options.schemas;
    this.maxLen = options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
    this.maxJoin = options.maxJoinedLines ?? 16;
    this.splitter = new LineSplitter({ maxLineLength: this.maxLen });
  }

  /** A snapshot of the counters. */
  get stats(): PipeStats {
    return { ...this.counters };
  }

  /** Parses the lines `chunk` completes; keeps its unfinished last line. Never retains `chunk`. */
  write(chunk: Buffer): void {
    this.counters.bytes += chunk.length;
    const last = chunk.lastIndexOf(10);
    if (last === -1) {
      this.splitter.write(chunk, this.onLine);
      return;
    }
    let pos = 0;
    if (!this.splitter.atLineStart) {
      // The first line finishes one held from the previous chunk (or ends a discarded over-long one).
      pos = chunk.indexOf(10) + 1;
      this.splitter.write(chunk.subarray(0, pos), this.onLine);
    }
    // Whole lines in segments (see SEGMENT_BYTES); the unfinished tail goes to the splitter, which
    // also keeps the lines over maxLineLength its way (cut and counted).
    const max = this.maxLen;
    while (pos <= last) {
      let end = chunk.indexOf(10, pos + SEGMENT_BYTES);
      if (end === -1 || end > last) end = last;
      if (!this.writeSegment(chunk, pos, end, max)) {
        this.splitter.write(chunk.subarray(pos), this.onLine);
        return;
      }
      pos = end + 1;
    }
    if (pos < chunk.length) this.splitter.write(chunk.subarray(pos), this.onLine);
  }

  /**
   * The lines of `chunk[start, end]` (`end` is a `\n`), as the splitter would hand them over. An ASCII
   * segment is decoded once (latin1 = UTF-8 there) and soload's own lines are parsed in place
   * ({@link parseSegmentLine}, the same records as parsing each line alone); other lines are cut out
   * and take {@link onLine}. False (nothing consumed) when a line is over `max`.
   */
  private writeSegment(chunk: Buffer, start: number, end: number, max: number): boolean {
    if (end - start > max) {
      for (let p = start; p <= end; ) {
        const nl = chunk.indexOf(10, p);
        if (nl - p > max) return false;
        p = nl + 1;
      }
    }
    const seg = chunk.subarray(start, end);
    // A backslash may need escaping (before `x`+hex, see util/path-bytes.ts): decode those lines one by one.
    if (!isAscii(seg) || seg.indexOf(92) !== -1) {
      for (let p = start; p <= end; ) {
        const nl = chunk.indexOf(10, p);
        this.onLine(decodeLineBytes(chunk, p, nl), false);
        p = nl + 1;
      }
      return true;
    }
    const s = chunk.toString('latin1', start, end + 1);
    const c = this.counters;
    const n = s.length;
    for (let p = 0; p < n; ) {
      const nl = s.indexOf('\n', p);
      const rec = this.pending === null ? parseSegmentLine(s, p, nl, this.schemas) : null;
      if (rec !== null) {
        c.lines++;
        c.records++;
        try {
          this.opts.onRecord(rec);
        } catch (err) {
          this.callbackFailed(err);
        }
      } else {
        this.onLine(s.slice(p, nl), false);
      }
      p = nl + 1;
    }
    return true;
  }

  /** End of the stream: the unfinished last line is parsed, a held line is given up as malformed. */
  end(): void {
    this.splitter.flush(this.onLine);
    this.flushPending();
  }

  private readonly onLine = (line: string, truncated: boolean): void => {
    const c = this.counters;
    c.lines++;
    if (truncated) {
      this.flushPending();
      c.truncated++;
      this.malformed(line, `line longer than ${this.maxLen} bytes (cut)`);
      return;
    }
    if (this.pending !== null) {
      const alone = parseTraceLine(line, this.schemas);
      if (alone.ok || alone.kind === 'lost' || alone.kind === 'incomplete') {
        // A new record started: the held line never got its continuation.
        this.flushPending();
        this.dispatch(line, alone, false);
        return;
      }
      const joined = this.pending + '\n' + line;
      this.pendingLines++;
      const r = parseTraceLine(joined, this.schemas);
      if (r.ok) {
        this.pending = null;
        c.joined++;
        this.dispatch(joined, r, true);
      } else if (r.kind === 'incomplete' && this.pendingLines < this.maxJoin && joined.length <= this.maxLen) {
        this.pending = joined;
      } else {
        this.pending = null;
        this.dispatch(joined, r, true);
      }
      return;
    }
    this.dispatch(line, parseTraceLine(line, this.schemas), false);
  };

  private dispatch(line: string, r: ParseResult, joined: boolean): void {
    const c = this.counters;
    if (r.ok) {
      c.records++;
      try {
        this.opts.onRecord(r.record);
      } catch (err) {
        this.callbackFailed(err);
      }
      return;
    }
    switch (r.kind) {
      case 'comment':
        c.comments++;
        return;
      case 'lost':
        c.lostReports++;
        c.lostEvents += r.lost;
        if (this.opts.onLost) {
          try {
            this.opts.onLost({ cpu: r.cpu, lost: r.lost, exact: r.exact });
          } catch (err) {
            this.callbackFailed(err);
          }
        }
        return;
      case 'incomplete':
        if (!joined && this.maxJoin > 1) {
          this.pending = line;
          this.pendingLines = 1;
          return;
        }
        this.malformed(line, r.reason);
        return;
      default:
        // A tracepoint prints its strings unquoted (sched_process_exec's `filename=%s`): a newline
        // in an exec'd program's path cuts the line before the schema's later fields. Held like an
        // incomplete line: the header-less rest that follows is joined to it.
        if (!joined && this.maxJoin > 1 && r.reason === SCHEMA_MISMATCH) {
          this.pending = line;
          this.pendingLines = 1;
          return;
        }
        this.malformed(line, r.reason);
    }
  }

  private flushPending(): void {
    if (this.pending === null) return;
    const line = this.pending;
    this.pending = null;
    const alone = parseTraceLine(line, this.schemas);
    this.malformed(line, alone.ok || alone.kind !== 'malformed' ? 'line ends inside a quoted value and no continuation followed' : alone.reason);
  }

  private malformed(line: string, reason: string): void {
    this.counters.malformed++;
    if (this.opts.onMalformed) {
      try {
        this.opts.onMalformed(line, reason);
      } catch (err) {
        this.callbackFailed(err);
      }
    }
  }

  private callbackFailed(err: unknown): void {
    this.counters.callbackErrors++;
    const e = err instanceof Error ? err : new Error(String(err));
    if (this.opts.onCallbackError) {
      try {
        this.opts.onCallbackError(e);
      } catch {
        // An error handler that throws has nowhere left to report to.
      }
    }
  }
}

/**
 * Reads a tracefs `trace_pipe` without ever blocking a libuv thread: the fd is opened
 * `O_RDONLY | O_NONBLOCK`, drained with `fs.read` until EAGAIN (trace_pipe) or EOF (a regular file),
 * then read again after `pollIntervalMs`. Records are pushed to the `onRecord` callback (chosen over
 * an async iterator: no backpressure is wanted — the kernel ring buffer is the buffer, and a stalled
 * consumer must show up as LOST events, not as unbounded memory here).
 *
 * trace_pipe is a consuming read: whatever this reader reads is gone for other readers.
 */
export class TracePipeReader {
  private readonly opts: TracePipeReaderOptions;
  private readonly pollMs: number;
  private readonly parser: TraceStreamParser;
  private readonly buf: Buffer;
  private fd: number | null = null;
  private state: 'new' | 'running' | 'stopped' = 'new';
  private timer: NodeJS.Timeout | null = null;
  private cycle: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;

  constructor(options: TracePipeReaderOptions) {
    this.opts = options;
    this.pollMs = options.pollIntervalMs ?? 50;
    this.parser = new TraceStreamParser({ ...options, onCallbackError: (err) => this.report(err) });
    this.buf = Buffer.allocUnsafe(options.readBufferSize ?? 64 * 1024);
  }

  /** A snapshot of the counters. */
  get stats(): PipeStats {
    return this.parser.stats;
  }

  /** True between start() and stop() (false after a fatal read error). */
  get running(): boolean {
    return this.state === 'running' && this.fd !== null;
  }

  /**
   * Opens the pipe and starts reading (synchronously opens; reading is asynchronous).
   * Throws SoloadError `TRACEFS_IO` when the path cannot be opened. Calling it twice is a no-op.
   */
  start(): void {
    if (this.state === 'running') return;
    if (this.state === 'stopped') throw new SoloadError(ErrorCodes.INTERNAL, 'TracePipeReader cannot be restarted; create a new one');
    try {
      this.fd = fs.openSync(this.opts.path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    } catch (err) {
      throw new SoloadError(
        ErrorCodes.TRACEFS_IO,
        `cannot open ${this.opts.path} for reading: ${(err as Error).message}; check that the tracefs instance exists and soload runs as root`,
        { path: this.opts.path },
        { cause: err },
      );
    }
    this.state = 'running';
    this.schedule(0);
  }

  /**
   * Stops reading: cancels the poll timer, waits for the one in-flight non-blocking read (it cannot
   * block), optionally drains what the kernel still holds, delivers any final partial line, and closes
   * the fd. Idempotent; resolves promptly.
   */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const wasRunning = this.state === 'running';
    this.state = 'stopped';
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.cycle) await this.cycle;
    if (this.fd === null) return;
    if (wasRunning && this.opts.drainOnStop !== false) await this.drain(FINAL_DRAIN_LIMIT, false);
    this.parser.end();
    const fd = this.fd;
    this.fd = null;
    await new Promise<void>((resolve) => fs.close(fd, () => resolve()));
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      this.cycle = this.drain(Infinity, true).then(() => {
        this.cycle = null;
        if (this.state === 'running' && this.fd !== null) this.schedule(this.pollMs);
      });
    }, ms);
  }

  /**
   * Reads until the pipe is empty (EAGAIN), EOF, `limit` bytes, a fatal error (which closes the fd),
   * or — with `whileRunning` — stop() was called (a busy pipe never runs dry, stop must not wait for it).
   */
  private async drain(limit: number, whileRunning: boolean): Promise<void> {
    let total = 0;
    while (this.fd !== null && total < limit && (!whileRunning || this.state === 'running')) {
      let n: number;
      try {
        n = await readOnce(this.fd, this.buf);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'EINTR') return;
        await this.fail(err as Error);
        return;
      }
      if (n === 0) return;
      total += n;
      this.parser.write(this.buf.subarray(0, n));
    }
  }

  private async fail(err: Error): Promise<void> {
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) await new Promise<void>((resolve) => fs.close(fd, () => resolve()));
    this.report(
      new SoloadError(ErrorCodes.TRACEFS_IO, `reading ${this.opts.path} failed: ${err.message}; stopped reading trace events`, { path: this.opts.path }, { cause: err }),
    );
  }

  private report(err: Error): void {
    if (this.opts.onError) {
      try {
        this.opts.onError(err);
      } catch {
        // An onError that throws has nowhere left to report to.
      }
    } else {
      process.emitWarning(err);
    }
  }
}

function readOnce(fd: number, buf: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, 0, buf.length, null, (err, n) => (err ? reject(err) : resolve(n)));
  });
}
