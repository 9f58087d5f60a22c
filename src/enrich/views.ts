import { HOST_VIEW } from '../capture/views';
import { resolveInView } from './canonical';
import type { ProcReader } from '../host/proc-reader';

/** A place paths are resolved in: a root directory reached through a host path prefix. */
export interface View {
  id: string;
  /** Host path of the view's root ('' = soload's own `/`; `/proc/self/fd/N` = a pinned root). */
  prefix: string;
  /** Mount namespace + root identity (see ProcReader.viewIdentity), when known. */
  identity?: string;
  /**
   * Plain host directory of the root, when there is one (a chroot below the host's root): then a
   * file's host path is this + its path in the view. Undefined for other mount namespaces.
   */
  hostDir?: string;
  /** Descriptors that keep the view reachable (closed on release). */
  fds: number[];
  /** View this one was derived from (a chroot inside it). */
  base?: string;
  /**
   * The process moved (chroot/unshare/setns) but was gone before soload could look: paths are
   * resolved in `base` as the best guess, and records say the name may not be the kernel's.
   */
  lost?: boolean;
}

/**
 * The views soload resolves paths in, with the descriptors that keep them alive: the host's view,
 * one per other mount namespace/root a process was seen in (pinned by fds while it was alive, kept
 * until no tracked process uses it — a mount namespace whose last process exited stays readable
 * while soload holds its fd), and chroots derived from either. Only this class and ProcReader touch
 * the system for it.
 */
export class ViewRegistry {
  private readonly proc: ProcReader;
  private readonly views = new Map<string, View>();
  private readonly byIdentity = new Map<string, string>();
  private seq = 0;
  readonly stats = { pinned: 0, released: 0, pinFailed: 0 };

  constructor(proc: ProcReader) {
    this.proc = proc;
    const own = proc.viewIdentity('self');
    const init = proc.viewIdentity(1);
    let host: View = { id: HOST_VIEW, prefix: '', identity: own ?? init, hostDir: '', fds: [] };
    if (own !== undefined && init !== undefined && own !== init) {
      // soload runs in a container of its own (a DaemonSet with hostPID): the host is pid 1's view.
      const pin = proc.pinView(1);
      if (pin) host = { id: HOST_VIEW, prefix: pin.prefix, identity: pin.identity, hostDir: '', fds: pin.fds };
    }
    this.views.set(HOST_VIEW, host);
    if (host.identity) this.byIdentity.set(host.identity, HOST_VIEW);
    if (own && own !== host.identity) this.byIdentity.set(own, HOST_VIEW);
  }

  get(id: string): View | undefined {
    return this.views.get(id);
  }

  get host(): View {
    return this.views.get(HOST_VIEW)!;
  }

  /**
   * The view `pid` is in right now, pinned if it is new; undefined when the process is gone.
   * Costs two /proc reads when the view is already known.
   */
  identify(pid: number): string | undefined {
    const identity = this.proc.viewIdentity(pid);
    if (identity === undefined) return undefined;
    const known = this.byIdentity.get(identity);
    if (known !== undefined && this.views.has(known)) return known;
    const pin = this.proc.pinView(pid);
    if (!pin) {
      this.stats.pinFailed++;
      return undefined;
    }
    const id = `ns${++this.seq}`;
    this.views.set(id, { id, prefix: pin.prefix, identity: pin.identity, fds: pin.fds });
    this.byIdentity.set(pin.identity, id);
    this.stats.pinned++;
    return id;
  }

  /**
   * The view a successful `chroot(dir)` puts a process of view `base` in. `dir` is absolute in the
   * base view (the caller made it absolute with the process's cwd). Needs no /proc: a process that
   * chroots, loads and exits in a millisecond is still resolved in its chroot.
   */
  chroot(baseId: string, dir: string): string {
    const base = this.views.get(baseId) ?? this.host;
    const canonical = resolveInView(base.prefix, dir, this.proc).path;
    if (canonical === '/') return base.id;
    const id = `${base.id}>${canonical}`;
    if (!this.views.has(id)) {
      this.views.set(id, {
        id,
        prefix: base.prefix + canonical,
        ...(base.hostDir !== undefined ? { hostDir: base.hostDir + canonical } : {}),
        fds: [],
        base: base.id,
      });
    }
    return id;
  }

  /** The stand-in for a view soload could not see: resolution as in `baseId`, marked as a guess. */
  lost(baseId: string): string {
    const base = this.views.get(baseId) ?? this.host;
    const id = `${base.id}?lost`;
    if (!this.views.has(id)) this.views.set(id, { id, prefix: base.prefix, ...(base.hostDir !== undefined ? { hostDir: base.hostDir } : {}), fds: [], base: base.id, lost: true });
    return id;
  }

  /**
   * Releases views no tracked process uses (`inUse` from the ViewTracker), except the host's and
   * bases of views still in use. Returns the released ids (their cached resolutions go too).
   */
  sweep(inUse: ReadonlyMap<string, number>): string[] {
    const keep = new Set<string>([HOST_VIEW]);
    for (const id of inUse.keys()) {
      for (let v = this.views.get(id); v; v = v.base ? this.views.get(v.base) : undefined) keep.add(v.id);
    }
    const released: string[] = [];
    for (const [id, v] of this.views) {
      if (keep.has(id)) continue;
      this.proc.closeFds(v.fds);
      this.views.delete(id);
      if (v.identity && this.byIdentity.get(v.identity) === id) this.byIdentity.delete(v.identity);
      released.push(id);
      this.stats.released++;
    }
    return released;
  }

  /** Views held now (the host's included). */
  get size(): number {
    return this.views.size;
  }

  /** Closes every descriptor (shutdown). */
  close(): void {
    for (const v of this.views.values()) this.proc.closeFds(v.fds);
    this.views.clear();
    this.byIdentity.clear();
  }
}
