/**
 * Canonical file paths: the string the kernel prints for a mapping in `/proc/<pid>/maps`.
 *
 * The kernel prints `d_path()` of the file it mapped, relative to the process's root: every symlink
 * (merged-/usr `/lib -> usr/lib`, versioned `libfoo.so.1 -> libfoo.so.1.2.3`, a symlinked
 * directory), every `.`/`..` and duplicate slash is gone, and the path is the one through the mounts
 * of the process's own mount namespace. ld.so's `l_name` keeps whatever string it opened
 * (`/opt/app/bin/../lib/libA.so`, `/proc/self/fd/4`), so soload resolves it itself — without the
 * process, which is usually gone by the time its records are read.
 *
 * Resolution happens inside a *view* (a root directory reached through a path prefix, e.g. `` for
 * soload's own root, `/proc/self/fd/N` for a pinned mount namespace root, or a host directory for a
 * chroot). Absolute symlink targets restart at the view's root, and `..` never climbs above it,
 * like openat2(RESOLVE_IN_ROOT); the walk is physical (`a/link/..` is the parent of the link's
 * target), as the kernel's is.
 */

/** What one lstat tells the resolver. */
export interface PathStat {
  kind: 'file' | 'dir' | 'symlink' | 'other';
  dev: number;
  ino: number;
  size: number;
  /** Status-change time, ns since the epoch (a replaced file has a later one). */
  ctimeNs: bigint;
}

/** The two file-system calls resolution needs; implemented by the host reader (or a fixture). */
export interface ResolveOps {
  /** lstat of an absolute host path; undefined when it does not exist (or cannot be read). */
  lstat(hostPath: string): PathStat | undefined;
  /** readlink of an absolute host path; undefined on error. */
  readlink(hostPath: string): string | undefined;
}

/** Outcome of resolving one path inside a view. */
export interface Resolution {
  /** Canonical path inside the view (always absolute, no `.`/`..`/`//`, no symlink left). */
  path: string;
  /** False when the final component (or a directory on the way) no longer exists. */
  exists: boolean;
  /** lstat of the final file when it exists (after following symlinks). */
  stat?: PathStat;
  /** Symlinks followed (0 when the loader's string was already canonical). */
  links: number;
  /** True when resolution gave up (symlink loop, over-long chain): `path` is only normalised. */
  incomplete?: boolean;
}

/** Linux's limit on symlinks followed in one lookup (MAXSYMLINKS). */
export const MAX_SYMLINKS = 40;

/**
 * Resolves `file` (absolute, as seen inside the view) against the view whose root is reached at
 * host path `prefix` (`` = `/`). Pure but for `ops`.
 */
export function resolveInView(prefix: string, file: string, ops: ResolveOps): Resolution {
  const done: string[] = [];
  const todo = file.split('/').reverse();
  let links = 0;
  const at = (parts: string[]): string => '/' + parts.join('/');
  while (todo.length) {
    const comp = todo.pop()!;
    if (comp === '' || comp === '.') continue;
    if (comp === '..') {
      done.pop();
      continue;
    }
    done.push(comp);
    const st = ops.lstat(prefix + at(done));
    if (!st) {
      // A missing component: the file was deleted (or its directory replaced) since the load. What
      // is left is only normalised, which is what the kernel prints for a deleted file's name.
      for (let c = todo.pop(); c !== undefined; c = todo.pop()) {
        if (c === '' || c === '.') continue;
        if (c === '..') done.pop();
        else done.push(c);
      }
      return { path: at(done), exists: false, links };
    }
    if (st.kind === 'symlink') {
      const target = ops.readlink(prefix + at(done));
      if (target === undefined || ++links > MAX_SYMLINKS) {
        return { path: normalise(at(done) + '/' + [...todo].reverse().join('/')), exists: false, links, incomplete: true };
      }
      done.pop();
      if (target.startsWith('/')) done.length = 0;
      for (const c of target.split('/').reverse()) todo.push(c);
      continue;
    }
    if (todo.some((c) => c !== '' && c !== '.') && st.kind !== 'dir') {
      // A file used as a directory (ENOTDIR): nothing to follow; report the normalised string.
      return { path: normalise(at(done) + '/' + [...todo].reverse().join('/')), exists: false, links, incomplete: true };
    }
    if (!todo.some((c) => c !== '' && c !== '.')) return { path: at(done), exists: true, stat: st, links };
  }
  return { path: at(done), exists: true, stat: ops.lstat(prefix + at(done)), links };
}

/** Lexical normalisation: `//`, `.` and `..` removed (never above `/`). */
export function normalise(p: string): string {
  const out: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') out.pop();
    else out.push(c);
  }
  return '/' + out.join('/');
}

/** `/proc/self/fd/N`, `/proc/<pid>/fd/N`, `/proc/thread-self/fd/N`, `/dev/fd/N` → N and whose. */
export function parseFdPath(p: string): { fd: number; owner: 'self' | number } | undefined {
  const m = /^\/(?:proc\/(self|thread-self|\d+)(?:\/task\/\d+)?|dev)\/fd\/(\d+)$/.exec(normalise(p));
  if (!m) return undefined;
  const who = m[1];
  return { fd: Number(m[2]), owner: who === undefined || who === 'self' || who === 'thread-self' ? 'self' : Number(who) };
}

/** A kernel name for a file-descriptor link target: `/memfd:x (deleted)` → parts. */
export function parseFdTarget(target: string): { path: string; deleted: boolean; memfd: boolean } {
  const deleted = target.endsWith(' (deleted)');
  const p = deleted ? target.slice(0, -' (deleted)'.length) : target;
  return { path: p, deleted, memfd: p.startsWith('/memfd:') };
}

/** Options of {@link PathCache}. */
export interface PathCacheOptions {
  /** How long a resolution is reused before it is checked again (ms). */
  ttlMs?: number;
  /** Entries kept at most (oldest dropped first). */
  maxEntries?: number;
}

/**
 * Resolutions per (view, path), reused for `ttlMs`: steady state is one map lookup per record.
 * A package upgrade that swaps symlinks or files is seen at the next check (at most `ttlMs` later);
 * until then the answer is the one computed closest to the load, which is what the process mapped.
 */
export class PathCache {
  private readonly entries = new Map<string, { r: Resolution; at: number }>();
  private readonly ttlMs: number;
  private readonly max: number;
  /** Lookups answered from the cache / by a walk. */
  readonly stats = { hits: 0, walks: 0 };

  constructor(opts: PathCacheOptions = {}) {
    this.ttlMs = opts.ttlMs ?? 1000;
    this.max = opts.maxEntries ?? 16384;
  }

  /** The cached resolution, or a walk when there is none, it is older than the TTL, or `fresh`. */
  resolve(viewId: string, prefix: string, file: string, ops: ResolveOps, now: number, fresh = false): Resolution {
    const key = viewId + '\0' + file;
    const hit = this.entries.get(key);
    if (hit && !fresh && now - hit.at < this.ttlMs) {
      this.stats.hits++;
      return hit.r;
    }
    this.stats.walks++;
    const r = resolveInView(prefix, file, ops);
    if (hit) this.entries.delete(key);
    else if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(key, { r, at: now });
    return r;
  }

  /** Drops resolutions older than the TTL (they would be walked again anyway). */
  prune(now: number): void {
    for (const [k, v] of this.entries) if (now - v.at >= this.ttlMs) this.entries.delete(k);
  }

  /** Forgets every resolution made in a view (the view was released). */
  dropView(viewId: string): void {
    const p = viewId + '\0';
    for (const k of this.entries.keys()) if (k.startsWith(p)) this.entries.delete(k);
  }

  get size(): number {
    return this.entries.size;
  }
}
