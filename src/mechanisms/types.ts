import type { LinkMapLayout } from '../plan/calibrate';
import type { SoloadConfig } from '../config/schema';
import type { ElfSymbolResolver } from '../elf';
import type { ProcReader } from '../host/proc-reader';
import type { LoadEvent, ProbeRole, ProbeSpec, TraceRecord } from '../types';

/**
 * One C library installation as the kernel sees it: the dynamic loader and the libraries that hold
 * `dlopen`, side by side in one directory (the host's `/usr/lib/x86_64-linux-gnu`, or the same
 * directory of a container's root). Uprobes fire per file, so each installation gets its own
 * capture mechanism.
 */
export interface LoaderSet {
  /** Directory holding the files (the set's identity). */
  dir: string;
  /** ld.so, when the set has one. */
  ldso?: string;
  /** Names processes know that ld.so by (PT_INTERP's, the canonical one in its root). */
  loaderNames?: string[];
  /** The files of the set that probes were planned on (ld.so, libc, libdl). */
  files: string[];
  /** Probes planned from the declarative probe list on these files, before any mechanism. */
  specs: ProbeSpec[];
}

/** What a mechanism may use while deciding and planning (never writes to the kernel). */
export interface MechanismContext {
  config: SoloadConfig;
  resolver: ElfSymbolResolver;
  proc: ProcReader;
  /**
   * `struct link_map` layout of an ld.so build, calibrated once per file and cached (see
   * plan/calibrate.ts); rejects when calibration fails.
   */
  calibrate(ldso: string): Promise<LinkMapLayout>;
  info(msg: string): void;
}

/** Whether a mechanism can capture a loader set, and why (or why not). */
export interface Applicability {
  applies: boolean;
  reason: string;
}

/** Options every handler gets from the agent. */
export interface HandlerOptions {
  reportExecutable: boolean;
  /** DT_NEEDED names of `file` as process `pid` sees it. */
  neededOf: (pid: number, file: string) => readonly string[] | undefined;
  /** Canonical path in `pid`'s view (to compare loader names with /proc's). */
  canonical: (pid: number, file: string) => string;
  /** Objects `pid` had mapped when soload first met it. */
  initiallyLoaded: (pid: number) => readonly string[];
  /** The file `pid` exec'd, when soload saw the exec (process facts, shared by all handlers). */
  execOf: (pid: number) => string | undefined;
  /** Start-up list entries the list probes carry (capture.listSlices × capture.listSliceSize). */
  listCapacity: number;
  /** A dlopen in flight longer than this (ms) is reported incomplete (state.dlopenMaxAgeMs). */
  dlopenMaxAgeMs?: number;
  /**
   * Entries from index `from` on of `pid`'s loader list, read from its memory now (a list longer
   * than the probes carry); empty when the process is gone (then counted as missed).
   */
  recoverList?: (pid: number, from: number) => LoadEvent[];
}

/** Counters a handler exposes (merged into soload's health numbers). */
export type HandlerStats = Record<string, number>;

/**
 * The record side of a mechanism for one loader set: it owns the per-process state of the
 * processes that use that loader, so two loaders with different mechanisms never share state.
 */
export interface MechanismHandler {
  /** One record of a probe of this set (`spec` is the probe it came from). */
  handle(role: ProbeRole, rec: TraceRecord, spec: ProbeSpec): LoadEvent[];
  /** A process image was replaced (every handler hears every exec and exit). */
  onExec(pid: number): void;
  /** The process is gone; returns loads it left unfinished (dlopen calls that never returned). */
  onExit(pid: number): LoadEvent[];
  /** Thread `tid` is gone (found by the liveness sweep); returns the loads it left unfinished. */
  onThreadGone(tid: number): LoadEvent[];
  /** `parent` forked `child` (or started a thread). */
  onFork?(parent: number, child: number): void;
  /**
   * `pid`'s loads up to now were recovered from its memory (its loader got probes after it
   * started): `loaded` are its objects' names, `startupDone` whether its start-up was over.
   */
  adopt?(pid: number, loaded: readonly string[], startupDone: boolean): void;
  /** Periodic housekeeping (trace-clock now); returns loads given up on (dlopen calls too old). */
  expire(nowNs: bigint): LoadEvent[];
  stats(): HandlerStats;
  /** Sizes of its per-process and per-thread maps (the debug state view). */
  sizes(): Record<string, number>;
}

/**
 * A way of capturing loads for one loader set. Adding one means writing a module that implements
 * this and one line in `mechanisms/index.ts`; `soload run`, `check` and `probes` all choose through
 * the same selector (`plan/select.ts`), the first registered mechanism that applies.
 */
export interface CaptureMechanism {
  /** Stable name (`soload check`, logs, the README's table). */
  readonly name: string;
  /** Can it capture this set? Cheap look-ups; may calibrate (cached). */
  applies(set: LoaderSet, ctx: MechanismContext): Promise<Applicability>;
  /** The probes it installs for the set (`set.specs` reshaped: kept, extended, replaced). */
  plan(set: LoaderSet, ctx: MechanismContext): Promise<ProbeSpec[]>;
  /** One paragraph for `soload check`: what it sees and what it misses on this set. */
  describe(set: LoaderSet, ctx: MechanismContext): string;
  /** A fresh handler for the set's records. */
  createHandler(set: LoaderSet, opts: HandlerOptions): MechanismHandler;
}
