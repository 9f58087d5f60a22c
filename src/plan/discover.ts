import fs from 'node:fs';
import path from 'node:path';
import type { ProcReader } from '../host/proc-reader';
import { escapePathBytes, fsName } from '../util/path-bytes';

/** A library file on the host, identified by inode: uprobes attach per inode, not per path. */
export interface LibraryFile {
  /** Path soload writes into uprobe_events (reachable from soload's own mount namespace). */
  path: string;
  /** Paths processes know it by (what appears in their maps). */
  aliases: string[];
  dev: number;
  ino: number;
  /** Pids seen mapping it at discovery time (a sample, capped). */
  usedBy: number[];
  /**
   * The root the file belongs to when it is not the host's own (a container, a chroot, an image
   * layer): calibration helpers are run from that root, never the host's programs under its loader.
   */
  root?: LoaderRoot;
}

/** Where a loader's own root filesystem is reachable from soload. */
export interface LoaderRoot {
  /** Host path of the root directory (`/proc/<pid>/root`, a chroot directory, an image layer). */
  prefix: string;
  /** How it was found. */
  origin: 'process' | 'chroot' | 'layer';
  /** Live processes that use this loader (calibration may read one of them). */
  pids: number[];
}

/**
 * Identity of a loader file for "is it probed already": inode, size and mtime — not the device.
 * A file reached through a container's overlayfs reports the overlay's device (one per container
 * mount) but the lower layer's inode, size and mtime; the kernel places a uprobe on that real lower
 * inode (d_real_inode), so containers of one image share one probe and must share one key.
 */
export function loaderKey(st: { ino: number | bigint; size: number | bigint; mtimeMs: number }): string {
  return `${st.ino}:${st.size}:${Math.trunc(st.mtimeMs)}`;
}

/** Where glibc and musl put their dynamic loader, relative to a root (x86_64 and aarch64). */
export const LOADER_LOCATIONS = [
  'lib64/ld-linux-x86-64.so.2',
  'lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
  'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
  'usr/lib64/ld-linux-x86-64.so.2',
  'lib/ld-linux-aarch64.so.1',
  'lib/aarch64-linux-gnu/ld-linux-aarch64.so.1',
  'usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1',
  'lib/ld-musl-x86_64.so.1',
  'lib/ld-musl-aarch64.so.1',
];

/** Files next to a glibc ld.so that hold dlopen and the view probes (glibc < 2.34: libdl.so.2). */
const COMPANIONS = ['libc.so.6', 'libdl.so.2'];

/** File-system reads loaderSetFiles needs (the /proc reader implements them). */
export interface LoaderFileOps {
  /** Canonical path of `file` inside the root at host path `prefix` (symlinks resolved in that root). */
  canonical(prefix: string, file: string): string | undefined;
  stat(hostPath: string): { ino: number; dev: number; size: number; mtimeMs: number; isFile: boolean } | undefined;
}

/**
 * The files of one loader installation inside a root: the loader `interp` (as a program's PT_INTERP
 * names it) and, for glibc, libc.so.6 and libdl.so.2 of the same directory. Each is named by its
 * in-root names (what selectors match and maps print) and reached at `<prefix><canonical path>`.
 */
export function loaderSetFiles(root: LoaderRoot | undefined, interp: string, ops: LoaderFileOps, pid?: number, requestedAs?: string): LibraryFile[] {
  const prefix = root?.prefix ?? '';
  const out: LibraryFile[] = [];
  const add = (name: string): string | undefined => {
    const canon = ops.canonical(prefix, name);
    if (!canon) return undefined;
    const st = ops.stat(prefix + canon);
    if (!st?.isFile) return undefined;
    const aliases = [...new Set([canon, name])];
    out.push({ path: prefix + canon, aliases, dev: st.dev, ino: st.ino, usedBy: pid !== undefined ? [pid] : [], ...(root ? { root } : {}) });
    return canon;
  };
  const ld = add(interp);
  if (!ld) return [];
  if (requestedAs && !out[0]!.aliases.includes(requestedAs)) out[0]!.aliases.push(requestedAs);
  // musl: the loader is libc itself; its directory holds unrelated libraries.
  if (/ld-musl/.test(path.basename(interp))) return out;
  for (const c of COMPANIONS) add(path.join(path.dirname(ld), c));
  return out;
}

/** Directories searched for sonames not mapped by any running process. */
export const DEFAULT_LIB_DIRS = [
  '/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu', '/usr/lib/aarch64-linux-gnu',
  '/lib64', '/usr/lib64', '/lib', '/usr/lib', '/usr/local/lib',
];

/**
 * Inventories shared objects: those mapped by running processes (via the ProcReader) plus the
 * standard library directories. Files are keyed by (dev, ino) so the same libc reached through
 * /lib and /usr/lib (merged-/usr symlinks) gets one probe, not two that would double-report.
 */
export function inventoryLibraries(proc: ProcReader, libDirs: string[] = DEFAULT_LIB_DIRS, maxPids = 4096, foreignRoots = true): LibraryFile[] {
  const byInode = new Map<string, LibraryFile>();
  const add = (hostPath: string, alias: string, pid?: number) => {
    let st: fs.Stats;
    try {
      st = fs.statSync(fsName(hostPath));
    } catch {
      return;
    }
    if (!st.isFile()) return;
    const key = `${st.dev}:${st.ino}`;
    let lib = byInode.get(key);
    if (!lib) {
      lib = { path: hostPath, aliases: [], dev: st.dev, ino: st.ino, usedBy: [] };
      byInode.set(key, lib);
    }
    if (!lib.aliases.includes(alias)) lib.aliases.push(alias);
    if (pid !== undefined && lib.usedBy.length < 16) lib.usedBy.push(pid);
  };
  for (const pid of proc.listPids().slice(0, maxPids)) {
    for (const f of proc.mappedFiles(pid)) {
      if (!/\.so(\.|$)|\/ld-|ld-linux|ld-musl/.test(path.basename(f))) continue;
      // Prefer the host path when it names the same inode; otherwise reach the file through the
      // process's root (another mount namespace: a container) so the kernel can resolve it.
      add(f, f, pid);
      // With loader discovery on, other roots' loaders are planned per root (agent/loaders.ts).
      if (foreignRoots) add(path.join(proc.root, String(pid), 'root', f), f, pid);
    }
  }
  for (const dir of libDirs) {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) if (/\.so(\.\d+)*$/.test(n)) add(path.join(dir, n), path.join(dir, n));
  }
  // A file reachable by a host path beats one reachable only through /proc/<pid>/root, which
  // stops resolving when that process exits.
  for (const lib of byInode.values()) {
    // Names are soload-escaped (util/path-bytes.ts): the file system gets their bytes back.
    const host = lib.aliases.find((a) => fs.existsSync(fsName(a)) && sameInode(a, lib));
    if (!host) continue;
    try {
      lib.path = escapePathBytes(fs.realpathSync(fsName(host), { encoding: 'buffer' }));
    } catch {
      // Gone since the checks above (the process exited, its directory was removed): the file
      // keeps the name it was found under; planning must not fail for a process that went away.
    }
  }
  return [...byInode.values()];
}

function sameInode(p: string, lib: LibraryFile): boolean {
  try {
    const st = fs.statSync(fsName(p));
    return st.ino === lib.ino && st.dev === lib.dev;
  } catch {
    return false;
  }
}

/** Converts a glob (`*`, `?`, `[...]`) to an anchored RegExp (pure). */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += glob[i + 1] === '*' ? (i++, '.*') : '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += '[' + glob.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\') + ']';
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * The library files a probe's `library` selector names (pure over the inventory):
 * an absolute path matches that file (by any alias or its real path); a glob with `/` matches full
 * paths; anything else matches basenames (a soname such as `libc.so.6`, or a basename glob).
 */
export function selectLibraries(selector: string, inventory: LibraryFile[]): LibraryFile[] {
  const isGlob = /[*?[]/.test(selector);
  if (selector.startsWith('/') && !isGlob) {
    return inventory.filter((l) => l.path === selector || l.aliases.includes(selector));
  }
  const re = isGlob ? globToRegExp(selector) : undefined;
  const full = selector.includes('/');
  return inventory.filter((l) =>
    [l.path, ...l.aliases].some((p) => {
      const subject = full ? p : path.basename(p);
      return re ? re.test(subject) : subject === selector;
    }),
  );
}
