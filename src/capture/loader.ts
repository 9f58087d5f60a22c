import path from 'node:path';
import type { LoadEvent, LoadMethod, TraceRecord } from '../types';
import { DlopenCorrelator, type PendingDlopen } from './dlopen';
import { mappedOf } from './file-id';

/** r_debug.r_state values (glibc <link.h>). */
export const RT_CONSISTENT = 0;
export const RT_ADD = 1;

/**
 * What a tracker's probes can see, set by its capture mechanism: `loader` — every object passes
 * through `_dl_add_to_namespace_list` (dlopen returns only report failures); `lists` — start-up and
 * dlopen search lists (dlopen returns report the target); `dlopen` — only dlopen calls.
 */
export type TrackerMode = 'loader' | 'lists' | 'dlopen';

/** Options of {@link LoaderTracker}. */
export interface LoaderTrackerOptions {
  /** What the probes feeding this tracker see (default `loader`). */
  mode?: TrackerMode;
  /**
   * The file a process exec'd, when soload saw the exec (shared by every tracker: process facts).
   * A process first met after an exec starts in the start-up phase; one never seen exec'ing
   * (older than soload) is past it.
   */
  execOf?: (pid: number) => string | undefined;
  /** Processes tracked at most (oldest dropped first; a dropped process is treated as running). */
  maxProcesses?: number;
  /** Also report each process's main program (method `executable`). */
  reportExecutable: boolean;
  /**
   * DT_NEEDED names of `file` as process `pid` sees it, or undefined when unreadable. Used to tell
   * LD_PRELOAD objects from DT_NEEDED ones at start-up (ELF parsing happens outside this class).
   */
  neededOf: (pid: number, file: string) => readonly string[] | undefined;
  /**
   * Canonical form of a path in `pid`'s view (realpath), to compare the loader's names with /proc's.
   * Only used where the list mechanism must tell already-loaded objects from new ones.
   */
  canonical?: (pid: number, file: string) => string;
  /** Objects `pid` had mapped when soload first met it (for processes that pre-date soload). */
  initiallyLoaded?: (pid: number) => readonly string[];
  /** Entries a start-up list probe set can carry (slices × slice size). */
  listCapacity?: number;
  /** A dlopen in flight longer than this (ms) is reported incomplete at the next {@link LoaderTracker.expire}. */
  dlopenMaxAgeMs?: number;
  /**
   * Names the probed ld.so is known by besides its probed path (PT_INTERP's `/lib64/ld-linux-…`,
   * the canonical file in another root): a list entry with one of these basenames is the loader.
   */
  loaderNames?: readonly string[];
}

/** Counters of the loader tracker. */
export interface LoaderStats {
  adds: number;
  vdso: number;
  execs: number;
  exits: number;
  startupLoads: number;
  dlopenBatches: number;
  /** dlopen() returns that reported nothing new (object already loaded). */
  dlopenAlreadyLoaded: number;
  /** Start-up lists longer than the probes could carry (objects past the capacity are missed). */
  listTruncated: number;
  /** Objects ld.so unmapped (`_dl_unmap`, loader-lists): a later dlopen of one is a new load. */
  unmapped: number;
  /** dlopen calls that never returned, reported with result `incomplete`. */
  dlopenIncomplete: number;
}

interface ProcState {
  phase: 'startup' | 'running';
  /** loader.add hits of this process (a dlopen that added none found everything loaded). */
  adds: number;
  exe?: string;
  /** DT_NEEDED names of the objects loaded so far at start-up; undefined entries mean "unknown". */
  needed: Set<string>;
  exeNeededKnown: boolean;
  interpreterReported: boolean;
  /** Path of the object that opened the current dlopen batch (first add after RT_CONSISTENT). */
  batchFirst?: string;
  /** List mechanism: slices of the start-up list received so far, by first index. */
  parts?: Map<number, TraceRecord>;
  /** List mechanism: canonical paths of objects known to be loaded. */
  known?: Set<string>;
}

/**
 * Turns ld.so's own bookkeeping into one LoadEvent per object mapped (pure state machine, no I/O).
 *
 * Inputs, all read by the kernel at the instant they happen (so a process that exits a millisecond
 * later is reported as completely as a daemon):
 * - `loader.add`: a probe on ld.so's `_dl_add_to_namespace_list(struct link_map *new, Lmid_t)`,
 *   which every object — DT_NEEDED, LD_PRELOAD, dlopen and its dependencies — passes through exactly
 *   once, with `l_name` (the path the loader resolved) and `l_libname->name` (the name as requested).
 * - `loader.state`: `_dl_debug_state()` with `_r_debug.r_state`; RT_CONSISTENT closes start-up and
 *   each dlopen batch. Since glibc 2.35 RT_ADD is signalled after the batch's first object was added.
 * - sched_process_exec / exit: a new image starts fresh; state is dropped with the process.
 * - dlopen entry/return (libc): failed dlopens (nothing mapped) and flags.
 *
 * Method rules: the main map (l_name "") is the executable; at start-up an object is `needed` when
 * its requested name is a DT_NEEDED entry of an object loaded before it, otherwise `preload`
 * (preloads are mapped before any dependency is resolved); after start-up the first object of a
 * batch is the `dlopen` target and the rest are `needed` with `loaded_by` = that target. ld.so never
 * passes through `_dl_add_to_namespace_list` (rtld links its own map by hand), so the interpreter is
 * reported at the first state change of a new image, with the path of the probed ld.so.
 */
export class LoaderTracker {
  readonly stats: LoaderStats = { adds: 0, vdso: 0, execs: 0, exits: 0, startupLoads: 0, dlopenBatches: 0, dlopenAlreadyLoaded: 0, listTruncated: 0, unmapped: 0, dlopenIncomplete: 0 };
  readonly dlopen: DlopenCorrelator;
  private readonly procs = new Map<number, ProcState>();
  private readonly forkParent = new Map<number, number>();
  private readonly opts: LoaderTrackerOptions;
  readonly mode: TrackerMode;
  private readonly maxProcesses: number;

  constructor(opts: LoaderTrackerOptions) {
    this.opts = opts;
    this.mode = opts.mode ?? 'loader';
    this.maxProcesses = opts.maxProcesses ?? 65536;
    this.dlopen = new DlopenCorrelator(opts.dlopenMaxAgeMs);
  }

  /**
   * A process image replaced by execve: everything it had is gone. With `filename` (no shared
   * `execOf`), the start-up state is created now; otherwise on the process's first record here.
   */
  onExec(pid: number, filename?: string): void {
    this.stats.execs++;
    this.forkParent.delete(pid);
    this.procs.delete(pid);
    // A fresh image has loaded nothing yet: never seed it from /proc, which may already be ahead.
    if (filename !== undefined && !this.opts.execOf) this.put(pid, this.startupState(filename));
  }

  /**
   * `parent` forked `child` (or made a thread: the kernel's fork event does not say; a thread's
   * records carry its process's id, so the entry is then never used). Only the pair is kept —
   * copying the parent's objects for every thread would cost far more than the rare forked child
   * that loads something.
   */
  onFork(parent: number, child: number): void {
    if (this.forkParent.size >= this.maxProcesses) this.forkParent.delete(this.forkParent.keys().next().value as number);
    this.forkParent.set(child, parent);
  }

  /**
   * The process is gone: its state and every dlopen its threads had in flight, returned as
   * `incomplete` loads (see {@link incomplete}).
   */
  onExit(pid: number): LoadEvent[] {
    this.stats.exits++;
    const out = this.incomplete(this.dlopen.forgetProcess(pid));
    this.forkParent.delete(pid);
    this.procs.delete(pid);
    return out;
  }

  /** Thread `tid` is gone while its process may live: its calls in flight, as `incomplete` loads. */
  onThreadGone(tid: number): LoadEvent[] {
    this.forkParent.delete(tid);
    return this.incomplete(this.dlopen.forgetThread(tid));
  }

  /** dlopen calls in flight longer than the maximum age, as `incomplete` loads. */
  expire(nowNs: bigint): LoadEvent[] {
    return this.incomplete(this.dlopen.expire(nowNs));
  }

  /**
   * dlopen calls that never returned (the thread was killed inside, typically in a library
   * constructor) as loads with result `incomplete`: the requested name and flags from the entry,
   * no path. A call during which the process got a load reported (loader-probe's per-object hit,
   * loader-lists' `_dl_open` return) is left out: that record already names what it mapped.
   */
  private incomplete(calls: readonly PendingDlopen[]): LoadEvent[] {
    const out: LoadEvent[] = [];
    for (const c of calls) {
      if (c.mark !== undefined && c.mark !== (this.procs.get(c.pid)?.adds ?? 0)) continue;
      this.stats.dlopenIncomplete++;
      out.push({
        timestampNs: c.timestampNs,
        pid: c.pid,
        tid: c.tid,
        comm: c.comm,
        method: 'dlopen',
        result: 'incomplete',
        probe: c.probe,
        ...(c.name !== null ? { requestedName: c.name } : {}),
        ...(c.flags !== undefined && Number.isFinite(c.flags) ? { flags: c.flags } : {}),
        unresolved: c.name === null ? ['file.path', 'soload.requested_name'] : ['file.path'],
      });
    }
    return out;
  }

  private startupState(exe: string | undefined): ProcState {
    return { phase: 'startup', adds: 0, exe, needed: new Set(), exeNeededKnown: false, interpreterReported: false, known: new Set() };
  }

  private put(pid: number, st: ProcState): void {
    if (this.procs.size >= this.maxProcesses && !this.procs.has(pid)) this.procs.delete(this.procs.keys().next().value as number);
    this.procs.set(pid, st);
  }

  /** A `_dl_add_to_namespace_list` hit. `ldso` is the probed ld.so (for the interpreter record). */
  onAdd(rec: TraceRecord, ldso: string): LoadEvent[] {
    this.stats.adds++;
    const pid = rec.tgid ?? rec.tid;
    const st = this.state(pid);
    st.adds++;
    const lname = rec.fields.path ?? undefined;
    const req = rec.fields.req ?? undefined;
    const base = this.baseEvent(rec, pid);
    // What every object event of this hit carries: the name asked for, the file ld.so mapped.
    const obj = { ...base, ...(req !== undefined ? { requestedName: req } : {}), ...mappedOf(rec.fields.dev, rec.fields.ino) };
    if (lname === '' || lname === undefined) {
      // The main map: ld.so names it "" (the kernel mapped it, not ld.so).
      if (st.exe) this.learnNeeded(st, pid, st.exe, true);
      if (!this.opts.reportExecutable || st.phase !== 'startup' || !st.exe) return [];
      return [{ ...base, method: 'executable', path: st.exe }];
    }
    if (!lname.includes('/')) {
      // linux-vdso.so.1 / linux-gate.so.1: the kernel's vDSO, no file behind it.
      this.stats.vdso++;
      return [];
    }
    const out: LoadEvent[] = [];
    if (st.phase === 'startup') {
      if (!st.interpreterReported) out.push(...this.interpreter(rec, pid, st, ldso));
      const method: LoadMethod = this.isNeeded(st, req) ? 'needed' : 'preload';
      this.learnNeeded(st, pid, lname, false);
      this.stats.startupLoads++;
      out.push({ ...obj, method, path: lname });
      return out;
    }
    // A batch ends at RT_CONSISTENT (when _dl_debug_state is probed) or at the next public dlopen's
    // entry. Without either (libc's own dlopens — NSS, iconv — back to back), an object no object of
    // the batch names in DT_NEEDED starts the next batch; inside a public dlopen the batch is that
    // call's, whatever the names say.
    const opensBatch = st.batchFirst === undefined || (req !== undefined && !st.needed.has(req) && !this.dlopen.peek(rec.tid));
    if (opensBatch) {
      st.batchFirst = lname;
      st.needed.clear();
      this.learnNeeded(st, pid, lname, false);
      this.stats.dlopenBatches++;
      const ev: LoadEvent = { ...obj, method: 'dlopen', path: lname };
      const flags = this.dlopen.peek(rec.tid)?.flags;
      if (flags !== undefined) ev.flags = flags;
      out.push(ev);
    } else {
      this.learnNeeded(st, pid, lname, false);
      out.push({ ...obj, method: 'needed', path: lname, loadedBy: st.batchFirst });
    }
    return out;
  }

  /**
   * libc's start-up hook (`__libc_early_init` / `__libc_init_first`): every start-up object is
   * mapped, what comes next is a dlopen batch. Stands in for `_dl_debug_state`'s RT_CONSISTENT,
   * which costs two hits per dlopen and two per dlclose. `ldso` is the set's ld.so (the probe
   * itself sits in libc).
   */
  onLibcInit(rec: TraceRecord, ldso: string): LoadEvent[] {
    return this.onState({ ...rec, fields: { ...rec.fields, state: String(RT_CONSISTENT) } }, ldso);
  }

  /** A `_dl_debug_state` hit. */
  onState(rec: TraceRecord, ldso: string): LoadEvent[] {
    const pid = rec.tgid ?? rec.tid;
    const st = this.state(pid);
    const state = Number(rec.fields.state);
    const out = st.phase === 'startup' && !st.interpreterReported ? this.interpreter(rec, pid, st, ldso) : [];
    if (state === RT_CONSISTENT) {
      st.phase = 'running';
      st.batchFirst = undefined;
      st.needed.clear();
    }
    return out;
  }

  /** dlopen entry (libc). */
  onDlopenEntry(rec: TraceRecord): void {
    const st = this.procs.get(rec.tgid ?? rec.tid);
    if (st && st.phase === 'running') {
      st.batchFirst = undefined;
      st.needed.clear();
    }
    // The add count at entry rides with the call: a return that finds it unchanged loaded nothing.
    this.dlopen.onEntry(rec, this.procs.get(rec.tgid ?? rec.tid)?.adds ?? 0);
  }


  /**
   * dlopen return (libc). With the loader probe active, a successful dlopen's objects were already
   * reported by onAdd (or were loaded before: nothing new), so only failures produce an event.
   */
  onDlopenReturn(rec: TraceRecord, probe: string): LoadEvent | undefined {
    const call = this.dlopen.peek(rec.tid); // the call this return completes (onReturn pops it)
    const ev = this.dlopen.onReturn(rec, probe);
    if (!ev || ev.result === 'failed') return ev;
    if (this.mode === 'loader') {
      if (call && call.mark === (this.procs.get(ev.pid)?.adds ?? 0)) this.stats.dlopenAlreadyLoaded++;
      return undefined;
    }
    // Without the loader probe, a dlopen of an object the process already has is not a new load.
    if (ev.path !== undefined && !this.markKnown(ev.pid, ev.path)) {
      this.stats.dlopenAlreadyLoaded++;
      return undefined;
    }
    return ev;
  }

  /**
   * List mechanism, start-up: one slice of the main map's search list at RT_CONSISTENT. When every
   * slice of a new image's list is in, its objects are reported in search-list order (main program,
   * preloads, then DT_NEEDED breadth-first — the order ld.so mapped them).
   */
  onList(rec: TraceRecord, slice: { first: number; size: number }, ldso: string): LoadEvent[] {
    const pid = rec.tgid ?? rec.tid;
    const st = this.procs.get(pid) ?? (this.opts.execOf?.(pid) !== undefined ? this.state(pid) : undefined);
    if (!st || st.phase !== 'startup') return [];
    const n = Number(rec.fields.n);
    if (!Number.isFinite(n) || n <= 0) return [];
    st.parts ??= new Map();
    st.parts.set(slice.first, rec);
    const capacity = Math.min(n, this.opts.listCapacity ?? n);
    for (let first = 0; first < capacity; first += slice.size) if (!st.parts.has(first)) return [];
    if (n > capacity) this.stats.listTruncated++;
    const out: LoadEvent[] = [];
    // Slice 0 carries the hit's comm (the others leave it out: one fetch per hit is enough).
    const base = this.baseEvent(st.parts.get(0) ?? rec, pid);
    for (let i = 0; i < capacity; i++) {
      const part = st.parts.get(i - (i % slice.size))!;
      const p = part.fields[`p${i % slice.size}`] ?? undefined;
      const q = part.fields[`q${i % slice.size}`] ?? undefined;
      const mapped = mappedOf(undefined, part.fields[`i${i % slice.size}`]);
      if (i === 0) {
        if (st.exe) this.learnNeeded(st, pid, st.exe, true);
        if (this.opts.reportExecutable && st.exe) out.push({ ...base, method: 'executable', path: st.exe });
        continue;
      }
      if (!p || !p.includes('/')) continue;
      this.markKnown(pid, p);
      if (this.isLoader(p, ldso)) {
        out.push({ ...base, method: 'interpreter', path: p, ...(q !== undefined ? { requestedName: q } : {}), ...mapped });
        continue;
      }
      // Deep entries come without the requested name (list-probes.ts FULL_LIST_ENTRIES): what the
      // search path found is the DT_NEEDED name itself.
      const method: LoadMethod = this.isNeeded(st, q ?? path.basename(p)) ? 'needed' : 'preload';
      this.learnNeeded(st, pid, p, false);
      this.stats.startupLoads++;
      out.push({ ...base, method, path: p, ...(q !== undefined ? { requestedName: q } : {}), ...mapped });
    }
    st.parts = undefined;
    st.phase = 'running';
    st.interpreterReported = true;
    st.needed.clear();
    return out;
  }

  /**
   * List mechanism, dlopen: one slice of the new object's own search list (entry 0 is the object,
   * reported by the dlopen return; the rest are its dependencies). Dependencies the process did not
   * have yet are reported as `needed`, loaded by the dlopened object.
   */
  onDlopenList(rec: TraceRecord, slice: { first: number; size: number }): LoadEvent[] {
    const pid = rec.tgid ?? rec.tid;
    const n = Number(rec.fields.n);
    if (!Number.isFinite(n) || n <= 0) return [];
    const out: LoadEvent[] = [];
    const base = this.baseEvent(rec, pid);
    let owner: string | undefined;
    for (let k = 0; k < slice.size && slice.first + k < n; k++) {
      const i = slice.first + k;
      const p = rec.fields[`p${k}`] ?? undefined;
      const q = rec.fields[`q${k}`] ?? undefined;
      if (i === 0) continue;
      if (!p || !p.includes('/') || !this.markKnown(pid, p)) continue;
      owner ??= rec.fields.self ?? undefined;
      out.push({ ...base, method: 'needed', path: p, ...(q !== undefined ? { requestedName: q } : {}), ...(owner ? { loadedBy: owner } : {}), ...mappedOf(undefined, rec.fields[`i${k}`]) });
    }
    return out;
  }

  /** ld.so unmapped an object of `pid` (`_dl_unmap`): opening it again is a new load. */
  onUnmap(rec: TraceRecord): void {
    const pid = rec.tgid ?? rec.tid;
    const file = rec.fields.path;
    const st = this.procs.get(pid);
    if (!file || !st?.known) return;
    st.known.delete(this.canon(pid, file));
    this.stats.unmapped++;
  }

  /**
   * loader-lists mechanism, ld.so's `_dl_open` return (every dlopen, libc's own included): the
   * returned object when the process did not have it — a `dlopen`, with the flags of the public
   * dlopen in flight on that thread if any (that call's own return then finds it known) — and the
   * maps after it, which this dlopen added (`walk`: the slice form of walkRecord).
   */
  onOpen(rec: TraceRecord, walk: TraceRecord, size: number): LoadEvent[] {
    const pid = rec.tgid ?? rec.tid;
    const out: LoadEvent[] = [];
    // _dl_open returned: a public dlopen in flight that never returns after this is not incomplete.
    this.state(pid).adds++;
    const self = rec.fields.self ?? undefined;
    if (self && self.includes('/') && this.markKnown(pid, self)) {
      const call = this.dlopen.peek(rec.tid);
      // As the public dlopen's record names it: the argument when it could be read, else the name
      // ld.so recorded (l_libname).
      const req = call?.name ?? rec.fields.selfreq ?? undefined;
      this.stats.dlopenBatches++;
      out.push({
        ...this.baseEvent(rec, pid),
        method: 'dlopen',
        path: self,
        ...(req !== undefined ? { requestedName: req } : {}),
        ...(call?.flags !== undefined ? { flags: call.flags } : {}),
        ...mappedOf(undefined, rec.fields.selfino),
      });
    }
    if (size > 1) out.push(...this.onDlopenList(walk, { first: 0, size }));
    return out;
  }

  /**
   * A process whose loads before the probes existed were read from its memory (a loader met after
   * that process started): what it has is known, and when its start-up is over, what comes next is
   * a dlopen batch, not start-up.
   */
  adopt(pid: number, loaded: readonly string[], startupDone: boolean): void {
    const st = this.state(pid);
    st.known ??= new Set();
    for (const f of loaded) st.known.add(this.canon(pid, f));
    if (startupDone) {
      st.phase = 'running';
      st.interpreterReported = true;
      st.parts = undefined;
      st.needed.clear();
    }
  }

  private isLoader(p: string, ldso: string): boolean {
    const b = path.basename(p);
    return b === path.basename(ldso) || (this.opts.loaderNames ?? []).some((n) => path.basename(n) === b);
  }

  /** Records that `pid` has `file` (loaded outside the probes' view); false when already known. */
  noteKnown(pid: number, file: string): boolean {
    return this.markKnown(pid, file);
  }

  /** Adds `file` to what `pid` is known to have loaded; false when it was already known. */
  private markKnown(pid: number, file: string): boolean {
    const known = this.knownOf(pid);
    const key = this.canon(pid, file);
    if (known.has(key)) return false;
    known.add(key);
    return true;
  }

  /**
   * What `pid` is known to have. The first time: a forked child (no exec) starts with its parent's
   * objects — /proc/<child>/maps, read now, may already show what the child itself loaded since
   * (it is racing us) — anyone else with what /proc shows.
   */
  private knownOf(pid: number, depth = 0): Set<string> {
    const st = this.state(pid);
    if (st.known) return st.known;
    const parent = this.forkParent.get(pid);
    const inherited = parent !== undefined && parent !== pid && depth < 8 ? this.knownOf(parent, depth + 1) : undefined;
    if (inherited && inherited.size > 0) st.known = new Set(inherited);
    else {
      st.known = new Set();
      for (const f of this.opts.initiallyLoaded?.(pid) ?? []) st.known.add(this.canon(pid, f));
    }
    return st.known;
  }

  private canon(pid: number, file: string): string {
    return this.opts.canonical ? this.opts.canonical(pid, file) : file;
  }

  /** Processes with state. */
  get tracked(): number {
    return this.procs.size;
  }

  /** Sizes of the per-process and per-thread maps (the debug state view). */
  sizes(): Record<string, number> {
    return { procs: this.procs.size, forkParent: this.forkParent.size, dlopenThreads: this.dlopen.inFlight, dlopenProcesses: this.dlopen.processes };
  }

  private interpreter(rec: TraceRecord, pid: number, st: ProcState, ldso: string): LoadEvent[] {
    st.interpreterReported = true;
    // The probed path may reach another root from the host (/proc/<pid>/root/…); the record names
    // the loader as processes in that root do.
    const inRoot = this.opts.loaderNames?.find((n) => n.startsWith('/') && ldso.endsWith(n));
    return [{ ...this.baseEvent(rec, pid), method: 'interpreter', path: inRoot ?? ldso }];
  }

  private state(pid: number): ProcState {
    let st = this.procs.get(pid);
    if (!st) {
      const exe = this.opts.execOf?.(pid);
      // Exec seen: its start-up loads are ahead. Otherwise a process that pre-dates soload (or whose
      // exec we missed): only dlopen batches are ahead.
      st = exe !== undefined ? this.startupState(exe) : { phase: 'running', adds: 0, needed: new Set(), exeNeededKnown: false, interpreterReported: true };
      this.put(pid, st);
    }
    return st;
  }

  private isNeeded(st: ProcState, req: string | undefined): boolean {
    if (req === undefined) return true;
    if (st.needed.has(req)) return true;
    // Without the executable's DT_NEEDED list we cannot tell a bare-name preload from a dependency;
    // a name with a slash is never a DT_NEEDED entry in practice, a bare one almost always is.
    return !st.exeNeededKnown && !req.includes('/');
  }

  private learnNeeded(st: ProcState, pid: number, file: string, isExe: boolean): void {
    const needed = this.opts.neededOf(pid, file);
    if (needed) for (const n of needed) st.needed.add(n);
    if (isExe) st.exeNeededKnown = needed !== undefined;
  }

  private baseEvent(rec: TraceRecord, pid: number): Omit<LoadEvent, 'method'> {
    return {
      timestampNs: rec.timestampNs,
      pid,
      tid: rec.tid,
      comm: rec.fields.comm ?? rec.comm,
      result: 'ok',
      probe: rec.event,
    };
  }
}

