import fs from 'node:fs';
import path from 'node:path';
import type { ElfSymbolResolver } from '../elf';
import { resolveInView } from '../enrich/canonical';
import type { ProcReader } from '../host/proc-reader';
import { globToRegExp, LOADER_LOCATIONS, loaderKey, loaderSetFiles, type LibraryFile, type LoaderFileOps, type LoaderRoot } from './discover';
import { fsName } from '../util/path-bytes';

/** One loader installation outside the host's own root, and where it was found. */
export interface ForeignLoader {
  key: string;
  origin: LoaderRoot['origin'];
  files: LibraryFile[];
}

/** Directories matching `*`-globs (one readdir per starred component); only directories. */
export function expandGlobs(globs: readonly string[]): string[] {
  const out: string[] = [];
  for (const g of globs) {
    let dirs = ['/'];
    for (const part of g.split('/').filter(Boolean)) {
      const next: string[] = [];
      for (const d of dirs) {
        if (!/[*?[]/.test(part)) {
          next.push(path.join(d, part));
          continue;
        }
        const re = globToRegExp(part);
        let names: string[] = [];
        try {
          names = fs.readdirSync(d);
        } catch {
          continue;
        }
        for (const n of names) if (re.test(n)) next.push(path.join(d, n));
      }
      dirs = next;
    }
    for (const d of dirs) {
      try {
        if (fs.statSync(d).isDirectory()) out.push(d);
      } catch {
        /* not there (yet) */
      }
    }
  }
  return out;
}

/** stat of a regular file for loader keys; undefined when it is not one. */
export function statFile(p: string): { ino: number; dev: number; size: number; mtimeMs: number } | undefined {
  try {
    const st = fs.statSync(fsName(p));
    return st.isFile() ? { ino: st.ino, dev: st.dev, size: st.size, mtimeMs: st.mtimeMs } : undefined;
  } catch {
    return undefined;
  }
}

/** loaderSetFiles' file-system reads, in a root reached at a host path prefix. */
export function loaderFileOps(proc: ProcReader): LoaderFileOps {
  return {
    canonical: (prefix, file) => {
      const r = resolveInView(prefix, file, proc);
      return r.exists ? r.path : undefined;
    },
    stat: (p) => {
      const st = statFile(p);
      return st ? { ...st, isFile: true } : undefined;
    },
  };
}

/** The loader files found in image layers (each layer a root), one set per distinct loader file. */
export function layerLoaders(dirs: readonly string[], proc: ProcReader, seen = new Set<string>()): ForeignLoader[] {
  const out: ForeignLoader[] = [];
  for (const dir of dirs) {
    for (const loc of LOADER_LOCATIONS) {
      // Links in a layer point into that layer's root (musl's /lib/ld-musl-*.so.1 is absolute).
      const canon = resolveInView(dir, '/' + loc, proc);
      const st = canon.exists ? statFile(dir + canon.path) : undefined;
      if (!st) continue;
      const key = loaderKey(st);
      if (seen.has(key)) continue;
      seen.add(key);
      const files = loaderSetFiles({ prefix: dir, origin: 'layer', pids: [] }, '/' + loc, loaderFileOps(proc));
      if (files.length > 0) out.push({ key, origin: 'layer', files });
    }
  }
  return out;
}

/**
 * Loaders of running processes whose root is not the host's (containers, chroots): each program's
 * PT_INTERP resolved inside its root (`/proc/<pid>/root`), one set per distinct loader file.
 * `skip` holds keys already covered (the host's own loaders).
 */
export function processLoaders(proc: ProcReader, resolver: ElfSymbolResolver, skip: ReadonlySet<string> = new Set()): ForeignLoader[] {
  const host = proc.viewIdentity('self');
  const byKey = new Map<string, ForeignLoader>();
  for (const pid of proc.listPids()) {
    if (pid === process.pid || proc.viewIdentity(pid) === host) continue;
    const prefix = path.join(proc.root, String(pid), 'root');
    let interp: string | undefined;
    try {
      interp = resolver.dynamicInfo(path.join(proc.root, String(pid), 'exe')).interp;
    } catch {
      continue;
    }
    if (!interp) continue;
    const canon = resolveInView(prefix, interp, proc);
    const st = canon.exists ? statFile(prefix + canon.path) : undefined;
    if (!st) continue;
    const key = loaderKey(st);
    if (skip.has(key)) continue;
    const known = byKey.get(key);
    if (known) {
      for (const f of known.files) if (f.usedBy.length < 16) f.usedBy.push(pid);
      continue;
    }
    const files = loaderSetFiles({ prefix, origin: 'process', pids: [pid] }, canon.path, loaderFileOps(proc), pid, interp);
    if (files.length > 0) byKey.set(key, { key, origin: 'process', files });
  }
  return [...byKey.values()];
}
