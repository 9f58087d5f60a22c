import path from 'node:path';

/**
 * Follows each process's working directory from kernel events, so a relative name the loader kept
 * (`dlopen("./plugins/x.so")` leaves l_name relative) becomes the absolute path the process meant
 * even after the process is gone. Inputs: fork (inherit), libc chdir entry/return (change), exec
 * (keeps cwd), exit (forget); a process first met alive is seeded from /proc by the caller. Pure.
 */
export class CwdTracker {
  private readonly cwd = new Map<number, string>();
  private readonly pendingChdir = new Map<number, { pid: number; path: string }>();
  private readonly max: number;

  constructor(maxEntries = 65536) {
    this.max = maxEntries;
  }

  /** Known cwd of `pid`. */
  get(pid: number): string | undefined {
    return this.cwd.get(pid);
  }

  /** Records what /proc said about a live process. */
  seed(pid: number, dir: string): void {
    this.set(pid, dir);
  }

  /** Child (process or thread) starts in its parent's directory. */
  onFork(parent: number, child: number): void {
    const dir = this.cwd.get(parent);
    if (dir !== undefined) this.set(child, dir);
  }

  onChdirEntry(pid: number, tid: number, dir: string | null): void {
    if (!dir) return;
    if (this.pendingChdir.size >= this.max && !this.pendingChdir.has(tid)) this.pendingChdir.delete(this.pendingChdir.keys().next().value as number);
    this.pendingChdir.set(tid, { pid, path: dir });
  }

  /** chdir returned `rc`: on success the directory changes (relative names resolve against the old one). */
  onChdirReturn(tid: number, rc: number): void {
    const p = this.pendingChdir.get(tid);
    this.pendingChdir.delete(tid);
    if (!p || rc !== 0) return;
    if (path.isAbsolute(p.path)) this.set(p.pid, path.normalize(p.path));
    else {
      const base = this.cwd.get(p.pid);
      if (base !== undefined) this.set(p.pid, path.resolve(base, p.path));
      else this.cwd.delete(p.pid);
    }
  }

  onExit(pid: number): void {
    this.cwd.delete(pid);
    this.pendingChdir.delete(pid);
  }

  /** Thread `tid` is gone: a chdir it had in flight never returns. */
  onThreadGone(tid: number): void {
    this.pendingChdir.delete(tid);
  }

  /** chdir calls in flight (the debug state view). */
  get pending(): number {
    return this.pendingChdir.size;
  }

  /** `file` made absolute against `pid`'s directory, or undefined when that is unknown. */
  resolve(pid: number, file: string): string | undefined {
    if (path.isAbsolute(file)) return file;
    const base = this.cwd.get(pid);
    return base === undefined ? undefined : path.resolve(base, file);
  }

  get size(): number {
    return this.cwd.size;
  }

  private set(pid: number, dir: string): void {
    if (this.cwd.size >= this.max && !this.cwd.has(pid)) this.cwd.delete(this.cwd.keys().next().value as number);
    this.cwd.set(pid, dir);
  }
}
