import { mappedOf } from './file-id';
import type { LoadEvent, TraceRecord } from '../types';

/** Counters a correlator keeps; exported as soload's health numbers. */
export interface DlopenStats {
  entries: number;
  returns: number;
  /** Returns with no pending entry (soload started mid-call, or the entry was lost). */
  orphanReturns: number;
  /** Entries whose return never came (thread died inside dlopen) and were expired. */
  expiredEntries: number;
  /** `dlopen(NULL)`: a handle to the main program, not a load. Not reported. */
  selfHandles: number;
  /** Requested name unreadable at entry, recovered from the link_map's l_libname at return. */
  nameRecovered: number;
  /** Requested name unreadable at entry and not recoverable (failed dlopen). */
  nameUnresolved: number;
  /** Successful dlopen whose l_name could not be read. */
  pathUnresolved: number;
}

/** A dlopen call in flight. */
export interface PendingDlopen {
  pid: number;
  tid: number;
  name: string | null;
  flags?: number;
  timestampNs: bigint;
  comm: string;
  /** The entry probe's event. */
  probe: string;
  /** Opaque number the caller attached at entry (the loader tracker: its add count then). */
  mark?: number;
}

/** Calls one thread may have in flight: nesting deeper than this is a lost return, not real nesting. */
const MAX_DEPTH = 64;

/**
 * Pairs dlopen entry and return hits per thread into LoadEvents (pure state machine; no I/O).
 * A stack per thread, because a library constructor may itself call dlopen before the outer call
 * returns. Return probes fire in LIFO order on a thread, so the top of the stack is the match.
 *
 * A call whose return never comes (its thread or process was killed inside dlopen, or the return
 * record was lost) leaves by one of: its process's exit ({@link forgetProcess}), its thread found
 * gone ({@link forgetThread}), age ({@link expire}), or the thread bound (oldest thread first).
 * The first three hand the calls back so the caller can report them.
 */
export class DlopenCorrelator {
  readonly stats: DlopenStats = {
    entries: 0,
    returns: 0,
    orphanReturns: 0,
    expiredEntries: 0,
    selfHandles: 0,
    nameRecovered: 0,
    nameUnresolved: 0,
    pathUnresolved: 0,
  };
  private readonly pending = new Map<number, PendingDlopen[]>();
  /** pid → its threads with a call in flight (a process's exit must not scan every thread). */
  private readonly threadsOf = new Map<number, Set<number>>();
  private readonly maxAgeNs: bigint;
  private readonly maxThreads: number;

  /**
   * @param maxAgeMs entries older than this without a return are dropped by {@link expire}.
   * @param maxThreads threads with a dlopen in flight tracked at most (oldest dropped).
   */
  constructor(maxAgeMs = 60_000, maxThreads = 65536) {
    this.maxAgeNs = BigInt(maxAgeMs) * 1_000_000n;
    this.maxThreads = maxThreads;
  }

  /** Feeds an entry hit; `mark` is kept with it (see {@link PendingDlopen.mark}). */
  onEntry(rec: TraceRecord, mark?: number): void {
    this.stats.entries++;
    const flags = rec.fields.flags != null ? Number(rec.fields.flags) : undefined;
    let stack = this.pending.get(rec.tid);
    if (!stack) {
      if (this.pending.size >= this.maxThreads) {
        const oldest = this.pending.keys().next().value as number;
        this.stats.expiredEntries += this.pending.get(oldest)!.length;
        this.dropThread(oldest);
      }
      stack = [];
    } else if (stack.length >= MAX_DEPTH) {
      stack.shift();
      this.stats.expiredEntries++;
    }
    const pid = rec.tgid ?? rec.tid;
    stack.push({ pid, tid: rec.tid, probe: rec.event, ...(mark !== undefined ? { mark } : {}), name: rec.fields.name ?? null, flags, timestampNs: rec.timestampNs, comm: rec.fields.comm ?? rec.comm });
    this.pending.set(rec.tid, stack);
    let tids = this.threadsOf.get(pid);
    if (!tids) this.threadsOf.set(pid, (tids = new Set()));
    tids.add(rec.tid);
  }

  /** The innermost dlopen in flight on thread `tid` (the one its next return completes). */
  peek(tid: number): PendingDlopen | undefined {
    return this.pending.get(tid)?.at(-1);
  }

  /** Feeds a return hit; returns the completed LoadEvent, or undefined when nothing was loaded. */
  onReturn(rec: TraceRecord, probe: string): LoadEvent | undefined {
    this.stats.returns++;
    const stack = this.pending.get(rec.tid);
    const entry = stack?.pop();
    if (stack && stack.length === 0) this.dropThread(rec.tid);
    if (!entry) this.stats.orphanReturns++;
    const handle = parseHandle(rec.fields.handle);
    const ok = handle !== 0n;
    const path = nonEmpty(rec.fields.path);
    const libname = nonEmpty(rec.fields.libname);
    // dlopen(NULL) returns the main program's map: its l_name is "" and nothing was loaded.
    if (ok && entry && entry.name === null && path === undefined && rec.fields.path === '') {
      this.stats.selfHandles++;
      return undefined;
    }
    let requestedName = entry?.name ?? undefined;
    const unresolved: string[] = [];
    if (requestedName === undefined) {
      if (ok && libname !== undefined) {
        requestedName = libname;
        this.stats.nameRecovered++;
      } else {
        this.stats.nameUnresolved++;
        unresolved.push('soload.requested_name');
      }
    }
    if (ok && path === undefined) {
      this.stats.pathUnresolved++;
      unresolved.push('file.path');
    }
    const ev: LoadEvent = {
      timestampNs: rec.timestampNs,
      pid: rec.tgid ?? rec.tid,
      tid: rec.tid,
      comm: rec.fields.comm ?? entry?.comm ?? rec.comm,
      method: 'dlopen',
      result: ok ? 'ok' : 'failed',
      probe,
    };
    if (ok && path !== undefined) ev.path = path;
    if (ok) Object.assign(ev, mappedOf(rec.fields.dev, rec.fields.ino));
    if (requestedName !== undefined) ev.requestedName = requestedName;
    if (entry?.flags !== undefined && Number.isFinite(entry.flags)) ev.flags = entry.flags;
    if (unresolved.length) ev.unresolved = unresolved;
    return ev;
  }

  /**
   * Forgets every thread of a process that exited (threads that died inside dlopen included) and
   * returns their calls in flight.
   */
  forgetProcess(pid: number): PendingDlopen[] {
    const out: PendingDlopen[] = [];
    for (const tid of this.threadsOf.get(pid) ?? []) {
      const stack = this.pending.get(tid) ?? [];
      const keep = stack.filter((p) => p.pid !== pid);
      out.push(...stack.filter((p) => p.pid === pid));
      if (keep.length === 0) this.pending.delete(tid);
      else this.pending.set(tid, keep);
    }
    this.threadsOf.delete(pid);
    this.stats.expiredEntries += out.length;
    return out;
  }

  /** Forgets thread `tid` (found gone while its process lives) and returns its calls in flight. */
  forgetThread(tid: number): PendingDlopen[] {
    const stack = this.pending.get(tid) ?? [];
    this.dropThread(tid);
    this.stats.expiredEntries += stack.length;
    return stack;
  }

  /** Drops entries older than maxAge relative to `nowNs` (trace clock) and returns them. */
  expire(nowNs: bigint): PendingDlopen[] {
    const out: PendingDlopen[] = [];
    for (const [tid, stack] of this.pending) {
      const keep = stack.filter((p) => nowNs - p.timestampNs <= this.maxAgeNs);
      if (keep.length === stack.length) continue;
      out.push(...stack.filter((p) => nowNs - p.timestampNs > this.maxAgeNs));
      if (keep.length) this.pending.set(tid, keep);
      else this.dropThread(tid);
    }
    this.stats.expiredEntries += out.length;
    return out;
  }

  /** Threads with a call in flight, by thread id (the liveness sweep checks them). */
  threads(): IterableIterator<number> {
    return this.pending.keys();
  }

  private dropThread(tid: number): void {
    const stack = this.pending.get(tid);
    this.pending.delete(tid);
    for (const p of stack ?? []) {
      const tids = this.threadsOf.get(p.pid);
      tids?.delete(tid);
      if (tids?.size === 0) this.threadsOf.delete(p.pid);
    }
  }

  /** Threads with a dlopen in flight. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Processes with a call in flight. */
  get processes(): number {
    return this.threadsOf.size;
  }
}

function parseHandle(v: string | null | undefined): bigint {
  if (v == null) return 0n;
  try {
    return BigInt(v);
  } catch {
    return 0n;
  }
}

function nonEmpty(v: string | null | undefined): string | undefined {
  return v == null || v === '' ? undefined : v;
}
