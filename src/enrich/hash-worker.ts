/**
 * The thread that reads and digests files for {@link FileHasher} (./hasher.ts).
 *
 * Loaded by `new Worker(path.join(__dirname, 'hash-worker.js'))`; imported on the main thread it
 * does nothing but export its pieces (the pacer and the one-file routine, which the tests use).
 * I/O here is synchronous on purpose: a read that hangs (NFS, FUSE) then blocks this thread only,
 * not one of the libuv thread-pool threads the main thread's own file system calls need.
 */
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { HashAlgorithm } from './hasher';
import { fsName } from '../util/path-bytes';

/** One job, main thread → worker. */
export interface HashJobMessage {
  job: number;
  path: string;
  dev: number;
  ino: number;
  size: number;
  mtimeNs: bigint;
  algorithms: HashAlgorithm[];
  maxFileBytes: number;
}

/** Why the worker did not produce digests. */
export type WorkerSkipReason = 'too_large' | 'not_regular' | 'changed' | 'unreadable';

/** What one file came to (without the job number). */
export type HashFileResult =
  | { ok: true; digests: Partial<Record<HashAlgorithm, string>>; bytes: number }
  | {
      ok: false;
      reason: WorkerSkipReason;
      /** True when the outcome belongs to the identity (not to the path or the moment) and may be cached. */
      cacheable: boolean;
      bytes: number;
      /** errno code, for `unreadable`. */
      code?: string;
    };

/** One reply, worker → main thread. */
export type HashJobReply = HashFileResult & { job: number };

/** What every worker is started with. */
export interface HashWorkerData {
  soloadHashWorker: 1;
  /** 8 bytes shared by all workers: the budget's theoretical arrival time (see {@link BudgetPacer}). */
  bucket: SharedArrayBuffer;
  /** Infinity: no budget. */
  bytesPerSecond: number;
  burstBytes: number;
  chunkBytes: number;
}

/**
 * The hashing budget, shared by every worker through one 64-bit cell (GCRA, the "virtual
 * scheduling" form of a token bucket): the cell holds the time at which the budget will have paid
 * for every byte reserved so far. A reservation pushes it by the bytes' cost and says how long to
 * wait so that no more than `burstBytes` run ahead of the rate.
 *
 * Workers reserve one chunk at a time, so a huge file and a small one hashed by two workers
 * interleave chunk by chunk instead of the huge one taking the whole budget first.
 */
export class BudgetPacer {
  private readonly cell: BigInt64Array;
  private readonly nsPerByte: number;
  private readonly burstNs: bigint;
  private readonly sleeper = new Int32Array(new SharedArrayBuffer(4));

  constructor(bucket: SharedArrayBuffer, bytesPerSecond: number, burstBytes: number) {
    this.cell = new BigInt64Array(bucket, 0, 1);
    this.nsPerByte = Number.isFinite(bytesPerSecond) && bytesPerSecond > 0 ? 1e9 / bytesPerSecond : 0;
    this.burstNs = BigInt(Math.round(burstBytes * this.nsPerByte));
  }

  /** Reserves `bytes` of budget; returns the nanoseconds to wait before using them (0n: now). */
  reserve(bytes: number, now: bigint = process.hrtime.bigint()): bigint {
    if (this.nsPerByte === 0) return 0n;
    const cost = BigInt(Math.ceil(bytes * this.nsPerByte));
    for (;;) {
      const tat = Atomics.load(this.cell, 0);
      const next = (tat > now ? tat : now) + cost;
      if (Atomics.compareExchange(this.cell, 0, tat, next) === tat) {
        const wait = next - this.burstNs - now;
        return wait > 0n ? wait : 0n;
      }
    }
  }

  /** Reserves `bytes` and blocks this thread until they may be used. */
  take(bytes: number): void {
    let waitNs = this.reserve(bytes);
    // Slices keep a terminate() from the main thread prompt even during a long wait.
    while (waitNs > 0n) {
      const ms = Math.min(100, Math.ceil(Number(waitNs) / 1e6));
      Atomics.wait(this.sleeper, 0, 0, ms);
      waitNs -= BigInt(ms) * 1_000_000n;
    }
  }
}

const C = fs.constants;
// O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOFOLLOW: the caller's path is
// canonical, a symlink in its place is not the file it stat'ed; O_NOCTTY: a tty must not become
// our controlling terminal.
const OPEN_FLAGS = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK | C.O_NOCTTY;
// Hashing every loaded library must not dirty every one of their inodes with an atime update.
// O_NOATIME is allowed to the file's owner and CAP_FOWNER (soload as root); others get EPERM.
const O_NOATIME = (C as Record<string, number | undefined>).O_NOATIME ?? 0;
let noatime = O_NOATIME !== 0;

function openFile(path: string): number {
  if (noatime) {
    try {
      return fs.openSync(fsName(path), OPEN_FLAGS | O_NOATIME);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
      if (process.getuid?.() !== 0) noatime = false; // not privileged: stop paying for the retry
    }
  }
  return fs.openSync(fsName(path), OPEN_FLAGS);
}

function errnoOf(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? 'EUNKNOWN';
}

/**
 * Opens, checks and digests one file, synchronously: every requested algorithm is fed from the same
 * chunk, so the file is read once. `pace(n)` is called before each read of n bytes (the budget).
 */
export function hashFile(msg: HashJobMessage, buf: Buffer, pace: (bytes: number) => void): HashFileResult {
  let fd: number;
  try {
    fd = openFile(msg.path);
  } catch (err) {
    const code = errnoOf(err);
    // ELOOP: a symlink sits where the caller saw a file (O_NOFOLLOW).
    if (code === 'ELOOP') return { ok: false, reason: 'not_regular', cacheable: false, bytes: 0 };
    if (code === 'ENOENT' || code === 'ENOTDIR') return { ok: false, reason: 'changed', cacheable: false, bytes: 0 };
    return { ok: false, reason: 'unreadable', cacheable: false, bytes: 0, code };
  }
  let bytes = 0;
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    const same = Number(st.dev) === msg.dev && Number(st.ino) === msg.ino;
    if (!st.isFile()) return { ok: false, reason: 'not_regular', cacheable: same, bytes };
    if (!same || Number(st.size) !== msg.size || st.mtimeNs !== msg.mtimeNs) return { ok: false, reason: 'changed', cacheable: false, bytes };
    if (msg.size > msg.maxFileBytes) return { ok: false, reason: 'too_large', cacheable: true, bytes };
    const hashes: Hash[] = msg.algorithms.map((a) => createHash(a));
    while (bytes < msg.size) {
      const want = Math.min(buf.length, msg.size - bytes);
      pace(want);
      const n = fs.readSync(fd, buf, 0, want, bytes);
      if (n === 0) return { ok: false, reason: 'changed', cacheable: false, bytes }; // truncated under us
      const chunk = n === buf.length ? buf : buf.subarray(0, n);
      for (const h of hashes) h.update(chunk);
      bytes += n;
    }
    // A write during the read leaves a digest of neither version: the identity must still hold.
    const after = fs.fstatSync(fd, { bigint: true });
    if (after.size !== st.size || after.mtimeNs !== st.mtimeNs) return { ok: false, reason: 'changed', cacheable: false, bytes };
    const digests: Partial<Record<HashAlgorithm, string>> = {};
    msg.algorithms.forEach((a, i) => (digests[a] = hashes[i]!.digest('hex')));
    return { ok: true, digests, bytes };
  } catch (err) {
    return { ok: false, reason: 'unreadable', cacheable: false, bytes, code: errnoOf(err) };
  } finally {
    try {
      fs.closeSync(fd);
    } catch {
      // nothing left to do with a descriptor that will not close
    }
  }
}

function serve(data: HashWorkerData): void {
  const port = parentPort!;
  const pacer = new BudgetPacer(data.bucket, data.bytesPerSecond, data.burstBytes);
  // One buffer for the worker's life: a flood of files costs no allocation per file.
  const buf = Buffer.allocUnsafe(data.chunkBytes);
  const pace = (n: number) => pacer.take(n);
  port.on('message', (msg: HashJobMessage) => {
    let result: HashFileResult;
    try {
      result = hashFile(msg, buf, pace);
    } catch (err) {
      result = { ok: false, reason: 'unreadable', cacheable: false, bytes: 0, code: errnoOf(err) };
    }
    port.postMessage({ job: msg.job, ...result } satisfies HashJobReply);
  });
}

if (!isMainThread && parentPort && (workerData as Partial<HashWorkerData> | null)?.soloadHashWorker === 1) {
  serve(workerData as HashWorkerData);
}
