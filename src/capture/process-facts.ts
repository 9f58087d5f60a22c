import { PROBE_ROLES, type ProbeRole, type TraceRecord } from '../types';
import { CwdTracker } from './cwd';
import { MemfdTracker, ViewTracker } from './views';

/** Roles whose records are facts about processes rather than loads. */
export const FACT_ROLES: ReadonlySet<ProbeRole> = new Set(PROBE_ROLES.filter((r) => /^(chdir|chroot|view|memfd)\./.test(r)));

/**
 * What process facts need from the host while the process may still be alive (implemented by the
 * agent with the /proc reader and the view registry; tests pass stubs).
 */
export interface FactsHost {
  /** Reads the process's view now (pinning it); `moved`: it is known to have changed views. */
  identify(pid: number, moved?: boolean): void;
  /** A chroot into `dir` (absolute, in the process's view before the call) succeeded. */
  chroot(pid: number, dir: string): void;
  /** Working directory from /proc, for a parent soload has no history of. */
  cwdOf(pid: number): string | undefined;
}

/**
 * Facts about processes that load records need after the process is gone, followed from kernel
 * events (sched fork/exec/exit tracepoints and libc probes on chdir, chroot, unshare, setns,
 * memfd_create): working directory, view (root + mount namespace), memfds, what each exec'd.
 * Shared by every capture mechanism; every map is bounded.
 */
export class ProcessFacts {
  readonly cwd = new CwdTracker();
  readonly views = new ViewTracker();
  readonly memfds = new MemfdTracker();
  private readonly execs = new Map<number, string>();
  private readonly host: FactsHost;
  private readonly maxExecs: number;

  constructor(host: FactsHost, maxEntries = 65536) {
    this.host = host;
    this.maxExecs = maxEntries;
  }

  /** The file `pid` exec'd last, when soload saw the exec. */
  execOf(pid: number): string | undefined {
    return this.execs.get(pid);
  }

  onFork(parent: number, child: number): void {
    if (this.cwd.get(parent) === undefined) {
      const dir = this.host.cwdOf(parent);
      if (dir) this.cwd.seed(parent, dir);
    }
    this.cwd.onFork(parent, child);
    if (this.views.get(parent) === undefined) this.host.identify(parent); // older than soload: learn it while it lives
    this.views.onFork(parent, child);
    this.memfds.onFork(parent, child);
  }

  onExec(pid: number, filename: string | undefined): void {
    if (this.execs.size >= this.maxExecs && !this.execs.has(pid)) this.execs.delete(this.execs.keys().next().value as number);
    this.execs.set(pid, filename ?? '');
    // A runtime may have moved it into a container (setns/pivot_root in a static binary soload
    // has no probe in): check the view while the new image lives; a gone process keeps its parent's.
    this.host.identify(pid);
  }

  onExit(pid: number): void {
    this.execs.delete(pid);
    this.cwd.onExit(pid);
    this.views.onExit(pid);
    this.memfds.onExit(pid);
  }

  /** Thread `tid` is gone while its process may live: the calls it had in flight never return. */
  onThreadGone(tid: number): void {
    this.cwd.onThreadGone(tid);
    this.views.onThreadGone(tid);
    this.memfds.onThreadGone(tid);
  }

  /** One record of a fact probe. */
  handle(role: ProbeRole, rec: TraceRecord): void {
    const pid = rec.tgid ?? rec.tid;
    switch (role) {
      case 'chdir.entry':
        this.cwd.onChdirEntry(pid, rec.tid, rec.fields.path ?? null);
        return;
      case 'chdir.return':
        this.cwd.onChdirReturn(rec.tid, Number(rec.fields.rc));
        return;
      case 'chroot.entry':
        this.views.onChrootEntry(pid, rec.tid, rec.fields.path ?? null);
        return;
      case 'chroot.return': {
        const rc = Number(rec.fields.rc);
        const done = this.views.onChrootReturn(rec.tid, rc);
        // Already in a later look at /proc, or the directory string was unreadable (fault).
        if (this.views.observedAfter(pid, rec.timestampNs)) return;
        if (!done) {
          if (rc === 0) this.host.identify(pid, true);
          return;
        }
        const dir = this.cwd.resolve(done.pid, done.path) ?? (done.path.startsWith('/') ? done.path : undefined);
        if (dir !== undefined) this.host.chroot(done.pid, dir);
        else this.host.identify(done.pid, true);
        return;
      }
      case 'view.entry':
        this.views.onNamespaceEntry(rec.tid, Number(rec.fields.flags));
        return;
      case 'view.return':
        // unshare/setns into another mount namespace succeeded: pin it while the process lives.
        if (this.views.onNamespaceReturn(rec.tid, Number(rec.fields.rc)) && !this.views.observedAfter(pid, rec.timestampNs)) this.host.identify(pid, true);
        return;
      case 'memfd.entry':
        this.memfds.onEntry(rec.tid, rec.fields.name ?? null);
        return;
      case 'memfd.return':
        this.memfds.onReturn(pid, rec.tid, Number(rec.fields.fd));
        return;
      default:
        return;
    }
  }

  stats(): Record<string, number> {
    return { cwd: this.cwd.size, views: this.views.size, memfds: this.memfds.size, execs: this.execs.size };
  }

  /** Sizes of every map it holds (the debug state view). */
  sizes(): Record<string, number> {
    return { execs: this.execs.size, cwd: this.cwd.size, pendingChdir: this.cwd.pending, ...this.views.sizes(), memfds: this.memfds.size, pendingMemfd: this.memfds.inFlight };
  }
}
