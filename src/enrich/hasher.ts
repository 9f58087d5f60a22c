/**
 * File digests for load records (`file.hash.sha256`, and the md5/sha1 a package database records),
 * computed off the main thread, at a bounded rate, with bounded memory.
 *
 * The main thread parses trace_pipe and exports; it only admits, queues and caches here. The reading
 * and hashing run in `node:worker_threads` workers (./hash-worker.ts), in two lanes:
 *
 * - the *small* lane: files of at most `smallFileBytes`. One worker (`smallLaneWorkers`) serves
 *   only this lane, so a 2 GB file never delays the libc that is loaded next;
 * - the *general* workers (`workers`) take the oldest job of either lane.
 *
 * Bounds, because a flood of new files must not eat the host (Kunai issue #257):
 * - a file larger than `maxFileBytes` is refused (`too_large`) from its size alone, unread;
 * - at most `maxQueue` jobs wait for a worker, beyond that `queue_full` at once;
 * - every byte read is paid from one budget of `bytesPerSecond` shared by all workers (chunk by
 *   chunk, see {@link BudgetPacer}); a request whose lane already holds more than
 *   `maxBudgetWaitMs` worth of bytes at that rate is refused (`budget`) rather than queued;
 * - results are kept in an LRU of `cacheEntries` identities; nothing else is kept per file.
 *
 * A file is known by its identity (device, inode, size, mtime): the worker checks, on the
 * descriptor it opened, that the path still names that file, so a digest is never attached to a
 * file that replaced the one the caller stat'ed.
 */
import path from 'node:path';
import { ErrorCodes, SoloadError } from '../errors';
import { Worker } from 'node:worker_threads';
import type { HashJobMessage, HashJobReply, HashWorkerData } from './hash-worker';

/** Identity of a file's content: same identity, same bytes (short of a write that kept mtime). */
export interface FileIdentity {
  dev: number;
  ino: number;
  size: number;
  /** Modification time, ns since the epoch. */
  mtimeNs: bigint;
}

/** Digests the hasher computes. */
export type HashAlgorithm = 'sha256' | 'md5' | 'sha1';

/** Every {@link HashAlgorithm}. */
export const HASH_ALGORITHMS: readonly HashAlgorithm[] = ['sha256', 'md5', 'sha1'];

/**
 * Why a file got no digest:
 * - `too_large`: larger than `maxFileBytes` (not read);
 * - `not_regular`: a FIFO, device, directory, or a symlink where the caller saw a file;
 * - `changed`: the path no longer names the file of the given identity (replaced, written, gone);
 * - `unreadable`: open/read failed (EACCES, EIO...), or the worker died;
 * - `queue_full`: `maxQueue` jobs were already waiting;
 * - `budget`: the file's lane already held more than `maxBudgetWaitMs` of bytes at the budget's rate;
 * - `closed`: the hasher was closed before the job ran or finished;
 * - `timeout`: the job exceeded `timeoutMs` (its worker was replaced).
 */
export type HashSkipReason = 'too_large' | 'not_regular' | 'changed' | 'unreadable' | 'queue_full' | 'budget' | 'closed' | 'timeout';

/** Result of {@link FileHasher.hash}. */
export type HashOutcome =
  | {
      ok: true;
      /** Lowercase hex, one per requested algorithm. */
      digests: Partial<Record<HashAlgorithm, string>>;
      /** True when no file was read for this request. */
      cached: boolean;
    }
  | { ok: false; reason: HashSkipReason };

/** Options of {@link FileHasher}; every one has a default. */
export interface FileHasherOptions {
  /** Larger files are refused `too_large` without being read. Default 256 MiB: above every ordinary library, below the GPU ones. */
  maxFileBytes?: number;
  /** Jobs waiting for a worker at most; beyond, `queue_full` at once. 0: hash only when a worker is idle. Default 256. */
  maxQueue?: number;
  /** Hashing budget, bytes read per second over all workers. 0 or Infinity: no budget. Default 64 MiB/s (a few % of one core for sha256). */
  bytesPerSecond?: number;
  /** Bytes that may be read at once after an idle period, ahead of the rate. Default one second of budget (at least one chunk). */
  burstBytes?: number;
  /** A request is refused `budget` when its lane's bytes (waiting and running, its own included) would take longer than this at the budget's rate. Default 10000 ms. */
  maxBudgetWaitMs?: number;
  /** Identities whose result is kept (LRU). 0: no cache. Default 8192. */
  cacheEntries?: number;
  /** General workers (they take the oldest job of either lane). Default 1. */
  workers?: number;
  /** Workers reserved to the small lane. 0: no reserved lane (all jobs in arrival order). Default 1. */
  smallLaneWorkers?: number;
  /** Files of at most this size are in the small lane. Default 4 MiB (a job of ~10 ms). */
  smallFileBytes?: number;
  /** Read size. Default 1 MiB. */
  chunkBytes?: number;
  /**
   * A job running longer than this is abandoned (`timeout`) and its worker replaced (a read hung on
   * a network file system). Time the budget makes a job wait is added to its deadline, so a paced
   * job never times out for being paced. Default 30000 ms.
   */
  timeoutMs?: number;
}

/** Counters of a {@link FileHasher}. */
export interface FileHasherStats {
  /** Jobs that produced digests. */
  hashed: number;
  /** Bytes read by the workers. */
  bytes: number;
  /** Requests answered from the cache (hash() and cached()). */
  cacheHits: number;
  /** Requests without digests, by {@link HashSkipReason} (one per hash() call). */
  skipped: Record<string, number>;
  /** Jobs waiting for a worker now. */
  queued: number;
  /** Jobs running now. */
  running: number;
  /** Identities in the cache now. */
  cacheSize: number;
}

type Digests = Partial<Record<HashAlgorithm, string>>;
type Lane = 'small' | 'large';
type JobResult = { ok: true; digests: Digests } | { ok: false; reason: HashSkipReason };
type CacheEntry = { digests: Digests } | { skip: HashSkipReason };

interface Job {
  seq: number;
  key: string;
  path: string;
  id: FileIdentity;
  algorithms: Set<HashAlgorithm>;
  lane: Lane;
  running: boolean;
  done: Promise<JobResult>;
  settle: (r: JobResult) => void;
}

interface Slot {
  smallOnly: boolean;
  worker?: Worker;
  job?: Job;
  timer?: NodeJS.Timeout;
}

const MiB = 1024 * 1024;
const VALID = new Set<string>(HASH_ALGORITHMS);

/** A Map in least-recently-used order, bounded. */
class Lru<V> {
  private readonly m = new Map<string, V>();
  constructor(private readonly max: number) {}
  get size(): number {
    return this.m.size;
  }
  get(k: string): V | undefined {
    const v = this.m.get(k);
    if (v !== undefined) {
      this.m.delete(k);
      this.m.set(k, v);
    }
    return v;
  }
  set(k: string, v: V): void {
    if (this.max <= 0) return;
    this.m.delete(k);
    this.m.set(k, v);
    if (this.m.size > this.max) this.m.delete(this.m.keys().next().value!);
  }
  clear(): void {
    this.m.clear();
  }
}

function identityKey(id: FileIdentity): string {
  return `${id.dev}:${id.ino}:${id.size}:${id.mtimeNs}`;
}

function positive(name: string, v: number | undefined, dflt: number, allowZero = false): number {
  if (v === undefined) return dflt;
  if (!(v > 0 || (allowZero && v === 0)) || Number.isNaN(v)) throw new SoloadError(ErrorCodes.INTERNAL, `FileHasher: ${name} must be ${allowZero ? '>= 0' : '> 0'}, got ${v}`);
  return v;
}

/**
 * Digests of files, computed by worker threads at a bounded rate and cached by identity.
 * Requests for an identity already being hashed share its job.
 */
export class FileHasher {
  private readonly maxFileBytes: number;
  private readonly maxQueue: number;
  private readonly rate: number;
  private readonly maxBacklog: number;
  private readonly smallFileBytes: number;
  private readonly timeoutMs: number;
  private readonly cache: Lru<CacheEntry>;
  private readonly slots: Slot[] = [];
  private readonly queues: Record<Lane, Job[]> = { small: [], large: [] };
  /** Bytes admitted to each lane and not yet finished (the budget's backlog). */
  private readonly backlog: Record<Lane, number> = { small: 0, large: 0 };
  private readonly inflight = new Map<string, Job>();
  private readonly workerData: HashWorkerData;
  private readonly counters = { hashed: 0, bytes: 0, cacheHits: 0 };
  private readonly skipped: Record<string, number> = {};
  private seq = 0;
  private closed = false;

  constructor(opts: FileHasherOptions = {}) {
    this.maxFileBytes = positive('maxFileBytes', opts.maxFileBytes, 256 * MiB, true);
    this.maxQueue = Math.floor(positive('maxQueue', opts.maxQueue, 256, true));
    const rate = positive('bytesPerSecond', opts.bytesPerSecond, 64 * MiB, true);
    this.rate = rate === 0 ? Infinity : rate;
    const chunkBytes = Math.floor(positive('chunkBytes', opts.chunkBytes, MiB));
    const burstBytes = Math.max(chunkBytes, positive('burstBytes', opts.burstBytes, Number.isFinite(this.rate) ? this.rate : chunkBytes));
    this.maxBacklog = this.rate * (positive('maxBudgetWaitMs', opts.maxBudgetWaitMs, 10_000, true) / 1000);
    this.smallFileBytes = positive('smallFileBytes', opts.smallFileBytes, 4 * MiB, true);
    this.timeoutMs = positive('timeoutMs', opts.timeoutMs, 30_000);
    this.cache = new Lru(Math.floor(positive('cacheEntries', opts.cacheEntries, 8192, true)));
    const general = Math.floor(positive('workers', opts.workers, 1));
    const reserved = Math.floor(positive('smallLaneWorkers', opts.smallLaneWorkers, 1, true));
    for (let i = 0; i < reserved; i++) this.slots.push({ smallOnly: true });
    for (let i = 0; i < general; i++) this.slots.push({ smallOnly: false });
    this.workerData = { soloadHashWorker: 1, bucket: new SharedArrayBuffer(8), bytesPerSecond: this.rate, burstBytes, chunkBytes };
  }

  /**
   * Digests of the file at `hostPath`, which must still be the file `id` (checked with fstat on the
   * descriptor the worker opened: device, inode, size and mtime), else `changed`. Refusals
   * (`too_large`, `queue_full`, `budget`, `closed`) are decided synchronously, before the call
   * returns its promise. Never rejects.
   */
  async hash(hostPath: string, id: FileIdentity, algorithms: readonly HashAlgorithm[]): Promise<HashOutcome> {
    for (const a of algorithms) if (!VALID.has(a)) throw new SoloadError(ErrorCodes.INTERNAL, `FileHasher: unknown algorithm ${String(a)}`);
    if (this.closed) return this.refuse('closed');
    if (id.size > this.maxFileBytes) return this.refuse('too_large');
    const key = identityKey(id);
    const entry = this.cache.get(key);
    if (entry && 'skip' in entry) {
      this.counters.cacheHits++;
      return this.refuse(entry.skip);
    }
    const missing = algorithms.filter((a) => !entry?.digests[a]);
    if (missing.length === 0) {
      this.counters.cacheHits++;
      return { ok: true, digests: pick(entry?.digests ?? {}, algorithms), cached: true };
    }

    const current = this.inflight.get(key);
    if (current) {
      if (!current.running) {
        for (const a of missing) current.algorithms.add(a); // not started: widen it, still one read
        return this.deliver(await current.done, algorithms);
      }
      if (missing.every((a) => current.algorithms.has(a))) return this.deliver(await current.done, algorithms);
      // Running without some algorithm we need: wait for it, then ask again for what is left.
      const r = await current.done;
      if (!r.ok) return this.deliver(r, algorithms);
      return this.hash(hostPath, id, algorithms);
    }

    const lane: Lane = id.size <= this.smallFileBytes ? 'small' : 'large';
    const queued = this.queues.small.length + this.queues.large.length;
    if (queued >= this.maxQueue && !this.idleSlotFor(lane)) return this.refuse('queue_full');
    // A file alone in its lane starts now however long it takes to pace; only waiting is bounded.
    if (this.backlog[lane] > 0 && this.backlog[lane] + id.size > this.maxBacklog) return this.refuse('budget');

    let settle!: (r: JobResult) => void;
    const done = new Promise<JobResult>((resolve) => (settle = resolve));
    const job: Job = { seq: ++this.seq, key, path: hostPath, id: { ...id }, algorithms: new Set(missing), lane, running: false, done, settle };
    this.inflight.set(key, job);
    this.backlog[lane] += id.size;
    this.queues[lane].push(job);
    this.pump();
    return this.deliver(await done, algorithms);
  }

  /** Synchronous cache peek: every requested digest of `id` when all are cached, else undefined. */
  cached(id: FileIdentity, algorithms: readonly HashAlgorithm[]): Digests | undefined {
    const entry = this.cache.get(identityKey(id));
    if (!entry || 'skip' in entry) return undefined;
    if (!algorithms.every((a) => entry.digests[a])) return undefined;
    this.counters.cacheHits++;
    return pick(entry.digests, algorithms);
  }

  /** Counters and current sizes. */
  stats(): FileHasherStats {
    return {
      ...this.counters,
      skipped: { ...this.skipped },
      queued: this.queues.small.length + this.queues.large.length,
      running: this.slots.filter((s) => s.job).length,
      cacheSize: this.cache.size,
    };
  }

  /** Stops the workers; waiting and running jobs resolve `closed`, later calls too. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const exits: Promise<unknown>[] = [];
    for (const slot of this.slots) {
      if (slot.timer) clearTimeout(slot.timer);
      const w = slot.worker;
      slot.worker = slot.job = slot.timer = undefined;
      if (w) exits.push(w.terminate().catch(() => undefined));
    }
    for (const job of [...this.inflight.values()]) this.finish(job, { ok: false, reason: 'closed' });
    this.queues.small.length = this.queues.large.length = 0;
    this.cache.clear();
    // A worker stuck in a read syscall exits only when the syscall returns: do not wait for it.
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise((r) => (timer = setTimeout(r, 2000).unref()));
    await Promise.race([Promise.all(exits), bound]);
    clearTimeout(timer);
  }

  private refuse(reason: HashSkipReason): HashOutcome {
    this.skipped[reason] = (this.skipped[reason] ?? 0) + 1;
    return { ok: false, reason };
  }

  private deliver(r: JobResult, algorithms: readonly HashAlgorithm[]): HashOutcome {
    if (!r.ok) return this.refuse(r.reason);
    return { ok: true, digests: pick(r.digests, algorithms), cached: false };
  }

  private idleSlotFor(lane: Lane): Slot | undefined {
    return this.slots.find((s) => !s.job && (lane === 'small' || !s.smallOnly));
  }

  /** Gives every idle worker the job its lane rules pick. */
  private pump(): void {
    for (const slot of this.slots) {
      if (slot.job || this.closed) continue;
      const small = this.queues.small[0];
      const large = slot.smallOnly ? undefined : this.queues.large[0];
      const job = small && (!large || small.seq < large.seq) ? small : large;
      if (!job) continue;
      this.queues[job.lane].shift();
      this.start(slot, job);
    }
  }

  private start(slot: Slot, job: Job): void {
    const fresh = !slot.worker;
    const w = slot.worker ?? this.spawn(slot);
    job.running = true;
    slot.job = job;
    // Referenced while it works, so an awaited hash() completes even when nothing else keeps the
    // process alive; unreferenced when idle, so an idle hasher never does.
    w.ref();
    // Pacing may make the job wait for the budget shared by all workers: that wait is not a hang.
    const paced = Number.isFinite(this.rate) ? (job.id.size / this.rate) * 1000 * this.slots.length : 0;
    const arm = () => {
      if (slot.job === job && slot.worker === w) slot.timer = setTimeout(() => this.onTimeout(slot, job), this.timeoutMs + paced).unref();
    };
    // A new worker's start-up (tens of ms) is not the job's time.
    if (fresh) w.once('online', arm);
    else arm();
    const msg: HashJobMessage = {
      job: job.seq,
      path: job.path,
      dev: job.id.dev,
      ino: job.id.ino,
      size: job.id.size,
      mtimeNs: job.id.mtimeNs,
      algorithms: [...job.algorithms],
      maxFileBytes: this.maxFileBytes,
    };
    w.postMessage(msg);
  }

  private spawn(slot: Slot): Worker {
    const w = new Worker(path.join(__dirname, 'hash-worker.js'), {
      workerData: this.workerData,
      // The worker holds one chunk buffer (outside the heap) and a few hash states.
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
    });
    w.unref();
    w.on('message', (reply: HashJobReply) => {
      if (slot.worker !== w) return;
      const job = slot.job;
      if (!job || job.seq !== reply.job) return;
      this.counters.bytes += reply.bytes;
      this.release(slot);
      if (reply.ok) {
        this.counters.hashed++;
        this.finish(job, { ok: true, digests: reply.digests });
      } else {
        if (reply.cacheable) this.cache.set(job.key, { skip: reply.reason });
        this.finish(job, { ok: false, reason: reply.reason });
      }
      this.pump();
    });
    const lost = () => {
      if (slot.worker !== w) return;
      const job = slot.job;
      slot.worker = undefined;
      this.release(slot);
      if (job) this.finish(job, { ok: false, reason: 'unreadable' });
      this.pump();
    };
    w.on('error', lost);
    w.on('exit', lost);
    slot.worker = w;
    return w;
  }

  private release(slot: Slot): void {
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = slot.job = undefined;
    slot.worker?.unref();
  }

  private onTimeout(slot: Slot, job: Job): void {
    if (slot.job !== job) return;
    const w = slot.worker;
    slot.worker = undefined; // the next job gets a fresh worker; this one may be stuck in a syscall
    this.release(slot);
    w?.terminate().catch(() => undefined);
    this.finish(job, { ok: false, reason: 'timeout' });
    this.pump();
  }

  private finish(job: Job, r: JobResult): void {
    if (this.inflight.get(job.key) !== job) return;
    this.inflight.delete(job.key);
    this.backlog[job.lane] -= job.id.size;
    if (r.ok) {
      const prev = this.cache.get(job.key);
      const merged = prev && 'digests' in prev ? { ...prev.digests, ...r.digests } : r.digests;
      this.cache.set(job.key, { digests: merged });
      job.settle({ ok: true, digests: merged });
    } else job.settle(r);
  }
}

function pick(d: Digests, algorithms: readonly HashAlgorithm[]): Digests {
  const out: Digests = {};
  for (const a of algorithms) if (d[a]) out[a] = d[a];
  return out;
}
