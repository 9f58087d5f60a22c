/**
 * Provenance of a mapped file: the installed package that put it on disk, its version and the
 * digest the package database recorded for that file, read from the package database of the root
 * the process sees (the host's, a container's pinned root, a chroot).
 *
 * Records name a file by its canonical path (what the kernel printed), while package databases
 * name it by the path in the package: on a merged-/usr Debian, dpkg lists
 * `/lib/x86_64-linux-gnu/libc.so.6` but the kernel maps `/usr/lib/x86_64-linux-gnu/libc.so.6`,
 * because `/lib` is a symlink to `usr/lib` that no package owns. The index is therefore keyed by
 * canonical path, and canonicalisation is done once per listed directory (a few thousand) rather
 * than once per listed file (tens or hundreds of thousands).
 *
 * Supported databases:
 * - dpkg (`/var/lib/dpkg`): `status` says which packages are installed; `info/<id>.list` lists
 *   every path a package installed; `info/<id>.md5sums` the md5 of its regular files; `diversions`
 *   which paths are installed under another name.
 * - apk (`/lib/apk/db/installed`): one text file with every package, its files and their sha1.
 * - rpm (`/var/lib/rpm`, `/usr/lib/sysimage/rpm`): detected and reported, not read (its databases
 *   are BerkeleyDB, NDB or SQLite files).
 *
 * Every file-system access goes through {@link RootFs}, so only soload's host layer touches the
 * system and the parsers run unchanged over fixture trees.
 */
import * as fs from 'node:fs';

/** The package managers whose databases are recognised. */
export type PackageManager = 'dpkg' | 'apk' | 'rpm';

/** A digest a package database recorded for one file. */
export interface PackageDigest {
  algorithm: 'md5' | 'sha1' | 'sha256';
  /** Lower-case hexadecimal. */
  hex: string;
}

/** The package that owns a file, as its root's package database says. */
export interface PackageFile {
  name: string;
  version: string;
  manager: PackageManager;
  /** Package architecture (`amd64`, `all`, `x86_64`), when the database records one. */
  arch?: string;
  /** The database's digest of this file (not of the package); absent for symlinks in dpkg, etc. */
  digest?: PackageDigest;
}

/** Read-only access to the files of one root; paths are absolute inside the root. */
export interface RootFs {
  /** Reads a file of the root (path absolute inside the root), undefined when absent/unreadable. */
  readFile(p: string): Buffer | undefined;
  /** Directory entries (names), undefined when absent. */
  readdir(p: string): string[] | undefined;
  /** mtime in ms + size, undefined when absent. Used to notice that the database changed. */
  stat(p: string): { mtimeMs: number; size: number } | undefined;
  /** Canonical form of an absolute path inside the root (symlinks of the root resolved, e.g. Debian merged-/usr: /lib -> usr/lib). */
  canonical(p: string): string;
}

/**
 * The real-system {@link RootFs}: node:fs over `prefix + p`.
 *
 * Paths are canonicalised with `canonical` (which must resolve inside the root) before they are
 * opened: a container's root may hold absolute symlinks (`/var/lib/dpkg -> /...`) that the kernel
 * would otherwise follow against soload's own root when `prefix + p` is opened. Files are opened
 * non-blocking without following a last symlink, and only regular files are read, so a FIFO
 * planted where a database file belongs cannot stall the agent.
 */
export function nodeRootFs(prefix: string, canonical: (p: string) => string): RootFs {
  const at = (p: string): string => prefix + canonical(p);
  const flags = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW;
  return {
    readFile(p) {
      let fd: number | undefined;
      try {
        fd = fs.openSync(at(p), flags);
        return fs.fstatSync(fd).isFile() ? fs.readFileSync(fd) : undefined;
      } catch {
        return undefined;
      } finally {
        if (fd !== undefined) fs.closeSync(fd);
      }
    },
    readdir(p) {
      try {
        return fs.readdirSync(at(p));
      } catch {
        return undefined;
      }
    },
    stat(p) {
      try {
        const s = fs.statSync(at(p));
        return { mtimeMs: s.mtimeMs, size: s.size };
      } catch {
        return undefined;
      }
    },
    canonical,
  };
}

/** Options of {@link PackageIndex}. */
export interface PackageIndexOptions {
  /** Entries (listed paths) indexed at most; the rest are dropped and status() says so. Default 1,000,000. */
  maxFiles?: number;
  /** Clock in ms (injected by tests). Default Date.now. */
  now?: () => number;
  /** How often, at most, lookups check whether the database changed (ms). Default 5000. */
  recheckMs?: number;
  /** Packages whose md5sums are kept parsed (least recently used dropped). Default 64. */
  maxDigestPackages?: number;
  /** Database files larger than this are not read (bytes). Default 64 MiB. */
  maxFileBytes?: number;
}

/** What {@link PackageIndex.status} says about a root's package database. */
export interface PackageIndexStatus {
  /** The database found in the root; undefined when there is none. */
  manager: PackageManager | undefined;
  /** True when lookups can answer (the database was read). */
  indexed: boolean;
  /** Paths in the index. */
  files: number;
  /** True when `maxFiles` was reached and some listed paths were left out. */
  truncated: boolean;
  /** Why the index is empty or incomplete. */
  reason?: string;
}

/** Counters of a {@link PackageIndex}. */
export interface PackageIndexStats {
  /** Paths in the index (directories that hold indexed files are not counted). */
  files: number;
  /** Installed packages read from the database. */
  packages: number;
  /** Distinct canonical directories. */
  directories: number;
  /** Index builds after the first (the database changed). */
  rebuilds: number;
  /**
   * Lines, stanzas or files skipped as malformed in the current index (and the md5sums read for
   * it), plus lookups and builds abandoned on an error of the RootFs.
   */
  malformed: number;
  /** Listed paths placed under their diverted name (dpkg-divert). */
  diverted: number;
  /** md5sums files parsed (lazily, per package). */
  digestLoads: number;
  /** Duration of the last build (ms, from `now`). */
  buildMs: number;
  truncated: boolean;
}

const DPKG = '/var/lib/dpkg';
const DPKG_STATUS = DPKG + '/status';
const DPKG_INFO = DPKG + '/info';
const DPKG_DIVERSIONS = DPKG + '/diversions';
const APK_INSTALLED = '/lib/apk/db/installed';
const RPM_DIRS = ['/var/lib/rpm', '/usr/lib/sysimage/rpm'];

/** Linux PATH_MAX: a longer listed path cannot be a file the kernel opened. */
const PATH_MAX = 4096;
/** Longest status/installed line read (long Depends/Breaks lines are a few kB). */
const MAX_FIELD_LINE = 1 << 20;

/**
 * dpkg states in which the files of the stanza's Version are on disk and its .list describes them.
 * Wider than `installed`: a package waiting for triggers or configuration (during an upgrade) has
 * its files unpacked, and libraries are loaded from them. `half-installed` (partly old, partly new),
 * `config-files` and `not-installed` are left out. Any want (install, hold, deinstall) counts, since
 * it says what the administrator asked for, not what is on disk; the flag must be `ok`.
 */
const DPKG_ON_DISK = new Set(['installed', 'triggers-pending', 'triggers-awaited', 'half-configured', 'unpacked']);

/** Debian policy's package names; also keeps `../` out of the info/ file names built from them. */
const DPKG_NAME = /^[a-z0-9][a-z0-9+.-]+$/;
const DPKG_ARCH = /^[a-z0-9][a-z0-9-]*$/;
/** A directory spelling that could climb or alias (`.`, `..`, `//`), refused rather than resolved. */
const BAD_DIR = /(^|\/)\.\.?(\/|$)|\/\//;
const MD5_HEX = /^[0-9a-f]{32}$/;

/** One installed package; shared by all its entries. */
interface Pkg {
  name: string;
  version: string;
  arch?: string;
  /** dpkg: the info/ file stem (`libc6:amd64` for Multi-Arch: same, else `name`). */
  id?: string;
}

/** An apk entry: the package and the raw `Z:` checksum, decoded on lookup. */
interface ApkEntry {
  pkg: Pkg;
  z: string;
}

type Owner = Pkg | ApkEntry;

/** Calls `line(start, end)` for every line of `buf` (CR of CRLF dropped); `bad()` for over-long or NUL-holding ones. */
function eachLine(buf: Buffer, maxLine: number, line: (start: number, end: number) => void, bad: () => void): void {
  let pos = 0;
  // The next NUL at or after pos, searched again only once passed: linear over the whole buffer.
  let nul = buf.indexOf(0);
  if (nul < 0) nul = Infinity;
  while (pos < buf.length) {
    let nl = buf.indexOf(0x0a, pos);
    if (nl < 0) nl = buf.length;
    let end = nl;
    if (end > pos && buf[end - 1] === 0x0d) end--;
    if (nul < pos) {
      nul = buf.indexOf(0, pos);
      if (nul < 0) nul = Infinity;
    }
    if (end - pos > maxLine || nul < end) bad();
    else line(pos, end);
    pos = nl + 1;
  }
}

function joinPath(dir: string, base: string): string {
  return dir === '/' ? '/' + base : dir + '/' + base;
}

function dirOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

function baseOf(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/** Hex of an apk checksum: `Q1`+base64 is sha1, `Q2`+base64 sha256, 32 hex digits (old apk) md5. */
function apkDigest(z: string): PackageDigest | undefined {
  if (z.startsWith('Q1') || z.startsWith('Q2')) {
    const bytes = Buffer.from(z.slice(2), 'base64');
    const want = z[1] === '1' ? 20 : 32;
    if (bytes.length !== want) return undefined;
    return { algorithm: want === 20 ? 'sha1' : 'sha256', hex: bytes.toString('hex') };
  }
  return MD5_HEX.test(z) ? { algorithm: 'md5', hex: z } : undefined;
}

/**
 * The package database of one root, indexed by canonical path.
 *
 * Nothing is read until the first lookup; afterwards, at most every `recheckMs`, a lookup stats the
 * database files (dpkg `status`, `info/`, `diversions`; apk `installed`; the rpm directories) and
 * rebuilds the index when one of them changed — dpkg rewrites `status` on every install or removal.
 * A lookup never throws: malformed input is skipped and counted in {@link stats}.
 *
 * The index is one map per canonical directory, from base name to an interned package record, so
 * directory strings are stored once and a listed path costs one map entry and its base name. The
 * strings are cut out of the database buffers with `toString(start, end)` so that no sliced string
 * keeps a whole .list file alive.
 *
 * dpkg-divert: a path diverted by package D (`diversions`: from, to, D) is installed at `to` when any
 * other package ships it (`:` = a local diversion, applied to every package), so such an entry is
 * indexed under `to`, while D's own file stays at `from`. The md5sums of the diverted file are found
 * the same way. Directory entries are dropped: a listed path that is the canonical directory of
 * other indexed paths is a directory, shared by many packages and never a loaded object.
 */
export class PackageIndex {
  private readonly rootFs: RootFs;
  private readonly maxFiles: number;
  private readonly now: () => number;
  private readonly recheckMs: number;
  private readonly maxDigestPackages: number;
  private readonly maxFileBytes: number;

  private built = false;
  private checkedAt = 0;
  private fingerprint = '';
  private manager: PackageManager | undefined;
  private indexed = false;
  private reason: string | undefined;
  private truncated = false;
  private entries = 0;
  /** canonical directory → base name → owner. */
  private dirs = new Map<string, Map<string, Owner>>();
  /** Directory as the database spells it → canonical directory ('' = refused). */
  private canonDirs = new Map<string, string>();
  /** dpkg diversions: from → [to, diverting package or ':']. */
  private diversions = new Map<string, [string, string]>();
  private divertedBases = new Set<string>();
  /** Parsed md5sums per package (canonical path → hex), least recently used first. */
  private digests = new Map<Pkg, Map<string, string>>();
  private readonly counters = { packages: 0, rebuilds: 0, malformed: 0, diverted: 0, digestLoads: 0, buildMs: 0 };

  constructor(rootFs: RootFs, opts: PackageIndexOptions = {}) {
    this.rootFs = rootFs;
    this.maxFiles = opts.maxFiles ?? 1_000_000;
    this.now = opts.now ?? Date.now;
    this.recheckMs = opts.recheckMs ?? 5000;
    this.maxDigestPackages = opts.maxDigestPackages ?? 64;
    this.maxFileBytes = opts.maxFileBytes ?? 64 * 1024 * 1024;
  }

  /** The package that installed the file at `canonicalPath` (absolute, canonical in the root), with its recorded digest. */
  lookup(canonicalPath: string): PackageFile | undefined {
    try {
      this.refresh();
      if (!this.indexed || !canonicalPath.startsWith('/')) return undefined;
      const dir = dirOf(canonicalPath);
      const owner = this.dirs.get(dir)?.get(canonicalPath.slice(dir === '/' ? 1 : dir.length + 1));
      if (owner === undefined) return undefined;
      const pkg = 'pkg' in owner ? owner.pkg : owner;
      const out: PackageFile = { name: pkg.name, version: pkg.version, manager: this.manager! };
      if (pkg.arch !== undefined) out.arch = pkg.arch;
      const digest = 'pkg' in owner ? apkDigest(owner.z) : this.md5(pkg, canonicalPath);
      if (digest) out.digest = digest;
      return out;
    } catch {
      // A RootFs that throws, or a bug: provenance is optional, the record still goes out.
      this.counters.malformed++;
      return undefined;
    }
  }

  /** Which database the root has and whether it is indexed (reads it if not done yet). */
  status(): PackageIndexStatus {
    try {
      this.refresh();
    } catch {
      this.counters.malformed++;
    }
    const s: PackageIndexStatus = { manager: this.manager, indexed: this.indexed, files: this.entries, truncated: this.truncated };
    if (this.reason !== undefined) s.reason = this.reason;
    return s;
  }

  /** Counters of the current index (does not read the database). */
  stats(): PackageIndexStats {
    return { ...this.counters, files: this.entries, directories: this.dirs.size, truncated: this.truncated };
  }

  private refresh(): void {
    const t = this.now();
    if (this.built && t - this.checkedAt < this.recheckMs) return;
    this.checkedAt = t;
    const fp = this.stamp();
    if (this.built && fp === this.fingerprint) return;
    if (this.built) this.counters.rebuilds++;
    this.fingerprint = fp;
    this.built = true;
    try {
      this.build();
    } catch (e) {
      // A read that failed (EIO, a root whose fd went stale): empty until the next check, which
      // builds again because the fingerprint no longer matches.
      this.counters.malformed++;
      this.fingerprint = '';
      this.indexed = false;
      this.reason = `reading the package database failed: ${(e as Error).message}`;
    }
    this.counters.buildMs = this.now() - t;
  }

  /** mtime/size of every file whose change means a new index (also notices a database appearing). */
  private stamp(): string {
    let s = '';
    for (const p of [DPKG_STATUS, DPKG_INFO, DPKG_DIVERSIONS, APK_INSTALLED, ...RPM_DIRS]) {
      const st = this.rootFs.stat(p);
      s += st ? `${st.mtimeMs}:${st.size};` : '-;';
    }
    return s;
  }

  private build(): void {
    this.manager = undefined;
    this.indexed = false;
    this.reason = undefined;
    this.truncated = false;
    this.entries = 0;
    this.dirs = new Map();
    this.canonDirs = new Map();
    this.diversions = new Map();
    this.divertedBases = new Set();
    this.digests = new Map();
    Object.assign(this.counters, { packages: 0, malformed: 0, diverted: 0 });
    if (this.rootFs.stat(DPKG_STATUS)) {
      this.manager = 'dpkg';
      this.buildDpkg();
    } else if (this.rootFs.stat(APK_INSTALLED)) {
      this.manager = 'apk';
      this.buildApk();
    } else if (RPM_DIRS.some((d) => this.rootFs.stat(d))) {
      this.manager = 'rpm';
      this.reason = 'rpm databases are not read yet';
      return;
    } else {
      this.reason = 'no package database (dpkg, apk or rpm) in this root';
      return;
    }
    this.dropDirectoryEntries();
    if (this.truncated) this.reason = `index truncated at maxFiles=${this.maxFiles} entries`;
  }

  /** A database file, unless it is missing or over `maxFileBytes` (counted as malformed). */
  private read(p: string): Buffer | undefined {
    const st = this.rootFs.stat(p);
    if (st && st.size > this.maxFileBytes) {
      this.counters.malformed++;
      return undefined;
    }
    const b = this.rootFs.readFile(p);
    if (b && b.length > this.maxFileBytes) {
      this.counters.malformed++;
      return undefined;
    }
    return b;
  }

  private canonicalDir(raw: string): string {
    let c = this.canonDirs.get(raw);
    if (c !== undefined) return c;
    if (!raw.startsWith('/') || BAD_DIR.test(raw)) {
      c = '';
    } else {
      try {
        c = this.rootFs.canonical(raw);
      } catch {
        c = raw;
      }
      if (!c.startsWith('/')) c = raw;
      if (c.length > 1 && c.endsWith('/')) c = c.slice(0, -1);
    }
    this.canonDirs.set(raw, c);
    return c;
  }

  /** Adds one listed path; false once `maxFiles` is reached. */
  private add(rawDir: string, base: string, owner: Owner): boolean {
    if (base === '' || base === '.' || base === '..') {
      this.counters.malformed++;
      return true;
    }
    const dir = this.canonicalDir(rawDir);
    if (dir === '') {
      this.counters.malformed++;
      return true;
    }
    let bucket = this.dirs.get(dir);
    if (bucket === undefined) {
      bucket = new Map();
      this.dirs.set(dir, bucket);
    }
    // The first owner wins: duplicates are directories (dropped later) or the shared files of
    // Multi-Arch: same packages (identical in every architecture's package).
    if (bucket.has(base)) return true;
    if (this.entries >= this.maxFiles) {
      this.truncated = true;
      return false;
    }
    bucket.set(base, owner);
    this.entries++;
    return true;
  }

  /** Where a path that `pkg` ships really is, after dpkg-divert. */
  private diverted(path: string, base: string, pkg: string): string | undefined {
    if (!this.divertedBases.has(base)) return undefined;
    const d = this.diversions.get(path);
    return d && d[1] !== pkg ? d[0] : undefined;
  }

  private dropDirectoryEntries(): void {
    for (const dir of this.dirs.keys()) {
      if (dir === '/') continue;
      const parent = this.dirs.get(dirOf(dir));
      if (parent?.delete(baseOf(dir))) this.entries--;
    }
    for (const [dir, bucket] of this.dirs) if (bucket.size === 0) this.dirs.delete(dir);
  }

  // --- dpkg -------------------------------------------------------------------------------------

  private buildDpkg(): void {
    const status = this.read(DPKG_STATUS);
    if (!status) {
      this.reason = 'dpkg status is unreadable or too large';
      return;
    }
    const pkgs = this.parseStatus(status);
    this.counters.packages = pkgs.length;
    this.parseDiversions();
    // One readdir instead of probing `name:arch.list` and `name.list` for every package.
    const names = this.rootFs.readdir(DPKG_INFO);
    const info = names ? new Set(names) : undefined;
    for (const p of pkgs) {
      // Multi-Arch: same packages are co-installable per architecture, so dpkg names their info
      // files `name:arch`; every other package keeps the plain `name` (dpkg ≥ 1.16.2 layout).
      const ids = p.arch !== undefined ? [p.name + ':' + p.arch, p.name] : [p.name];
      let list: Buffer | undefined;
      for (const id of ids) {
        if (info && !info.has(id + '.list')) continue;
        list = this.read(`${DPKG_INFO}/${id}.list`);
        if (list) {
          p.id = id;
          break;
        }
      }
      if (!list) continue; // e.g. a package with no files (metapackage lists only "/.").
      if (!this.parseList(list, p)) break;
    }
    this.indexed = true;
  }

  /** Installed packages of a status file (deb822 stanzas separated by blank lines). */
  private parseStatus(buf: Buffer): Pkg[] {
    const out: Pkg[] = [];
    let f: Record<string, string> = {};
    let fields = 0;
    const end = (): void => {
      if (fields === 0) return;
      const st = (f.status ?? '').split(/\s+/);
      const onDisk = st.length === 3 && st[1] === 'ok' && DPKG_ON_DISK.has(st[2]);
      if (f.package === undefined || !DPKG_NAME.test(f.package) || (onDisk && !f.version)) this.counters.malformed++;
      else if (onDisk) {
        const p: Pkg = { name: f.package, version: f.version };
        // The arch names an info/ file only for Multi-Arch: same packages; it is reported for all.
        const arch = f.architecture;
        if (arch !== undefined && DPKG_ARCH.test(arch)) p.arch = arch;
        out.push(p);
      }
      f = {};
      fields = 0;
    };
    eachLine(
      buf,
      MAX_FIELD_LINE,
      (s, e) => {
        if (s === e || buf[s] === 0x20 || buf[s] === 0x09) {
          // Continuation lines (Description, Conffiles) are not needed; a blank one ends the stanza.
          if (buf.toString('latin1', s, e).trim() === '') end();
          return;
        }
        const line = buf.toString('utf8', s, e);
        const colon = line.indexOf(':');
        if (colon <= 0) {
          this.counters.malformed++;
          return;
        }
        fields++;
        const key = line.slice(0, colon).toLowerCase();
        if (key === 'package' || key === 'status' || key === 'version' || key === 'architecture') f[key] = line.slice(colon + 1).trim();
      },
      () => this.counters.malformed++,
    );
    end(); // a status cut short after its last stanza's fields
    return out;
  }

  /** `diversions`: triples of lines (from, to, package or ':'). */
  private parseDiversions(): void {
    const buf = this.read(DPKG_DIVERSIONS);
    if (!buf) return;
    const lines: string[] = [];
    eachLine(
      buf,
      PATH_MAX,
      (s, e) => {
        if (e > s) lines.push(buf.toString('utf8', s, e));
      },
      () => this.counters.malformed++,
    );
    if (lines.length % 3 !== 0) this.counters.malformed++;
    for (let i = 0; i + 2 < lines.length; i += 3) {
      const [from, to, by] = [lines[i], lines[i + 1], lines[i + 2]];
      if (!from.startsWith('/') || !to.startsWith('/')) {
        this.counters.malformed++;
        continue;
      }
      this.diversions.set(from, [to, by]);
      this.divertedBases.add(baseOf(from));
    }
  }

  /** Indexes one info/<id>.list; false once `maxFiles` is reached. */
  private parseList(buf: Buffer, p: Pkg): boolean {
    let full = true;
    // Lists are sorted, so a run of lines shares a directory: its string is made once per run.
    let prevStart = 0;
    let prevLen = -1;
    let prevDir = '';
    eachLine(
      buf,
      PATH_MAX,
      (s, e) => {
        if (!full || s === e) return;
        if (buf[s] !== 0x2f) {
          this.counters.malformed++;
          return;
        }
        const slash = buf.lastIndexOf(0x2f, e - 1);
        if (slash === s && e - s === 2 && buf[s + 1] === 0x2e) return; // "/.", dpkg's root entry
        const len = slash - s;
        let dir: string;
        if (len === prevLen && buf.compare(buf, prevStart, prevStart + len, s, slash) === 0) dir = prevDir;
        else {
          dir = len === 0 ? '/' : buf.toString('utf8', s, slash);
          prevStart = s;
          prevLen = len;
          prevDir = dir;
        }
        const base = buf.toString('utf8', slash + 1, e);
        const to = this.diverted(joinPath(dir, base), base, p.name);
        if (to !== undefined) {
          this.counters.diverted++;
          full = this.add(dirOf(to), baseOf(to), p);
        } else full = this.add(dir, base, p);
      },
      () => this.counters.malformed++,
    );
    return full;
  }

  /** The md5 dpkg recorded for a file of `pkg`, parsing its md5sums on first use. */
  private md5(pkg: Pkg, canonicalPath: string): PackageDigest | undefined {
    let sums = this.digests.get(pkg);
    if (sums) {
      this.digests.delete(pkg);
    } else {
      sums = this.parseMd5sums(pkg);
      if (this.digests.size >= this.maxDigestPackages) this.digests.delete(this.digests.keys().next().value as Pkg);
    }
    this.digests.set(pkg, sums);
    const hex = sums.get(canonicalPath);
    return hex === undefined ? undefined : { algorithm: 'md5', hex };
  }

  /** info/<id>.md5sums: `<md5>  <path without the leading slash>` per regular file (not conffiles). */
  private parseMd5sums(pkg: Pkg): Map<string, string> {
    const sums = new Map<string, string>();
    if (pkg.id === undefined) return sums;
    const buf = this.read(`${DPKG_INFO}/${pkg.id}.md5sums`);
    if (!buf) return sums;
    this.counters.digestLoads++;
    eachLine(
      buf,
      PATH_MAX + 40,
      (s, e) => {
        if (s === e) return;
        const line = buf.toString('utf8', s, e);
        const m = /^([0-9a-fA-F]{32}) [ *]?(.+)$/.exec(line);
        if (!m) {
          this.counters.malformed++;
          return;
        }
        const path = m[2].startsWith('/') ? m[2] : '/' + m[2];
        const to = this.diverted(path, baseOf(path), pkg.name) ?? path;
        const dir = this.canonicalDir(dirOf(to));
        if (dir === '') this.counters.malformed++;
        else sums.set(joinPath(dir, baseOf(to)), m[1].toLowerCase());
      },
      () => this.counters.malformed++,
    );
    return sums;
  }

  // --- apk --------------------------------------------------------------------------------------

  /**
   * /lib/apk/db/installed: one stanza per package, blank-line separated, `X:value` lines. P: name,
   * V: version, A: arch; F: a directory (no leading slash) that the following R: lines (file base
   * names) are in; Z: after an R: is that file's checksum (a: and M: lines, permissions, may come
   * in between). C: is the package's own checksum, not a file's.
   */
  private buildApk(): void {
    const buf = this.read(APK_INSTALLED);
    if (!buf) {
      this.reason = 'apk installed database is unreadable or too large';
      return;
    }
    let name: string | undefined;
    let version: string | undefined;
    let arch: string | undefined;
    let dir = '/';
    let files: [string, string, string | undefined][] = [];
    let lines = 0;
    let full = true;
    const end = (): void => {
      if (lines > 0 && (name === undefined || version === undefined)) this.counters.malformed++;
      else if (lines > 0) {
        const pkg: Pkg = { name: name!, version: version! };
        if (arch !== undefined) pkg.arch = arch;
        this.counters.packages++;
        for (const [d, b, z] of files) {
          if (!full) break;
          full = this.add(d, b, z === undefined ? pkg : { pkg, z });
        }
      }
      name = version = arch = undefined;
      dir = '/';
      files = [];
      lines = 0;
    };
    eachLine(
      buf,
      MAX_FIELD_LINE,
      (s, e) => {
        if (s === e) return end();
        const line = buf.toString('utf8', s, e);
        if (line[1] !== ':') {
          this.counters.malformed++;
          return;
        }
        lines++;
        const v = line.slice(2);
        switch (line[0]) {
          case 'P':
            name = v;
            break;
          case 'V':
            version = v;
            break;
          case 'A':
            arch = v;
            break;
          case 'F':
            dir = '/' + v;
            if (dir.length > 1 && dir.endsWith('/')) dir = dir.slice(0, -1);
            break;
          case 'R':
            if (v.includes('/') || v.length > PATH_MAX) this.counters.malformed++;
            else files.push([dir, v, undefined]);
            break;
          case 'Z': {
            const last = files[files.length - 1];
            if (last && last[2] === undefined) last[2] = v;
            break;
          }
        }
      },
      () => this.counters.malformed++,
    );
    end();
    this.indexed = true;
  }
}

/** Options of {@link PackageIndexes}. */
export interface PackageIndexesOptions {
  /** Roots kept at most; the least recently used is dropped. Default 64. */
  maxRoots?: number;
  /** Options of every index made. */
  index?: PackageIndexOptions;
}

/** One {@link PackageIndex} per root id, bounded (least recently used roots dropped). */
export class PackageIndexes {
  private readonly roots = new Map<string, PackageIndex>();
  private readonly maxRoots: number;
  private readonly opts: PackageIndexOptions | undefined;

  constructor(opts: PackageIndexesOptions = {}) {
    this.maxRoots = opts.maxRoots ?? 64;
    this.opts = opts.index;
  }

  /** The index of root `id`, made over `make()` the first time (or after it was dropped or evicted). */
  forRoot(id: string, make: () => RootFs): PackageIndex {
    let idx = this.roots.get(id);
    if (idx) this.roots.delete(id);
    else {
      idx = new PackageIndex(make(), this.opts);
      while (this.roots.size >= this.maxRoots) this.roots.delete(this.roots.keys().next().value as string);
    }
    this.roots.set(id, idx);
    return idx;
  }

  /** Forgets root `id` (its view was released); true when it was known. */
  drop(id: string): boolean {
    return this.roots.delete(id);
  }

  /** Roots currently held. */
  get size(): number {
    return this.roots.size;
  }
}
