import path from 'node:path';
import type { LoadEvent } from '../types';
import type { ProcessInfo, ProcReader } from '../host/proc-reader';

/** What is known of the file that was mapped. */
export interface LoadedFile {
  inode: number;
  size?: number;
  dev?: number;
}

/** A LoadEvent with what /proc could add. */
export interface EnrichedLoad {
  event: LoadEvent;
  process?: ProcessInfo;
  /** Facts of the loaded file (size is absent when only ld.so's record of it is left). */
  file?: LoadedFile;
  /** Attribute names that could not be enriched (process gone, file unreadable). */
  missing: string[];
}

/**
 * Adds process and file facts to load events, caching per pid. A cache entry is dropped when the
 * process exits or execs (the capture stage tells us from sched tracepoints), and re-validated by
 * start time when older than `revalidateMs`, so a reused pid never inherits a dead process's facts.
 */
export class ProcessEnricher {
  private readonly cache = new Map<number, { info: ProcessInfo; at: number; exited?: number }>();
  /**
   * Pids /proc did not show, and when: most records are read after their process exited, and each
   * failed /proc open costs a thrown error. Valid until the pid starts a new process (fork, exec)
   * or `revalidateMs` passes (a kernel without sched tracepoints tells soload neither).
   */
  private readonly gone = new Map<number, number>();
  private readonly proc: ProcReader;
  private readonly maxEntries: number;
  private readonly revalidateMs: number;

  constructor(proc: ProcReader, opts: { maxEntries?: number; revalidateMs?: number } = {}) {
    this.proc = proc;
    this.maxEntries = opts.maxEntries ?? 16384;
    this.revalidateMs = opts.revalidateMs ?? 5000;
  }

  /**
   * Makes an event's path absolute where the kernel could not: the loader kept a relative
   * `dlopen("./x.so")` name and the cwd was not followed, or the path read faulted and only the
   * requested name is known (then the mapping with that basename is taken from /proc). Needs the
   * process alive; what it cannot do is listed in `missing`. Runs before canonical resolution.
   */
  completePath(event: LoadEvent): { event: LoadEvent; missing: string[] } {
    const missing: string[] = [];
    let resolved = event;
    if (event.result === 'ok' && event.path === undefined && event.requestedName && !event.loaderPath) {
      const fromMaps = this.pathFromMaps(event.pid, event.requestedName);
      if (fromMaps) {
        resolved = { ...event, path: fromMaps, unresolved: event.unresolved?.filter((u) => u !== 'file.path') };
      }
    }
    if (resolved.path !== undefined && !resolved.path.startsWith('/')) {
      // ld.so keeps a dlopen("./x.so") name as given in l_name; make it absolute as the process saw it.
      // execve("./prog") leaves the exec tracepoint with the relative name; /proc/<pid>/exe is exact.
      const abs = (resolved.method === 'executable' ? this.proc.exe(event.pid) : undefined) ?? this.absolutize(event.pid, resolved.path);
      if (abs) resolved = { ...resolved, path: abs };
      else missing.push('file.path.absolute');
    }
    return { event: resolved, missing };
  }

  /**
   * Enriches one event with process facts (file facts come with the event from path resolution).
   * Never throws: what cannot be read is listed in `missing`, after `missingBefore`.
   */
  enrich(event: LoadEvent, missingBefore: readonly string[] = [], now = Date.now()): EnrichedLoad {
    const missing: string[] = [...missingBefore];
    if (event.viewLost) missing.push('file.path.namespace');
    const processInfo = this.processInfo(event.pid, now);
    if (!processInfo) missing.push('process');
    else missing.push(...processInfo.missing);
    let file: LoadedFile | undefined;
    if (event.file) {
      file = { inode: event.file.ino, ...(event.file.size !== undefined ? { size: event.file.size } : {}), ...(event.file.dev !== undefined ? { dev: event.file.dev } : {}) };
    } else if (event.path !== undefined && !event.deleted && !event.replaced && !event.memfd) missing.push('file.size', 'file.inode');
    return { event, process: processInfo, file, missing };
  }

  /** Process facts alone (custom probe records), with what could not be read. */
  processOf(pid: number, now = Date.now()): { process?: ProcessInfo; missing: string[] } {
    const info = this.processInfo(pid, now);
    return info ? { process: info, missing: [...info.missing] } : { missing: ['process'] };
  }

  /**
   * Reads `pid`'s facts now, while it may still live (at its exec: the environment a short-lived
   * process was started with is gone once it exits).
   */
  prime(pid: number, now = Date.now()): void {
    this.processInfo(pid, now);
  }

  /** Forgets a process (exit or exec). */
  forget(pid: number): void {
    this.cache.delete(pid);
    this.gone.delete(pid);
  }

  /** `pid` is a new process (fork child) or runs a new image (exec): nothing known of it holds. */
  onStart(pid: number): void {
    this.forget(pid);
  }

  /**
   * `pid` exited: what was read of it stays its facts (records of it may still be on their way
   * through a handler) and needs no more checks against /proc, until the pid is reused.
   */
  onExit(pid: number, now = Date.now()): void {
    const hit = this.cache.get(pid);
    if (hit) hit.exited ??= now;
  }

  /**
   * Releases the facts of processes that exited more than `graceMs` ago (their records have had
   * that long to pass) and the "not in /proc" marks older than the revalidation interval.
   */
  sweep(graceMs: number, now = Date.now()): void {
    for (const [pid, hit] of this.cache) if (hit.exited !== undefined && now - hit.exited > graceMs) this.cache.delete(pid);
    for (const [pid, at] of this.gone) if (now - at >= this.revalidateMs) this.gone.delete(pid);
  }

  get size(): number {
    return this.cache.size;
  }

  /** Sizes of its maps (the debug state view). */
  sizes(): Record<string, number> {
    return { processInfo: this.cache.size, processGone: this.gone.size };
  }

  private processInfo(pid: number, now: number): ProcessInfo | undefined {
    const hit = this.cache.get(pid);
    if (hit) {
      if (hit.exited !== undefined || now - hit.at < this.revalidateMs) return hit.info;
      const ticks = this.proc.startTicks(pid);
      if (ticks !== undefined && ticks === hit.info.startTicks) {
        hit.at = now;
        return hit.info;
      }
      this.cache.delete(pid);
      if (ticks === undefined) return hit.info; // exited since: the cached facts are still the right ones
    }
    const goneAt = this.gone.get(pid);
    if (goneAt !== undefined) {
      if (now - goneAt < this.revalidateMs) return undefined;
      this.gone.delete(pid);
    }
    const info = this.proc.readProcess(pid);
    if (!info) {
      if (this.gone.size >= this.maxEntries) this.gone.delete(this.gone.keys().next().value as number);
      this.gone.set(pid, now);
      return undefined;
    }
    if (this.cache.size >= this.maxEntries) {
      const oldest = this.cache.keys().next().value as number;
      this.cache.delete(oldest);
    }
    this.cache.set(pid, { info, at: now });
    return info;
  }

  private absolutize(pid: number, rel: string): string | undefined {
    const mapped = this.proc.mappedFiles(pid);
    const cwd = this.proc.cwd(pid);
    if (cwd) {
      const joined = path.resolve(cwd, rel);
      if (mapped.includes(joined) || this.proc.statAs(pid, joined)) return joined;
    }
    const base = path.basename(rel);
    return mapped.find((f) => path.basename(f) === base);
  }

  /** The mapped file whose basename is the requested name's basename (l_name fallback). */
  private pathFromMaps(pid: number, requested: string): string | undefined {
    if (requested.startsWith('/')) return requested;
    const base = path.basename(requested);
    return this.proc.mappedFiles(pid).find((f) => path.basename(f) === base);
  }
}
