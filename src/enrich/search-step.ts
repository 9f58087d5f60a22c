/**
 * Which step of the dynamic loader's library search produced a load: the DT_RPATH of a requesting
 * object, LD_LIBRARY_PATH, DT_RUNPATH, ld.so.cache, the default directories, `$ORIGIN`, a preload
 * list, or a path given outright. Pure: the file system is seen only through the `canonical` and
 * `exists` callbacks the caller passes (resolved inside the process's root, and cached there).
 *
 * The search is replayed in the loader's order and the first candidate that exists wins, as in the
 * loader; a candidate is the loaded file when its canonical path equals `loadedPath`.
 *
 * glibc (elf/dl-load.c `_dl_map_new_object`, 2.33 and later), for a name without a slash:
 *  1. DT_RPATH of the requesting object, then of the object that loaded it, and so on up the
 *     `l_loader` chain; then the executable's DT_RPATH unless it was in the chain. An object's
 *     DT_RPATH is ignored when it also has DT_RUNPATH, and the whole step is skipped when the
 *     requesting object has DT_RUNPATH.
 *  2. LD_LIBRARY_PATH (`:` and `;` separate; an empty element is the working directory). The loader
 *     drops it for AT_SECURE processes.
 *  3. DT_RUNPATH of the requesting object only.
 *  4. ld.so.cache (one answer: the best glibc-hwcaps entry the CPU supports, else the first ordinary
 *     entry; if that file cannot be opened the search goes on).
 *  5. The default directories, unless the requesting object has DF_1_NODEFLIB (which also rejects
 *     cache answers inside them).
 * In every directory of steps 1–3 and 5, glibc first tries the hwcaps subdirectories.
 *
 * musl (ldso/dynlink.c `load_library`): LD_LIBRARY_PATH (not read at all when AT_SECURE); then, for
 * the requesting object and each object up its `needed_by` chain, its DT_RUNPATH if it has one,
 * else its DT_RPATH; then the path file `/etc/ld-musl-<arch>.path` or `/lib:/usr/local/lib:/usr/lib`.
 * No cache, no hwcaps subdirectories; only `$ORIGIN` is expanded, and an rpath using any other `$`
 * token is ignored entirely. musl's dlopen searches from the main program, whoever called it.
 */

/** How the loader found a library. */
export type SearchStep =
  | 'absolute'
  | 'rpath'
  | 'runpath'
  | 'ld_library_path'
  | 'ld_so_cache'
  | 'default_dirs'
  | 'origin'
  | 'preload_env'
  | 'preload_file';

/** Why the loader loaded the object. */
export type LoadMethod = 'dlopen' | 'needed' | 'preload' | 'interpreter' | 'executable' | 'unknown';

/** An object whose dynamic section takes part in the search. */
export interface SearchObject {
  /**
   * Its path as the loader knows it (`$ORIGIN` is its directory; glibc and musl take that textually
   * from the name they opened it by, the kernel-resolved path for the main program).
   */
  path: string;
  /** DT_RPATH string, undefined when absent. */
  rpath?: string;
  /** DT_RUNPATH string, undefined when absent. */
  runpath?: string;
  /** DF_1_NODEFLIB in DT_FLAGS_1 (glibc then skips the default directories for what it requests). */
  nodeflib?: boolean;
}

/** What is known about one load. All paths are as the process sees them, inside its own root. */
export interface SearchInput {
  libc: 'glibc' | 'musl';
  method: LoadMethod;
  /** The DT_NEEDED entry, dlopen argument or LD_PRELOAD entry as written; undefined when unknown. */
  requestedName?: string;
  /** Canonical absolute path of the file the kernel mapped. */
  loadedPath: string;
  /**
   * The requesting object first (whose DT_NEEDED named the library, or the dlopen caller), then the
   * object that loaded it, and so on up to the executable. Empty when unknown: glibc then searches
   * as if the executable requested it (as dlopen does for an unknown caller).
   */
  requesters: readonly SearchObject[];
  /** The main program (glibc also tries its DT_RPATH; musl's dlopen searches from it). */
  executable?: SearchObject;
  /** LD_LIBRARY_PATH; undefined = environment not captured, `''` = unset or empty. */
  ldLibraryPath?: string;
  /** AT_SECURE (setuid/setgid/file capabilities). */
  secure?: boolean;
  /** LD_PRELOAD; undefined = unknown, `''` = unset or empty. */
  ldPreload?: string;
  /** Entries of /etc/ld.so.preload in the process's root (glibc only; musl has no such file). */
  preloadFile?: readonly string[];
  /** ld.so.cache lookup, already filtered to the ABI (e.g. LdCache.lookup with ldCacheFlagsFor()). */
  cache?: (name: string) => readonly string[];
  /** The loader's default directories for the ABI (glibc's system dirs, musl's path file). */
  defaultDirs: readonly string[];
  /** Canonical form of an absolute path (symlinks resolved), compared with `loadedPath` exactly. */
  canonical: (p: string) => string;
  /**
   * Whether the loader would accept a candidate file (exists and, ideally, is of the right ELF class
   * and machine: glibc's open_verify skips others and searches on). Without it, shadowing cannot be
   * seen: only the candidate that is the loaded file counts as existing.
   */
  exists?: (p: string) => boolean;
  /** Expansion of `$LIB` (Debian x86-64 glibc: `lib/x86_64-linux-gnu`); elements using it are skipped when unknown. */
  lib?: string;
  /** Expansion of `$PLATFORM` (e.g. `x86_64`, `haswell`); elements using it are skipped when unknown. */
  platform?: string;
  /**
   * glibc's hwcaps subdirectories in its priority order (e.g. `glibc-hwcaps/x86-64-v3`,
   * `glibc-hwcaps/x86-64-v2`; legacy ones such as `tls/haswell` before 2.37), when known: they are
   * then candidates before each directory itself, and shadow like any other. When undefined, a
   * loaded file in a hwcaps-looking subdirectory of a search directory counts as found in that
   * directory, and hwcaps subdirectories never shadow (which of them the CPU allows is unknown).
   */
  hwcaps?: readonly string[];
  /** The process's working directory, for relative search elements (an empty LD_LIBRARY_PATH element is one). */
  cwd?: string;
}

/** Outcome of deriveSearchStep(). */
export interface SearchResult {
  /** The step; undefined when nothing explains the load (then `reason` says why). */
  step?: SearchStep;
  /** The search directory that matched, as written after token expansion (trailing slashes removed). */
  dir?: string;
  /** The hwcaps subdirectory of `dir` the file was found in, e.g. `glibc-hwcaps/x86-64-v3`. */
  hwcaps?: string;
  /** Path of the object whose dynamic section (or DT_NEEDED name) gave the matching entry. */
  requester?: string;
  /** True when the step is an inference: an unknown environment could have given another answer. */
  inferred?: boolean;
  /** Why the step is undefined or inferred. */
  reason?: string;
}

interface Candidate {
  step: SearchStep;
  dir: string;
  requester?: string;
}

/** A segment of the search order: its directories, or the marker of an LD_LIBRARY_PATH not known. */
type Segment = { dirs: Candidate[]; noHwcaps?: boolean } | { unknownLlp: true } | { cache: readonly string[]; nodeflibDirs?: readonly string[] };

/** The legacy hwcaps subdirectory names glibc 2.36 and earlier built paths from (x86 and `tls`). */
const LEGACY_HWCAPS = new Set(['tls', 'x86_64', 'avx512_1', 'sse2', 'i586', 'i686', 'haswell', 'xeon_phi']);
/** glibc builds legacy subdirectories from at most tls, platform and the important hwcap bits. */
const MAX_LEGACY_LEVELS = 4;

/**
 * Works out which search step explains the load described by `input`. Pure but for the callbacks.
 *
 * - `interpreter`/`executable`: `absolute` (PT_INTERP and execve take paths).
 * - `preload`: `preload_env` when an LD_PRELOAD entry is this object (a path entry compared
 *   canonically, a bare name by replaying its search from the main program), else `preload_file`
 *   for an /etc/ld.so.preload entry; LD_PRELOAD unknown makes either an inference.
 * - A name with a slash: `absolute`, or `origin` when glibc expands a leading `$ORIGIN` (against the
 *   requesting object); `reason` notes a path that does not resolve to the loaded file.
 * - Otherwise the search is replayed. A directory element that used `$ORIGIN` reports `origin`
 *   (LD_LIBRARY_PATH elements always report `ld_library_path`). The first existing candidate
 *   decides: another file there means no step explains the load. With LD_LIBRARY_PATH unknown (and
 *   not AT_SECURE), a match after its place is `inferred`, and a load no step explains, or one
 *   shadowed after its place, is `ld_library_path` inferred; steps before it (glibc's DT_RPATH) stay
 *   exact. Relative elements are only tried when `cwd` is known.
 */
export function deriveSearchStep(input: SearchInput): SearchResult {
  const name = input.requestedName;
  if (input.method === 'interpreter' || input.method === 'executable') return { step: 'absolute' };
  if (input.method === 'preload') return preloadStep(input);
  if (name === undefined || name === '') return { reason: 'the requested name is unknown' };
  if (name.includes('/')) return pathStep(input, name);
  return search(input, name, chainOf(input));
}

/** The requester chain the loader walks for a load of `input.method`. */
function chainOf(input: SearchInput): readonly SearchObject[] {
  if (input.libc === 'musl' && input.method === 'dlopen') {
    // dlopen calls load_library(file, head): the main program's rpath, whatever the caller.
    const main = input.executable ?? input.requesters[input.requesters.length - 1];
    return main ? [main] : [];
  }
  if (input.requesters.length === 0 && input.executable) return [input.executable];
  return input.requesters;
}

/** A name with a slash: opened as written, after glibc expands its tokens against the requester. */
function pathStep(input: SearchInput, name: string): SearchResult {
  const requester = input.requesters[0] ?? input.executable;
  if (input.libc === 'glibc' && /^\$(ORIGIN|\{ORIGIN\})(\/|$)/.test(name)) {
    if (!requester) return { step: 'origin', reason: 'the requesting object is unknown' };
    const expanded = expandGlibc(name, requester, input, requester === input.executable || requester.path === input.executable?.path);
    const dir = expanded === undefined ? undefined : dirOf(expanded);
    const out: SearchResult = { step: 'origin', requester: requester.path };
    if (dir !== undefined) out.dir = dir;
    if (expanded !== undefined && !matches(input, expanded)) out.reason = `${expanded} does not resolve to ${input.loadedPath}`;
    return out;
  }
  // musl opens the string literally; glibc expands $LIB/$PLATFORM but it is still a path. A relative
  // path is opened from the working directory: no search either.
  const abs = absolute(input, name);
  if (abs !== undefined && !name.includes('$') && !matches(input, abs)) return { step: 'absolute', reason: `${name} does not resolve to ${input.loadedPath}` };
  return { step: 'absolute' };
}

/** The preload list that brought the object in. */
function preloadStep(input: SearchInput): SearchResult {
  const listed = (entries: readonly string[]) => entries.some((e) => preloadEntryMatches(input, e));
  // musl reads neither LD_PRELOAD under AT_SECURE nor any preload file.
  const envKnown = input.ldPreload !== undefined || (input.libc === 'musl' && input.secure === true);
  const env = input.ldPreload === undefined || (input.libc === 'musl' && input.secure) ? [] : splitPreload(input.ldPreload, input.libc);
  // glibc ignores LD_PRELOAD entries with a slash in AT_SECURE processes (dso_name_valid_for_suid).
  const envUsable = input.libc === 'glibc' && input.secure ? env.filter((e) => !e.includes('/')) : env;
  if (listed(envUsable)) return { step: 'preload_env' };
  const file = input.libc === 'glibc' ? input.preloadFile ?? [] : [];
  if (listed(file)) {
    // LD_PRELOAD comes first: had it named the same object, that entry would have loaded it.
    return envKnown ? { step: 'preload_file' } : { step: 'preload_file', inferred: true, reason: 'LD_PRELOAD unknown' };
  }
  if (!envKnown) return { step: 'preload_env', inferred: true, reason: 'LD_PRELOAD unknown and the object is not in /etc/ld.so.preload' };
  return { reason: 'the object is in neither LD_PRELOAD nor /etc/ld.so.preload (ld.so --preload?)' };
}

/** LD_PRELOAD split the way the loader splits it. */
function splitPreload(value: string, libc: 'glibc' | 'musl'): string[] {
  // glibc: strcspn(" :"); musl: isspace() or ':'.
  return value.split(libc === 'glibc' ? /[ :]/ : /[\s:]/).filter((e) => e !== '');
}

function preloadEntryMatches(input: SearchInput, entry: string): boolean {
  if (entry === input.requestedName) return true;
  const exe = input.executable;
  if (entry.includes('/')) {
    // Preload names are mapped with the main program as the loader: its $ORIGIN.
    const expanded = input.libc === 'glibc' && exe ? expandGlibc(entry, exe, input, true) : entry;
    const abs = expanded === undefined ? undefined : absolute(input, expanded);
    return abs !== undefined && matches(input, abs);
  }
  if (input.requestedName !== undefined) return false;
  // A bare name is searched for from the main program; it is this object if that search finds it.
  const r = search({ ...input, ldLibraryPath: input.ldLibraryPath ?? '' }, entry, exe ? [exe] : []);
  return r.step !== undefined;
}

/** Replays the search for `name` and reports the first candidate that exists. */
function search(input: SearchInput, name: string, chain: readonly SearchObject[]): SearchResult {
  const segments = input.libc === 'musl' ? muslSegments(input, chain) : glibcSegments(input, name, chain);
  const loadedSub = input.hwcaps === undefined && input.libc === 'glibc' ? hwcapsSubdirsOf(input.loadedPath) : [];
  let unknownBefore = false;
  for (const seg of segments) {
    if ('unknownLlp' in seg) {
      unknownBefore = true;
      continue;
    }
    if ('cache' in seg) {
      const r = cacheCandidates(input, seg.cache, seg.nodeflibDirs);
      if (r === undefined) continue;
      if (r.match) return result({ step: 'ld_so_cache', dir: dirOf(r.path) }, unknownBefore);
      return shadowed(r.path, 'ld_so_cache', unknownBefore);
    }
    for (const c of seg.dirs) {
      const subs = seg.noHwcaps ? [] : input.hwcaps ?? loadedSub;
      for (const sub of subs) {
        const path = joinPath(c.dir, sub + '/' + name);
        const abs = absolute(input, path);
        if (abs === undefined) continue;
        if (matches(input, abs)) return result(c, unknownBefore, sub);
        // Subdirectories guessed from the loaded path were only tried to find it.
        if (input.hwcaps && input.exists?.(abs)) return shadowed(abs, c.step, unknownBefore);
      }
      const abs = absolute(input, joinPath(c.dir, name));
      if (abs === undefined) continue;
      if (input.exists && !input.exists(abs)) continue;
      if (matches(input, abs)) return result(c, unknownBefore);
      if (input.exists) return shadowed(abs, c.step, unknownBefore);
    }
  }
  if (unknownBefore) return { step: 'ld_library_path', inferred: true, reason: 'LD_LIBRARY_PATH unknown and no other step finds the object' };
  return { reason: `no search step finds ${name} as ${input.loadedPath}` };
}

function result(c: { step: SearchStep; dir: string; requester?: string }, inferred: boolean, hwcaps?: string): SearchResult {
  const out: SearchResult = { step: c.step, dir: c.dir };
  if (hwcaps) out.hwcaps = hwcaps;
  if (c.requester !== undefined) out.requester = c.requester;
  if (inferred) {
    out.inferred = true;
    out.reason = 'LD_LIBRARY_PATH unknown: it could have been searched first';
  }
  return out;
}

function shadowed(path: string, step: SearchStep, unknownBefore: boolean): SearchResult {
  if (unknownBefore) {
    return { step: 'ld_library_path', inferred: true, reason: `LD_LIBRARY_PATH unknown; without it ${path} (${step}) would have been loaded` };
  }
  return { reason: `${path} (${step}) comes first in the search and is another file` };
}

/** The cache's answer: a match, the (other) file it would open, or undefined when it gives none. */
function cacheCandidates(input: SearchInput, paths: readonly string[], nodeflibDirs?: readonly string[]): { match: boolean; path: string } | undefined {
  const usable = nodeflibDirs ? paths.filter((p) => !nodeflibDirs.some((d) => p.startsWith(d.endsWith('/') ? d : d + '/'))) : paths;
  // glibc-hwcaps entries: which one ld.so takes depends on the CPU, so any of them may be the
  // answer; after them, only the first ordinary entry is ever used.
  let ordinary: string | undefined;
  for (const p of usable) {
    if (p.includes('/glibc-hwcaps/')) {
      if (matches(input, p)) return { match: true, path: p };
    } else if (ordinary === undefined) ordinary = p;
  }
  if (ordinary === undefined) return undefined;
  if (input.exists && !input.exists(ordinary)) return undefined;
  if (matches(input, ordinary)) return { match: true, path: ordinary };
  return input.exists ? { match: false, path: ordinary } : undefined;
}

function glibcSegments(input: SearchInput, name: string, chain: readonly SearchObject[]): Segment[] {
  const segs: Segment[] = [];
  const exe = input.executable;
  const isExe = (o: SearchObject) => o === exe || (exe !== undefined && o.path === exe.path);
  const loader = chain[0];
  if (!loader || loader.runpath === undefined) {
    let didMain = false;
    for (const o of chain) {
      if (o.rpath !== undefined && o.runpath === undefined) segs.push({ dirs: glibcDirs(input, o.rpath, o, 'rpath', isExe(o)) });
      didMain ||= isExe(o);
    }
    if (exe && !didMain && exe.rpath !== undefined && exe.runpath === undefined) segs.push({ dirs: glibcDirs(input, exe.rpath, exe, 'rpath', true) });
  }
  if (!input.secure) {
    if (input.ldLibraryPath === undefined) segs.push({ unknownLlp: true });
    else if (input.ldLibraryPath !== '') {
      // DSTs in LD_LIBRARY_PATH expand against the main program.
      const main = exe ?? chain[chain.length - 1];
      const dirs = splitGlibc(input.ldLibraryPath, /[:;]/)
        .map((e) => (main ? expandGlibc(e, main, input, true) : e.includes('$') ? undefined : e))
        .filter((d): d is string => d !== undefined)
        .map((d): Candidate => ({ step: 'ld_library_path', dir: d }));
      segs.push({ dirs });
    }
  }
  if (loader?.runpath !== undefined) segs.push({ dirs: glibcDirs(input, loader.runpath, loader, 'runpath', isExe(loader)) });
  const nodeflib = (loader ?? exe)?.nodeflib === true;
  if (input.cache) segs.push(nodeflib ? { cache: input.cache(name), nodeflibDirs: input.defaultDirs } : { cache: input.cache(name) });
  if (!nodeflib) segs.push({ dirs: input.defaultDirs.map((d): Candidate => ({ step: 'default_dirs', dir: trimSlashes(d) })) });
  return segs;
}

/** One DT_RPATH/DT_RUNPATH of `o` as glibc's fillin_rpath expands it. */
function glibcDirs(input: SearchInput, value: string, o: SearchObject, tag: 'rpath' | 'runpath', executable: boolean): Candidate[] {
  if (value === '') return []; // decompose_rpath ignores an empty string
  const out: Candidate[] = [];
  for (const element of splitGlibc(value, /:/)) {
    const dir = expandGlibc(element, o, input, executable);
    if (dir === undefined) continue;
    out.push({ step: hasOrigin(element) ? 'origin' : tag, dir, requester: o.path });
  }
  return out;
}

/** Splits a glibc path list; empty elements stay (they name the working directory). */
function splitGlibc(value: string, sep: RegExp): string[] {
  return value.split(sep).map((e) => (e === '' ? '' : trimSlashes(e)));
}

function hasOrigin(s: string): boolean {
  return /\$(ORIGIN(?![A-Za-z0-9_])|\{ORIGIN\})/.test(s);
}

/**
 * glibc's `_dl_dst_substitute` for one element: `$ORIGIN`, `$PLATFORM`, `$LIB` (bare or in braces,
 * a bare name ending at a non-identifier character); other `$` sequences stay literal. Undefined
 * when the element is dropped: a token whose value is unknown (glibc drops it only when it has no
 * value; here the value may just not have been captured), or AT_SECURE rules — `$ORIGIN` only as the
 * whole first component, and for the executable only when the result lies in a trusted (system)
 * directory, since the executable's path is chosen by whoever called execve.
 */
function expandGlibc(element: string, o: SearchObject, input: SearchInput, executable: boolean): string | undefined {
  if (!element.includes('$')) return element;
  let out = '';
  let usedOrigin = false;
  for (let i = 0; i < element.length; ) {
    if (element[i] !== '$') {
      out += element[i++];
      continue;
    }
    const m = /^\$(?:\{(ORIGIN|PLATFORM|LIB)\}|(ORIGIN|PLATFORM|LIB)(?![A-Za-z0-9_]))/.exec(element.slice(i));
    if (!m) {
      out += '$';
      i++;
      continue;
    }
    const token = m[1] ?? m[2];
    let value: string | undefined;
    if (token === 'ORIGIN') {
      const atStart = i === 0 && (element.length === m[0].length || element[m[0].length] === '/');
      if (input.secure && !atStart) return undefined;
      value = dirOf(o.path);
      usedOrigin = true;
    } else value = token === 'LIB' ? input.lib : input.platform;
    if (value === undefined) return undefined;
    out += value;
    i += m[0].length;
  }
  if (usedOrigin && input.secure && executable && !trusted(out, input.defaultDirs)) return undefined;
  return out;
}

/** is_trusted_path_normalize: the normalised path starts with a system directory. */
function trusted(path: string, systemDirs: readonly string[]): boolean {
  const n = normalise(path) + '/';
  return systemDirs.some((d) => n.startsWith(trimSlashes(d) === '/' ? '/' : trimSlashes(d) + '/'));
}

function muslSegments(input: SearchInput, chain: readonly SearchObject[]): Segment[] {
  const segs: Segment[] = [];
  const split = (v: string) => v.split(/[:\n]/).filter((e) => e !== '');
  if (!input.secure) {
    if (input.ldLibraryPath === undefined) segs.push({ unknownLlp: true });
    else segs.push({ dirs: split(input.ldLibraryPath).map((d): Candidate => ({ step: 'ld_library_path', dir: d })), noHwcaps: true });
  }
  const exe = input.executable;
  for (const o of chain) {
    // decode_dyn lets DT_RUNPATH overwrite DT_RPATH; both are searched the same way.
    const tag = o.runpath !== undefined ? 'runpath' : 'rpath';
    const value = o.runpath ?? o.rpath;
    if (value === undefined) continue;
    const isExe = o === exe || (exe !== undefined && o.path === exe.path);
    const expanded = muslExpand(value, o, input.secure === true, isExe);
    if (expanded === undefined) continue;
    const origin = value.includes('$');
    segs.push({ dirs: split(expanded).map((d): Candidate => ({ step: origin ? 'origin' : tag, dir: d, requester: o.path })), noHwcaps: true });
  }
  segs.push({ dirs: input.defaultDirs.map((d): Candidate => ({ step: 'default_dirs', dir: d })), noHwcaps: true });
  return segs;
}

/**
 * musl's fixup_rpath: every `$` must start `$ORIGIN` or `${ORIGIN}` (else the whole rpath is
 * ignored); the main program's `$ORIGIN` is not expanded under AT_SECURE (its path is the caller's
 * choice), nor a relative origin.
 */
function muslExpand(value: string, o: SearchObject, secure: boolean, executable: boolean): string | undefined {
  if (!value.includes('$')) return value;
  for (let i = value.indexOf('$'); i >= 0; i = value.indexOf('$', i + 1)) {
    if (!value.startsWith('$ORIGIN', i) && !value.startsWith('${ORIGIN}', i)) return undefined;
  }
  if (secure && executable) return undefined;
  const slash = o.path.lastIndexOf('/');
  const origin = slash < 0 ? '.' : o.path.slice(0, slash);
  if (secure && !origin.startsWith('/')) return undefined;
  return value.replace(/\$\{ORIGIN\}|\$ORIGIN/g, () => origin);
}

/**
 * Subdirectories of the loaded file's directory that look like hwcaps subdirectories, longest
 * first: `glibc-hwcaps/<name>`, or up to four trailing legacy names (`tls/haswell/x86_64`).
 */
function hwcapsSubdirsOf(loadedPath: string): string[] {
  const parts = loadedPath.split('/');
  parts.pop(); // the file name
  const n = parts.length;
  if (n >= 3 && parts[n - 2] === 'glibc-hwcaps') return [`glibc-hwcaps/${parts[n - 1]}`];
  const subs: string[] = [];
  for (let k = 1; k <= MAX_LEGACY_LEVELS && k < n && LEGACY_HWCAPS.has(parts[n - k]!); k++) subs.unshift(parts.slice(n - k).join('/'));
  return subs;
}

/** The candidate as an absolute path (relative ones against the working directory), if knowable. */
function absolute(input: SearchInput, p: string): string | undefined {
  if (p.startsWith('/')) return p;
  return input.cwd === undefined ? undefined : joinPath(input.cwd, p);
}

function matches(input: SearchInput, abs: string): boolean {
  return input.canonical(abs) === input.loadedPath;
}

function joinPath(dir: string, name: string): string {
  if (dir === '') return name;
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

function dirOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '.' : i === 0 ? '/' : p.slice(0, i);
}

function trimSlashes(d: string): string {
  let e = d.length;
  while (e > 1 && d[e - 1] === '/') e--;
  return d.slice(0, e);
}

/** `.`, `..` and duplicate slashes removed, textually (as glibc's trusted-path check does). */
function normalise(p: string): string {
  const out: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') out.pop();
    else out.push(c);
  }
  return '/' + out.join('/');
}
