import path from 'node:path';
import type { LogAttributes } from '@opentelemetry/api-logs';
import type { DynamicInfo } from '../elf/metadata';
import { DF_1_NODEFLIB } from '../elf/metadata';
import { parseLdCache, ldCacheFlagsFor, type LdCache } from '../elf/ldcache';
import type { FileFacts, ProcessInfo } from '../host/proc-reader';
import type { LoadEvent } from '../types';
import type { EnrichedLoad } from './enricher';
import type { FileHasher, FileIdentity, HashAlgorithm, HashOutcome } from './hasher';
import type { FirstSeenStore } from './first-seen';
import type { PackageFile, PackageIndexes, RootFs } from './packages';
import { RiskEvaluator, type RiskLevel, type RiskRule } from './risk';
import { deriveSearchStep, type SearchResult } from './search-step';
import { escapePathBytes } from '../util/path-bytes';

/** What the security stage needs from the host (the agent wires the /proc reader, the views, the ELF reader). */
export interface SecurityHost {
  /** The view `pid` resolves paths in: its id and the host prefix of its root ('' = soload's `/`). */
  viewOf(pid: number): { id: string; prefix: string };
  /** Canonical form of `file` (absolute in the view) in the view `viewId` reached through `prefix`. */
  canonicalIn(viewId: string, prefix: string, file: string): string;
  /** stat(2) of a host path. */
  fileFacts(hostPath: string): FileFacts | undefined;
  /** A small file of a host path (bounded), undefined when absent. */
  readSmallFile(hostPath: string): Buffer | undefined;
  /** DT_NEEDED/RPATH/RUNPATH/FLAGS_1/build-id of a host path (cached by identity), undefined when not ELF. */
  dynamicInfo(hostPath: string): DynamicInfo | undefined;
  /** The file `pid` exec'd (as soload saw the exec), when known. */
  execOf(pid: number): string | undefined;
  /** A root filesystem adapter for the package index of a view. */
  rootFs(viewId: string, prefix: string): RootFs;
}

/** Options of {@link LoadSecurity} (from the `security` config section). */
export interface LoadSecurityOptions {
  rules: readonly RiskRule[];
  /** Severity text of each risk level (none: the configured record severity). */
  severity: Record<Exclude<RiskLevel, 'none'>, string>;
  packages?: PackageIndexes;
  hasher?: FileHasher;
  /** How long a record waits for its file's first hash (ms). */
  hashWaitMs: number;
  firstSeen?: FirstSeenStore;
  /** Delay before a root first met is indexed (ms; default 1000): see packagesReady. */
  packageDelayMs?: number;
  /** ms between checks of a root's ld.so.cache and ld.so.preload for changes. */
  recheckMs?: number;
  now?: () => number;
}

/** The security attributes of one record, possibly still waiting for the file's digest. */
export interface SecurityVerdict {
  /** Attributes known now (complete when `pending` is undefined). */
  attributes: LogAttributes;
  risk: RiskLevel;
  /** Severity text the record gets for its risk (undefined: keep the configured one). */
  severity?: string;
  /** Completes the verdict once the file's digest is known (or waitMs passed). */
  pending?: Promise<SecurityVerdict>;
}

/** Counters of the stage (soload's health metrics). */
export interface SecurityStats {
  assessed: number;
  held: number;
  hashTimeouts: number;
  byRisk: Record<RiskLevel, number>;
}

interface LoadedObject {
  path: string;
  needed: readonly string[];
  rpath?: string;
  runpath?: string;
  flags1?: number;
  /** Index of the object whose DT_NEEDED (or dlopen) brought this one in. */
  requester?: number;
}

interface ProcObjects {
  libc: 'glibc' | 'musl';
  machine: 'x86_64' | 'i386' | 'aarch64';
  elfClass: 32 | 64;
  exe?: LoadedObject;
  objects: LoadedObject[];
}

/** Per-process object lists (the requester chain of later loads): bounded in processes and objects. */
const MAX_PROCS = 4096;
const MAX_OBJECTS = 1024;
/** Per-view caches (ld.so.cache, ld.so.preload, the musl path file): bounded in views. */
const MAX_VIEWS = 64;
/** Directory facts (writable_dir): bounded, and re-read after a second (a chmod shows within it). */
const MAX_DIRS = 4096;
const DIR_TTL_MS = 1000;

const TMP_HASH_ALGOS: readonly HashAlgorithm[] = ['sha256'];

/**
 * The security signal of a load (issue "security signal"): how the loader found the file
 * (`soload.search.step`, from the requesting object's dynamic section, the process's environment and
 * its root's ld.so.cache), its package and whether the package's copy was modified, digest, build-id,
 * owner and permissions, first sight on this host, and the risk from the declared rules. Everything is
 * looked up in the process's own root (a container's package database and cache, not the host's).
 * Never blocks: the digest of a file not hashed before is awaited at most `hashWaitMs`.
 */
export class LoadSecurity {
  readonly stats: SecurityStats = { assessed: 0, held: 0, hashTimeouts: 0, byRisk: { none: 0, low: 0, medium: 0, high: 0 } };
  private readonly host: SecurityHost;
  private readonly o: LoadSecurityOptions;
  private readonly rules: RiskEvaluator;
  private readonly procs = new Map<number, ProcObjects>();
  private readonly ldCaches = new Map<string, { at: number; stamp: string; cache?: LdCache }>();
  private readonly preloadFiles = new Map<string, { at: number; entries: string[] }>();
  private readonly muslPaths = new Map<string, { at: number; dirs?: string[] }>();
  private readonly dirs = new Map<string, { at: number; facts?: FileFacts }>();
  private readonly packageRoots = new Map<string, 'scheduled' | 'ready'>();
  private readonly now: () => number;
  private readonly recheckMs: number;

  constructor(host: SecurityHost, opts: LoadSecurityOptions) {
    this.host = host;
    this.o = opts;
    this.rules = new RiskEvaluator(opts.rules);
    this.now = opts.now ?? Date.now;
    this.recheckMs = opts.recheckMs ?? 5000;
  }

  /** `pid` exec'd or is a new process: its object list starts again. */
  onStart(pid: number): void {
    this.procs.delete(pid);
  }

  /** `pid` exited. */
  onExit(pid: number): void {
    this.procs.delete(pid);
  }

  /** Sizes of its maps (the debug state view). */
  sizes(): Record<string, number> {
    return { requesterProcs: this.procs.size, ldCaches: this.ldCaches.size, preloadFiles: this.preloadFiles.size, muslPaths: this.muslPaths.size, dirFacts: this.dirs.size, packageRoots: this.packageRoots.size };
  }

  /**
   * The verdict for one load. `recordAttrs` are the record's attributes as mapped; the rules also
   * see the process's (`processAttrs`: process.*, container.id, ...) whatever the resource mode.
   */
  assess(load: EnrichedLoad, recordAttrs: LogAttributes, processAttrs: LogAttributes): SecurityVerdict {
    this.stats.assessed++;
    const ev = load.event;
    const p = load.process;
    const view = ev.view ?? this.host.viewOf(ev.pid);
    const a: LogAttributes = {};
    if (p?.secure !== undefined) a['soload.process.secure'] = p.secure;
    if (p?.loaderEnv?.ldLibraryPath !== undefined) a['soload.process.ld_library_path'] = p.loaderEnv.ldLibraryPath;
    if (p?.loaderEnv?.ldPreload !== undefined) a['soload.process.ld_preload'] = p.loaderEnv.ldPreload;

    const file = ev.path !== undefined && ev.result === 'ok' && !ev.memfd ? ev.path : undefined;
    const hostPath = file !== undefined ? view.prefix + file : undefined;
    let facts: FileFacts | undefined;
    let dyn: DynamicInfo | undefined;
    if (file !== undefined && hostPath !== undefined && !ev.deleted && !ev.replaced) {
      facts = this.host.fileFacts(hostPath);
      // The name must still be the file the kernel mapped (path resolution checked it against
      // ld.so's l_file_id): a different inode is another file, whose facts would lie.
      if (facts && load.file && (facts.ino !== load.file.inode || (load.file.dev !== undefined && facts.dev !== load.file.dev))) facts = undefined;
      if (facts?.kind === 'file') {
        a['soload.file.owner_uid'] = facts.uid;
        a['soload.file.world_writable'] = (facts.mode & 0o002) !== 0;
        const dir = this.dirFacts(view.prefix + path.posix.dirname(file));
        if (dir) a['soload.file.writable_dir'] = writableByNonRoot(dir);
        dyn = this.host.dynamicInfo(hostPath);
        if (dyn?.buildId) a['soload.build_id'] = dyn.buildId;
      }
    }

    const search = this.searchStep(ev, p, view, file, dyn);
    if (search?.step) {
      a['soload.search.step'] = search.step;
      if (search.inferred) a['soload.search.inferred'] = true;
      if (search.dir !== undefined) a['soload.search.dir'] = search.dir;
      if (search.requester !== undefined) a['soload.search.requester'] = search.requester;
    }

    let pkg: PackageFile | undefined;
    if (this.o.packages && file !== undefined && !this.packagesReady(view)) {
      a['soload.enrichment.missing'] = [...((recordAttrs['soload.enrichment.missing'] as string[] | undefined) ?? []), 'soload.package'];
    } else if (this.o.packages && file !== undefined) {
      try {
        const index = this.o.packages.forRoot(view.id, () => this.host.rootFs(view.id, view.prefix));
        const status = index.status();
        if (status.manager) a['soload.package.manager'] = status.manager;
        pkg = index.lookup(file);
        if (pkg) {
          a['soload.package.name'] = pkg.name;
          a['soload.package.version'] = pkg.version;
          a['soload.package.manager'] = pkg.manager;
        }
      } catch {
        // a hostile or half-written database must not cost the record: it goes without provenance
      }
    }

    const finish = (outcome: HashOutcome | { ok: false; reason: 'pending' } | undefined): SecurityVerdict => this.finish(a, recordAttrs, processAttrs, file, dyn, pkg, outcome, ev);
    if (!this.o.hasher) return finish(undefined);
    if (file === undefined || ev.deleted || ev.replaced) {
      if (ev.memfd) a['soload.file.hash.skipped'] = 'memfd';
      else if (ev.deleted) a['soload.file.hash.skipped'] = 'deleted';
      return finish(undefined);
    }
    if (!facts) return finish({ ok: false, reason: 'unreadable' });
    if (facts.kind !== 'file') return finish({ ok: false, reason: 'not_regular' });
    const id: FileIdentity = { dev: facts.dev, ino: facts.ino, size: facts.size, mtimeNs: facts.mtimeNs };
    const algorithms = pkg?.digest && pkg.digest.algorithm !== 'sha256' ? ['sha256' as const, pkg.digest.algorithm] : TMP_HASH_ALGOS;
    const cached = this.o.hasher.cached(id, algorithms);
    if (cached) return finish({ ok: true, digests: cached, cached: true });
    this.stats.held++;
    const hashing = this.o.hasher.hash(hostPath!, id, algorithms);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<HashOutcome>((resolve) => {
      timer = setTimeout(() => {
        this.stats.hashTimeouts++;
        resolve({ ok: false, reason: 'timeout' });
      }, this.o.hashWaitMs);
    });
    const pending = Promise.race([hashing.catch((): HashOutcome => ({ ok: false, reason: 'unreadable' })), timeout]).then((outcome) => {
      clearTimeout(timer);
      return finish(outcome.ok || outcome.reason !== 'timeout' ? outcome : { ok: false, reason: 'pending' });
    });
    // Until the digest is known the verdict is incomplete: first sight and risk are decided once, in
    // `pending` (first sight is state: deciding it twice would report a first load as seen).
    return { attributes: { ...a }, risk: 'none', pending };
  }

  private finish(
    base: LogAttributes,
    recordAttrs: LogAttributes,
    processAttrs: LogAttributes,
    file: string | undefined,
    dyn: DynamicInfo | undefined,
    pkg: PackageFile | undefined,
    outcome: HashOutcome | { ok: false; reason: 'pending' } | undefined,
    ev: LoadEvent,
  ): SecurityVerdict {
    const a: LogAttributes = { ...base };
    let sha256: string | undefined;
    if (outcome?.ok) {
      sha256 = outcome.digests.sha256;
      if (sha256) a['file.hash.sha256'] = sha256;
      if (pkg?.digest) {
        const mine = outcome.digests[pkg.digest.algorithm];
        if (mine) a['soload.package.modified'] = mine !== pkg.digest.hex.toLowerCase();
      }
    } else if (outcome) a['soload.file.hash.skipped'] = outcome.reason;
    if (this.o.firstSeen && file !== undefined && ev.result === 'ok') {
      const identity = dyn?.buildId ? `b:${dyn.buildId}` : sha256 ? `h:${sha256}` : undefined;
      if (identity) a['soload.first_seen'] = this.o.firstSeen.firstSeen(`${file}\0${identity}`);
    }
    const verdict = this.rules.assess([a, recordAttrs, processAttrs]);
    a['soload.risk'] = verdict.risk;
    if (verdict.reasons.length) a['soload.risk.reasons'] = verdict.reasons;
    this.stats.byRisk[verdict.risk]++;
    const severity = verdict.risk === 'none' ? undefined : this.o.severity[verdict.risk];
    return { attributes: a, risk: verdict.risk, ...(severity ? { severity } : {}) };
  }

  /** How the loader found the object, and the object's place in the process's requester graph. */
  private searchStep(ev: LoadEvent, p: ProcessInfo | undefined, view: { id: string; prefix: string }, file: string | undefined, dyn: DynamicInfo | undefined): SearchResult | undefined {
    if (ev.result !== 'ok' || file === undefined) return undefined;
    const st = this.procState(ev.pid, p, view);
    const canonical = (f: string) => this.host.canonicalIn(view.id, view.prefix, f);
    const requested = ev.requestedName ?? path.posix.basename(file);
    let requester: number | undefined;
    if (ev.method === 'needed' || (ev.method === 'dlopen' && ev.loadedBy !== undefined)) {
      if (ev.loadedBy !== undefined) requester = findIndex(st.objects, (o) => o.path === ev.loadedBy);
      // ld.so maps breadth-first: the first object in load order that needs the name is the one
      // whose search found it (its l_loader chain gives the DT_RPATH list).
      if (requester === undefined) requester = findIndex(st.objects, (o) => o.needed.includes(requested));
    }
    const chain: LoadedObject[] = [];
    for (let i = requester, guard = 0; i !== undefined && guard < 64; i = st.objects[i]?.requester, guard++) {
      const o = st.objects[i];
      if (!o) break;
      chain.push(o);
    }
    if (st.exe && chain[chain.length - 1] !== st.exe) chain.push(st.exe);
    const me: LoadedObject = {
      path: file,
      needed: dyn?.needed ?? [],
      ...(dyn?.rpath ? { rpath: dyn.rpath } : {}),
      ...(dyn?.runpath ? { runpath: dyn.runpath } : {}),
      ...(dyn?.flags1 !== undefined ? { flags1: dyn.flags1 } : {}),
      ...(requester !== undefined ? { requester } : {}),
    };
    if (st.objects.length < MAX_OBJECTS && !st.objects.some((o) => o.path === file)) st.objects.push(me);
    if (ev.method === 'executable' || ev.method === 'interpreter') return { step: 'absolute' };
    const cache = this.ldCache(view, st);
    const flags = ldCacheFlagsFor(st.machine, st.elfClass);
    const obj = (o: LoadedObject) => ({ path: o.path, ...(o.rpath ? { rpath: o.rpath } : {}), ...(o.runpath ? { runpath: o.runpath } : {}), ...(o.flags1 !== undefined && (o.flags1 & DF_1_NODEFLIB) !== 0 ? { nodeflib: true } : {}) });
    try {
      const r = deriveSearchStep({
        libc: st.libc,
        method: ev.method,
        ...(ev.requestedName !== undefined ? { requestedName: ev.requestedName } : {}),
        loadedPath: file,
        requesters: chain.map(obj),
        ...(st.exe ? { executable: obj(st.exe) } : {}),
        ...(p?.loaderEnv ? { ldLibraryPath: p.loaderEnv.ldLibraryPath ?? '' } : {}),
        ...(p?.loaderEnv ? { ldPreload: p.loaderEnv.ldPreload ?? '' } : {}),
        ...(p?.secure !== undefined ? { secure: p.secure } : {}),
        preloadFile: this.preloadFile(view),
        ...(cache ? { cache: (name: string) => cache.lookup(name, flags) } : {}),
        defaultDirs: this.defaultDirs(st, view),
        canonical,
        exists: (f: string) => this.host.fileFacts(view.prefix + f)?.kind === 'file',
        lib: st.machine === 'x86_64' ? 'lib/x86_64-linux-gnu' : st.machine === 'aarch64' ? 'lib/aarch64-linux-gnu' : 'lib/i386-linux-gnu',
        platform: st.machine,
      });
      // the object whose DT_NEEDED named it, when the step itself names no dynamic-section owner
      return r.requester === undefined && r.step !== undefined && chain[0] && ev.method !== 'preload' ? { ...r, requester: chain[0].path } : r;
    } catch {
      return undefined;
    }
  }

  private procState(pid: number, p: ProcessInfo | undefined, view: { id: string; prefix: string }): ProcObjects {
    let st = this.procs.get(pid);
    if (st) return st;
    const exePath = this.host.execOf(pid) || p?.exePath;
    const exeDyn = exePath?.startsWith('/') ? this.host.dynamicInfo(view.prefix + exePath) : undefined;
    const libc = exeDyn?.interp?.includes('ld-musl') ? 'musl' : 'glibc';
    const machine = exeDyn?.interp?.includes('aarch64') ? 'aarch64' : exeDyn?.interp?.includes('ld-linux.so.2') || exeDyn?.interp?.includes('i386') ? 'i386' : 'x86_64';
    st = { libc, machine, elfClass: machine === 'i386' ? 32 : 64, objects: [] };
    if (exePath?.startsWith('/')) {
      const canonicalExe = this.host.canonicalIn(view.id, view.prefix, exePath);
      st.exe = { path: canonicalExe, needed: exeDyn?.needed ?? [], ...(exeDyn?.rpath ? { rpath: exeDyn.rpath } : {}), ...(exeDyn?.runpath ? { runpath: exeDyn.runpath } : {}), ...(exeDyn?.flags1 !== undefined ? { flags1: exeDyn.flags1 } : {}) };
      st.objects.push(st.exe);
    }
    if (this.procs.size >= MAX_PROCS) this.procs.delete(this.procs.keys().next().value as number);
    this.procs.set(pid, st);
    return st;
  }

  /**
   * Indexes a root's package database now (the host's, before soload reports ready), so its
   * records carry provenance from the first one.
   */
  warmPackages(view: { id: string; prefix: string }): void {
    if (!this.o.packages) return;
    try {
      this.o.packages.forRoot(view.id, () => this.host.rootFs(view.id, view.prefix)).status();
    } catch {
      // reported by the records' missing provenance
    }
    this.packageRoots.set(view.id, 'ready');
  }

  /**
   * Whether `view`'s package index is built. Building one takes 0.1–0.5 s of the main thread (a
   * Debian root lists ~100k files): done at once when a container's first process starts, it
   * delays arming that container's loader until its short-lived first processes are gone. So a new
   * root is indexed `packageDelayMs` later, off the start-up burst; its records until then say
   * `soload.package` in soload.enrichment.missing.
   */
  private packagesReady(view: { id: string; prefix: string }): boolean {
    const state = this.packageRoots.get(view.id);
    if (state === 'ready') return true;
    if (state === undefined) {
      if (this.packageRoots.size >= MAX_VIEWS * 4) this.packageRoots.delete(this.packageRoots.keys().next().value as string);
      this.packageRoots.set(view.id, 'scheduled');
      const t = setTimeout(() => this.warmPackages(view), this.o.packageDelayMs ?? 1000);
      t.unref?.();
    }
    return false;
  }

  /** Directory facts, cached briefly: the loads of one start-up share a handful of directories. */
  private dirFacts(hostDir: string): FileFacts | undefined {
    const now = this.now();
    const hit = this.dirs.get(hostDir);
    if (hit && now - hit.at < DIR_TTL_MS) return hit.facts;
    const facts = this.host.fileFacts(hostDir);
    this.dirs.delete(hostDir);
    if (this.dirs.size >= MAX_DIRS) this.dirs.delete(this.dirs.keys().next().value as string);
    this.dirs.set(hostDir, { at: now, ...(facts ? { facts } : {}) });
    return facts;
  }

  private ldCache(view: { id: string; prefix: string }, st: ProcObjects): LdCache | undefined {
    if (st.libc === 'musl') return undefined;
    const now = this.now();
    const hit = this.ldCaches.get(view.id);
    if (hit && now - hit.at < this.recheckMs) return hit.cache;
    const f = view.prefix + '/etc/ld.so.cache';
    const facts = this.host.fileFacts(f);
    const stamp = facts ? `${facts.ino}:${facts.size}:${facts.mtimeNs}` : '';
    if (hit && hit.stamp === stamp) {
      hit.at = now;
      return hit.cache;
    }
    let cache: LdCache | undefined;
    try {
      const buf = facts ? this.host.readSmallFile(f) : undefined;
      cache = buf ? parseLdCache(buf) : undefined;
    } catch {
      cache = undefined; // unreadable cache: the cache step is not claimed
    }
    bounded(this.ldCaches, view.id, { at: now, stamp, ...(cache ? { cache } : {}) });
    return cache;
  }

  private preloadFile(view: { id: string; prefix: string }): string[] {
    const now = this.now();
    const hit = this.preloadFiles.get(view.id);
    if (hit && now - hit.at < this.recheckMs) return hit.entries;
    const raw = this.host.readSmallFile(view.prefix + '/etc/ld.so.preload');
    // entries are compared with escaped record paths (util/path-bytes.ts)
    const text = raw ? escapePathBytes(raw) : '';
    // ld.so splits /etc/ld.so.preload on whitespace and colons; '#' starts no comment there
    const entries = text.split(/[\s:]+/).filter(Boolean).slice(0, 256);
    bounded(this.preloadFiles, view.id, { at: now, entries });
    return entries;
  }

  private defaultDirs(st: ProcObjects, view: { id: string; prefix: string }): string[] {
    if (st.libc === 'musl') {
      const now = this.now();
      let hit = this.muslPaths.get(view.id);
      if (!hit || now - hit.at >= this.recheckMs) {
        const arch = st.machine === 'i386' ? 'i386' : st.machine;
        const raw = this.host.readSmallFile(`${view.prefix}/etc/ld-musl-${arch}.path`);
        const text = raw ? escapePathBytes(raw) : undefined;
        // musl reads the path file as entries separated by newlines or colons
        hit = { at: now, ...(text !== undefined ? { dirs: text.split(/[\n:]+/).map((d) => d.trim()).filter(Boolean) } : {}) };
        bounded(this.muslPaths, view.id, hit);
      }
      return hit.dirs ?? ['/lib', '/usr/local/lib', '/usr/lib'];
    }
    // glibc's compiled-in system directories: Debian/Ubuntu use the multiarch pair, Fedora/RHEL/SUSE
    // lib64; /lib and /usr/lib everywhere. The union is safe for explaining a load: a directory a
    // distribution does not search holds no library the others would not have found first.
    const triplet = st.machine === 'x86_64' ? 'x86_64-linux-gnu' : st.machine === 'aarch64' ? 'aarch64-linux-gnu' : 'i386-linux-gnu';
    return [`/lib/${triplet}`, `/usr/lib/${triplet}`, ...(st.elfClass === 64 ? ['/lib64', '/usr/lib64'] : []), '/lib', '/usr/lib'];
  }
}

/** A directory a non-root user can create or replace files in (other-writable, group-writable by a non-root group, or owned and writable by a non-root user). */
export function writableByNonRoot(dir: Pick<FileFacts, 'mode' | 'uid' | 'gid'>): boolean {
  if (dir.mode & 0o002) return true;
  if (dir.mode & 0o020 && dir.gid !== 0) return true;
  return (dir.mode & 0o200) !== 0 && dir.uid !== 0;
}

function findIndex<T>(list: readonly T[], pred: (t: T) => boolean): number | undefined {
  const i = list.findIndex(pred);
  return i < 0 ? undefined : i;
}

function bounded<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  if (map.size >= MAX_VIEWS) map.delete(map.keys().next().value as string);
  map.set(key, value);
}
