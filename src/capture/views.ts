/**
 * Per-process facts that path resolution needs after the process is gone, followed from kernel
 * events the way {@link CwdTracker} follows working directories (pure, bounded):
 * - which *view* (mount namespace + root directory) each process resolves paths in: inherited at
 *   fork, changed by chroot/unshare/setns (libc probes) or found different at exec;
 * - which memfds each process created (`memfd_create` name → fd), because ld.so names a memfd it
 *   was handed as `/proc/self/fd/N` while the kernel prints `/memfd:NAME (deleted)`.
 */

/** Id of the view every process starts in unless told otherwise: the host's root. */
export const HOST_VIEW = 'host';

/** unshare(2)/setns(2) flag for a new mount namespace (<sched.h>). */
export const CLONE_NEWNS = 0x20000;

/** pid → view id, with fork inheritance. */
export class ViewTracker {
  private readonly byPid = new Map<number, string>();
  private readonly observed = new Map<number, bigint>();
  private readonly previous = new Map<number, string>();
  private readonly max: number;

  constructor(maxEntries = 65536) {
    this.max = maxEntries;
  }

  /** The view of `pid`, undefined when soload never learnt it (a process older than soload). */
  get(pid: number): string | undefined {
    return this.byPid.get(pid);
  }

  /**
   * Sets the view of `pid`. `observedAtNs` (trace clock) is when it was read from /proc: /proc shows
   * the process as it is *now*, which may already include a chroot/unshare whose record soload has
   * not processed yet (see {@link observedAfter}).
   */
  set(pid: number, view: string, observedAtNs?: bigint): void {
    if (this.byPid.size >= this.max && !this.byPid.has(pid)) {
      const old = this.byPid.keys().next().value as number;
      this.byPid.delete(old);
      this.observed.delete(old);
      this.previous.delete(old);
    }
    const before = this.byPid.get(pid);
    this.byPid.set(pid, view);
    if (observedAtNs !== undefined) {
      this.observed.set(pid, observedAtNs);
      // /proc may be ahead of the records (a chroot soload has not processed yet): keep the view the
      // process had, so objects it mapped before the move can still be named where they were.
      if (before !== undefined && before !== view) this.previous.set(pid, before);
    } else {
      this.observed.delete(pid);
      this.previous.delete(pid);
    }
  }

  /** The view `pid` had before /proc showed it in another one (see {@link set}). */
  previousOf(pid: number): string | undefined {
    return this.previous.get(pid);
  }

  /** True when the view of `pid` was read from /proc after `ns`: an event at `ns` is already in it. */
  observedAfter(pid: number, ns: bigint): boolean {
    const at = this.observed.get(pid);
    return at !== undefined && at > ns;
  }

  /** A child (process or thread) starts in its parent's view. */
  onFork(parent: number, child: number): void {
    const v = this.byPid.get(parent);
    if (v !== undefined) this.set(child, v);
  }

  onExit(pid: number): void {
    this.byPid.delete(pid);
    this.observed.delete(pid);
    this.previous.delete(pid);
    this.onThreadGone(pid);
  }

  /** Thread `tid` is gone: a chroot/unshare/setns it had in flight never returns. */
  onThreadGone(tid: number): void {
    this.pendingChroot.delete(tid);
    this.pendingNs.delete(tid);
  }

  /** Sizes of its maps (the debug state view). */
  sizes(): Record<string, number> {
    return { views: this.byPid.size, viewObserved: this.observed.size, viewPrevious: this.previous.size, pendingChroot: this.pendingChroot.size, pendingNs: this.pendingNs.size };
  }

  private readonly pendingChroot = new Map<number, { pid: number; path: string }>();

  onChrootEntry(pid: number, tid: number, dir: string | null): void {
    if (dir) this.pendingChroot.set(tid, { pid, path: dir });
    if (this.pendingChroot.size > this.max) this.pendingChroot.delete(this.pendingChroot.keys().next().value as number);
  }

  /** chroot returned `rc`: on success, the process and the directory it now resolves `/` at. */
  onChrootReturn(tid: number, rc: number): { pid: number; path: string } | undefined {
    const p = this.pendingChroot.get(tid);
    this.pendingChroot.delete(tid);
    return p && rc === 0 ? p : undefined;
  }

  private readonly pendingNs = new Map<number, number>();

  /** unshare(flags) / setns(fd, nstype) entry. */
  onNamespaceEntry(tid: number, flags: number): void {
    this.pendingNs.set(tid, flags);
    if (this.pendingNs.size > this.max) this.pendingNs.delete(this.pendingNs.keys().next().value as number);
  }

  /**
   * unshare/setns returned `rc`: true when it may have changed the mount namespace (CLONE_NEWNS in
   * the flags, or setns with nstype 0 = any type, or no entry seen).
   */
  onNamespaceReturn(tid: number, rc: number): boolean {
    const flags = this.pendingNs.get(tid);
    this.pendingNs.delete(tid);
    if (rc !== 0) return false;
    return flags === undefined || flags === 0 || (flags & CLONE_NEWNS) !== 0;
  }

  /** How many processes use each view (for the sweep that releases unused ones). */
  inUse(): Map<string, number> {
    const out = new Map<string, number>();
    for (const v of this.byPid.values()) out.set(v, (out.get(v) ?? 0) + 1);
    return out;
  }

  get size(): number {
    return this.byPid.size;
  }
}

/** pid → fd → memfd name, from `memfd_create` entry/return probes. */
export class MemfdTracker {
  private readonly byPid = new Map<number, Map<number, string>>();
  private readonly pending = new Map<number, string>();
  private readonly maxPids: number;
  private readonly maxPerPid: number;

  constructor(maxPids = 16384, maxPerPid = 256) {
    this.maxPids = maxPids;
    this.maxPerPid = maxPerPid;
  }

  onEntry(tid: number, name: string | null): void {
    if (name !== null) this.pending.set(tid, name);
    if (this.pending.size > this.maxPids) this.pending.delete(this.pending.keys().next().value as number);
  }

  /** memfd_create returned `fd` in thread `tid` of process `pid`. */
  onReturn(pid: number, tid: number, fd: number): void {
    const name = this.pending.get(tid);
    this.pending.delete(tid);
    if (name === undefined || !Number.isInteger(fd) || fd < 0) return;
    let fds = this.byPid.get(pid);
    if (!fds) {
      if (this.byPid.size >= this.maxPids) this.byPid.delete(this.byPid.keys().next().value as number);
      this.byPid.set(pid, (fds = new Map()));
    }
    if (fds.size >= this.maxPerPid && !fds.has(fd)) fds.delete(fds.keys().next().value as number);
    fds.set(fd, name);
  }

  /** The memfd name behind `fd` of `pid`, when it was created by a memfd_create soload saw. */
  nameOf(pid: number, fd: number): string | undefined {
    return this.byPid.get(pid)?.get(fd);
  }

  /** Descriptors survive fork: the child has the same memfds at the same numbers. */
  onFork(parent: number, child: number): void {
    const fds = this.byPid.get(parent);
    if (!fds || child === parent) return;
    if (this.byPid.size >= this.maxPids && !this.byPid.has(child)) this.byPid.delete(this.byPid.keys().next().value as number);
    this.byPid.set(child, new Map(fds));
  }

  onExit(pid: number): void {
    this.byPid.delete(pid);
    this.pending.delete(pid);
  }

  /** Thread `tid` is gone: a memfd_create it had in flight never returns. */
  onThreadGone(tid: number): void {
    this.pending.delete(tid);
  }

  /** memfd_create calls in flight (the debug state view). */
  get inFlight(): number {
    return this.pending.size;
  }

  get size(): number {
    return this.byPid.size;
  }
}
