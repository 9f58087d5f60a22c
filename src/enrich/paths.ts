import { HOST_VIEW, type MemfdTracker, type ViewTracker } from '../capture/views';
import type { LoadEvent } from '../types';
import { parseFdPath, parseFdTarget, PathCache, type PathStat, type Resolution } from './canonical';
import type { ProcReader } from '../host/proc-reader';
import type { View, ViewRegistry } from './views';

/** Options of {@link LoadPathResolver}. */
export interface LoadPathResolverOptions {
  proc: ProcReader;
  views: ViewRegistry;
  viewOf: ViewTracker;
  memfds: MemfdTracker;
  /** Trace-clock ns → wall-clock ns (to compare a file's ctime with the load's time). */
  toWallNs: (traceNs: bigint) => bigint;
  /** Trace-clock now: stamps views read from /proc so later-processed events are not applied twice. */
  nowTraceNs?: () => bigint;
  cache?: PathCache;
  now?: () => number;
}

/** Counters of path resolution (self-metrics, bench). */
export interface PathStats {
  resolved: number;
  changed: number;
  deleted: number;
  memfd: number;
  fdUnresolved: number;
  replaced: number;
  /** Processes whose view could not be learnt (gone before soload saw them): the host's was used. */
  viewFallback: number;
  /** Records of processes that moved to a view soload could not pin in time (see View.lost). */
  viewLost: number;
  /** Objects named in the view a process had before /proc showed it moved (mapped before the move). */
  previousView: number;
}

/**
 * Turns the loader's string for an object into the path the kernel prints in that process's
 * `/proc/<pid>/maps` (see canonical.ts), in the process's own view, without needing the process:
 * views are followed from fork/exec/chroot/unshare/setns events and pinned while alive; resolutions
 * are cached per (view, path). Adds the loaded file's facts (dev, inode, size) from the resolved
 * file, unless that file changed after the load (an upgrade replaced it): then it says so instead.
 */
export class LoadPathResolver {
  readonly stats: PathStats = { resolved: 0, changed: 0, deleted: 0, memfd: 0, fdUnresolved: 0, replaced: 0, viewFallback: 0, viewLost: 0, previousView: 0 };
  readonly cache: PathCache;
  private readonly o: LoadPathResolverOptions;
  private readonly now: () => number;

  constructor(opts: LoadPathResolverOptions) {
    this.o = opts;
    this.cache = opts.cache ?? new PathCache();
    this.now = opts.now ?? Date.now;
  }

  /** The view `pid` resolves paths in (learnt from /proc on first sight when soload has no history of it). */
  viewOf(pid: number): string {
    const known = this.o.viewOf.get(pid);
    if (known !== undefined) return known;
    const found = this.identify(pid);
    if (found !== undefined) return found;
    // Gone before soload saw it: the host's view, remembered so its next records cost a lookup,
    // not another failed /proc read each.
    this.stats.viewFallback++;
    this.o.viewOf.set(pid, HOST_VIEW);
    return HOST_VIEW;
  }

  /** The view `pid` resolves in, as a View (the host's when the id is unknown). */
  private viewFor(pid: number): View {
    return this.o.views.get(this.viewOf(pid)) ?? this.o.views.host;
  }

  /** True when `pid` resolves paths in a chroot below the host's root (a plain host directory). */
  isChrootView(pid: number): boolean {
    return !!this.viewFor(pid).hostDir;
  }

  /** The view `pid` resolves in: its id and the host prefix of its root. */
  viewRoot(pid: number): { id: string; prefix: string } {
    const v = this.viewFor(pid);
    return { id: v.id, prefix: v.prefix };
  }

  /** Canonical form of `file` (absolute) in a view given by id and prefix (cached like every resolution). */
  canonicalIn(viewId: string, prefix: string, file: string): string {
    return this.cache.resolve(viewId, prefix, file, this.o.proc, this.now()).path;
  }

  /** Host path at which `file` (absolute, as `pid` sees it) can be opened by soload. */
  hostPathOf(pid: number, file: string): string {
    return this.viewFor(pid).prefix + file;
  }

  /**
   * Reads `pid`'s view from /proc now (pinning it if new) and records when; undefined when gone.
   * With `moved`, the process is known to have changed its view (chroot/unshare/setns): if it is
   * gone, its view becomes a marked guess (View.lost) instead of staying silently the old one.
   */
  identify(pid: number, moved = false): string | undefined {
    const observedAt = this.o.nowTraceNs?.();
    const found = this.o.views.identify(pid);
    if (found !== undefined) this.o.viewOf.set(pid, found, observedAt);
    else if (moved) this.o.viewOf.set(pid, this.o.views.lost(this.o.viewOf.get(pid) ?? HOST_VIEW));
    return found;
  }

  /** Canonical form of `file` in `pid`'s view (for comparisons; `file` itself when not absolute). */
  canonical(pid: number, file: string): string {
    if (!file.startsWith('/')) return file;
    const view = this.viewFor(pid);
    return this.cache.resolve(view.id, view.prefix, file, this.o.proc, this.now()).path;
  }

  /** The event with `path` canonical and the loader's own string kept when it differs. */
  resolve(ev: LoadEvent): LoadEvent {
    let out = ev;
    if (ev.path !== undefined && ev.path.startsWith('/')) out = this.resolvePath(ev, ev.path);
    if (out.loadedBy !== undefined && out.loadedBy.startsWith('/')) {
      const by = this.canonical(ev.pid, out.loadedBy);
      if (by !== out.loadedBy) out = { ...out, loadedBy: by };
    }
    return out;
  }

  private resolvePath(ev: LoadEvent, loaderPath: string): LoadEvent {
    this.stats.resolved++;
    const fd = loaderPath.includes('/fd/') ? parseFdPath(loaderPath) : undefined;
    if (fd) return this.resolveFd(ev, loaderPath, fd.owner === 'self' ? ev.pid : fd.owner, fd.fd);
    const { r, view } = this.locate(ev, loaderPath);
    const out: LoadEvent = { ...ev, path: r.path, view: { id: view.id, prefix: view.prefix } };
    const original = ev.loaderPath ?? loaderPath;
    if (r.path !== original) {
      out.loaderPath = original;
      this.stats.changed++;
    } else delete out.loaderPath;
    const isMapped = ev.mapped ? sameFile(r.stat, ev.mapped) && !this.changedAfterLoad(r.stat, ev) : r.exists;
    if (view.lost) {
      // Resolved in the view the process came from: a missing file says nothing about deletion.
      out.viewLost = true;
      this.stats.viewLost++;
      if (!isMapped) {
        if (ev.mapped) out.file = { ...ev.mapped };
        return out;
      }
    }
    if (view.hostDir) out.hostPath = view.hostDir + r.path;
    if (!ev.mapped) {
      if (!r.exists) this.markDeleted(out);
      else if (r.stat) this.attachFile(out, r.stat);
      return out;
    }
    // ld.so told which file it mapped: the name is right iff it still leads to that file. If not,
    // the mapped file was unlinked (the kernel prints " (deleted)"), perhaps replaced by another.
    if (isMapped) {
      out.file = { dev: r.stat!.dev, ino: r.stat!.ino, size: r.stat!.size };
      return out;
    }
    this.markDeleted(out);
    if (r.exists) {
      out.replaced = true;
      this.stats.replaced++;
    }
    out.file = { ...ev.mapped };
    return out;
  }

  /**
   * Resolves `loaderPath` in the process's view (cached). When ld.so's inode disagrees, walks again
   * (the cached answer may be about a file that took the name since), then tries the view the
   * process had before /proc showed it moved (an object mapped before the move).
   */
  private locate(ev: LoadEvent, loaderPath: string): { r: Resolution; view: View } {
    const view = this.viewFor(ev.pid);
    const now = this.now();
    const r = this.cache.resolve(view.id, view.prefix, loaderPath, this.o.proc, now);
    if (!ev.mapped) return { r, view };
    // A cached answer that agrees with ld.so's inode may predate an unlink (a library deleted
    // while mapped, its name re-created, the inode reused): one lstat of the resolved file says
    // whether it still is that file; only then is the cache believed.
    if (sameFile(r.stat, ev.mapped)) {
      const current = this.o.proc.lstat(view.prefix + r.path);
      if (sameFile(current, ev.mapped) && !this.changedAfterLoad(current, ev)) return { r, view };
    }
    const again = this.cache.resolve(view.id, view.prefix, loaderPath, this.o.proc, now, true);
    if (sameFile(again.stat, ev.mapped)) return { r: again, view };
    const prev = this.o.views.get(this.o.viewOf.previousOf(ev.pid) ?? '');
    if (prev) {
      const rp = this.cache.resolve(prev.id, prev.prefix, loaderPath, this.o.proc, now, true);
      if (sameFile(rp.stat, ev.mapped)) {
        this.stats.previousView++;
        return { r: rp, view: prev };
      }
    }
    return { r: again, view };
  }

  private markDeleted(out: LoadEvent): void {
    out.deleted = true;
    this.stats.deleted++;
  }

  /**
   * ld.so opened `/proc/self/fd/N` (a memfd or an inherited descriptor): the kernel names the file
   * behind the descriptor. Asked from the process while it lives; otherwise from the memfd_create
   * soload saw. Never reported as `/proc/self/fd/N`.
   */
  private resolveFd(ev: LoadEvent, loaderPath: string, owner: number, fd: number): LoadEvent {
    const live = this.o.proc.fdTarget(owner, fd);
    let target = live !== undefined && live.startsWith('/') ? parseFdTarget(live) : undefined;
    if (!target) {
      const name = this.o.memfds.nameOf(owner, fd);
      if (name !== undefined) target = { path: `/memfd:${name}`, deleted: true, memfd: true };
    }
    if (!target) {
      this.stats.fdUnresolved++;
      const unresolved = [...new Set([...(ev.unresolved ?? []), 'file.path'])];
      const { path: _dropped, ...rest } = ev;
      return { ...rest, loaderPath, unresolved };
    }
    const out: LoadEvent = { ...ev, path: target.path, loaderPath };
    if (target.memfd) {
      out.memfd = true;
      this.stats.memfd++;
    }
    if (target.deleted) {
      this.markDeleted(out);
      if (ev.mapped) out.file = { ...ev.mapped };
    } else {
      // The link names the file in the owner's view: stat it there.
      const st = this.o.proc.lstat(this.hostPathOf(owner, target.path));
      if (st) this.attachFile(out, st);
    }
    this.stats.changed++;
    return out;
  }

  /**
   * The file's status changed after the load: for the same (device, inode) as ld.so mapped, the
   * inode was freed and reused by a file created since (the mapped one was unlinked).
   */
  private changedAfterLoad(st: PathStat | undefined, ev: LoadEvent): boolean {
    return st !== undefined && !ev.snapshot && st.ctimeNs > this.o.toWallNs(ev.timestampNs);
  }

  private attachFile(out: LoadEvent, st: PathStat): void {
    // ctime moves when a file is replaced by rename (dpkg, rpm) or rewritten: a file changed after
    // the load is not the one the process mapped, so its facts must not be reported as that one's.
    if (!out.snapshot && st.ctimeNs > this.o.toWallNs(out.timestampNs)) {
      out.replaced = true;
      this.stats.replaced++;
      return;
    }
    out.file = { dev: st.dev, ino: st.ino, size: st.size };
  }

  /** Forgets cached resolutions of released views. */
  dropViews(ids: readonly string[]): void {
    for (const id of ids) this.cache.dropView(id);
  }
}

/** Whether an lstat result is the file ld.so recorded (inode, and device when it was read). */
function sameFile(st: PathStat | undefined, mapped: { dev?: number; ino: number }): boolean {
  return st !== undefined && st.ino === mapped.ino && (mapped.dev === undefined || st.dev === mapped.dev);
}
