import fs from 'node:fs';
import path from 'node:path';
import { parseOtelKeyValueList } from '../util/otel-kv';
import { escapePathBytes, fsName } from '../util/path-bytes';
import type { PathStat } from '../enrich/canonical';

/** What /proc tells about one process. Every field may be missing when the process is gone. */
export interface ProcessInfo {
  pid: number;
  ppid?: number;
  exePath?: string;
  exeName?: string;
  commandLine?: string;
  comm?: string;
  uid?: number;
  owner?: string;
  containerId?: string;
  /** service.name the process declares (OTEL_SERVICE_NAME, else service.name of OTEL_RESOURCE_ATTRIBUTES). */
  serviceName?: string;
  /** The process's OTEL_RESOURCE_ATTRIBUTES, parsed and bounded (what it declares; not checked). */
  declaredResource?: Record<string, string>;
  /** Start time in clock ticks since boot (field 22 of stat): tells a reused pid apart. */
  startTicks?: number;
  /** Mount-namespace id: inode of /proc/<pid>/ns/mnt (`mnt:[4026531841]`). */
  mntNs?: number;
  /** Pid-namespace id: inode of /proc/<pid>/ns/pid. */
  pidNs?: number;
  /**
   * The pid as the process's own (innermost) pid namespace numbers it: the last value of `NSpid:`
   * in /proc/<pid>/status. Only set for a nested pid namespace (a container), where it differs.
   */
  nsPid?: number;
  /**
   * The loader's variables of the environment the process was exec'd with (LD_LIBRARY_PATH,
   * LD_PRELOAD; present = set, possibly empty). Undefined when environ could not be read.
   */
  loaderEnv?: LoaderEnv;
  /**
   * AT_SECURE of its auxiliary vector: the kernel ran it setuid/setgid or with file capabilities,
   * so ld.so ignored LD_LIBRARY_PATH and restricted LD_PRELOAD.
   */
  secure?: boolean;
  /** Fields that could not be read (process exited, permission), by attribute name. */
  missing: string[];
}

/** The dynamic loader's environment variables a process started with. */
export interface LoaderEnv {
  ldLibraryPath?: string;
  ldPreload?: string;
}

/** What the security stage needs of a file or directory (stat(2), following symlinks). */
export interface FileFacts {
  kind: 'file' | 'dir' | 'other';
  mode: number;
  uid: number;
  gid: number;
  dev: number;
  ino: number;
  size: number;
  mtimeNs: bigint;
}

/** One line of /proc/<pid>/maps. */
export interface Mapping {
  start: bigint;
  end: bigint;
  perms: string;
  offset: bigint;
  inode: number;
  path: string;
}

/** stat(2) of a file as seen from inside a process's mount namespace. */
export interface FileInfo {
  size: number;
  inode: number;
  dev: number;
}

/**
 * The only reader of /proc. `root` is the proc mount (a fixture tree in tests); `passwdPath` maps
 * uids to names. Every method tolerates the process vanishing between two reads.
 */
export class ProcReader {
  readonly root: string;
  private readonly passwdPath: string;
  private users?: Map<number, string>;

  constructor(root = '/proc', passwdPath = '/etc/passwd') {
    this.root = root;
    this.passwdPath = passwdPath;
  }

  /** Reads what enrichment needs about `pid`. Returns undefined only when /proc/<pid> is absent. */
  readProcess(pid: number): ProcessInfo | undefined {
    const dir = path.join(this.root, String(pid));
    const stat = readText(path.join(dir, 'stat'));
    if (stat === undefined) return undefined;
    const info: ProcessInfo = { pid, missing: [] };
    // comm sits in parentheses and may itself contain ") ": the fields start after the LAST ")".
    const close = stat.lastIndexOf(')');
    if (close > 0) {
      info.comm = stat.slice(stat.indexOf('(') + 1, close);
      const rest = stat.slice(close + 2).split(' ');
      info.ppid = Number(rest[1]);
      info.startTicks = Number(rest[19]);
    }
    try {
      info.exePath = readlinkEscaped(path.join(dir, 'exe')).replace(/ \(deleted\)$/, '');
      info.exeName = path.basename(info.exePath);
    } catch {
      info.missing.push('process.executable.path');
    }
    const cmdline = readText(path.join(dir, 'cmdline'));
    if (cmdline) info.commandLine = cmdline.replace(/\0+$/, '').split('\0').join(' ');
    else info.missing.push('process.command_line');
    const status = readText(path.join(dir, 'status'));
    const uid = status && /^Uid:\s+(\d+)/m.exec(status);
    if (uid) {
      info.uid = Number(uid[1]);
      info.owner = this.userName(info.uid);
    } else info.missing.push('process.owner');
    // The same status text gives the pid inside the process's own pid namespace.
    const nsPid = status === undefined ? undefined : innermostNsPid(status);
    if (nsPid === undefined || nsPid.levels === 0) info.missing.push('soload.process.ns_pid');
    else if (nsPid.nsPid !== undefined) info.nsPid = nsPid.nsPid;
    const nsOf = (type: string): number | undefined => {
      try {
        return parseNsLink(fs.readlinkSync(path.join(dir, 'ns', type)));
      } catch {
        return undefined;
      }
    };
    const mntNs = nsOf('mnt');
    if (mntNs !== undefined) info.mntNs = mntNs;
    else info.missing.push('soload.process.mnt_ns');
    const pidNs = nsOf('pid');
    if (pidNs !== undefined) info.pidNs = pidNs;
    else info.missing.push('soload.process.pid_ns');
    const cgroup = readText(path.join(dir, 'cgroup'));
    if (cgroup !== undefined) info.containerId = containerIdFromCgroup(cgroup);
    const environ = readText(path.join(dir, 'environ'));
    if (environ !== undefined) {
      const declared = otelResourceFromEnviron(environ);
      if (declared.serviceName !== undefined) info.serviceName = declared.serviceName;
      if (declared.attributes) info.declaredResource = declared.attributes;
      info.loaderEnv = loaderEnvFromEnviron(environ);
    } else info.missing.push('soload.process.environment');
    const secure = auxvSecure(path.join(dir, 'auxv'));
    if (secure !== undefined) info.secure = secure;
    return info;
  }

  /** stat of `file` as process `pid` sees it (its mount namespace, through /proc/<pid>/root). */
  statAs(pid: number, file: string): FileInfo | undefined {
    for (const p of [path.join(this.root, String(pid), 'root', file), file]) {
      try {
        const st = fs.statSync(fsName(p));
        return { size: st.size, inode: st.ino, dev: st.dev };
      } catch {
        continue;
      }
    }
    return undefined;
  }

  /** stat(2) of a host path (symlinks followed): mode and owner for the security stage. */
  fileFacts(hostPath: string): FileFacts | undefined {
    return firstOf(hostPath, (p) => {
      const st = fs.statSync(p, { bigint: true, throwIfNoEntry: false });
      if (!st) return undefined;
      const kind = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
      return { kind, mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), dev: Number(st.dev), ino: Number(st.ino), size: Number(st.size), mtimeNs: st.mtimeNs } as const;
    });
  }

  /** A small text file of a host path (a root's /etc/ld.so.preload, its loader path file), bounded. */
  readSmallFile(hostPath: string, maxBytes = 1 << 20): Buffer | undefined {
    return firstOf(hostPath, (p) => {
      const st = fs.statSync(p, { throwIfNoEntry: false });
      if (!st || !st.isFile() || st.size > maxBytes) return undefined;
      return fs.readFileSync(p);
    });
  }

  /**
   * lstat of a host path for path resolution (see enrich/canonical.ts). A `/proc/self/fd/N` prefix
   * reaches a root directory soload pinned, inside that root's mount namespace.
   */
  lstat(hostPath: string): PathStat | undefined {
    return firstOf(hostPath, (p) => {
      // a missing file is an answer here (a deleted library), not an error worth a thrown exception
      const st = fs.lstatSync(p, { bigint: true, throwIfNoEntry: false });
      if (!st) return undefined;
      const kind = st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
      return { kind, dev: Number(st.dev), ino: Number(st.ino), size: Number(st.size), ctimeNs: st.ctimeNs } as const;
    });
  }

  /**
   * readlink of a host path (a symlink met during resolution, or a /proc fd link). The target is
   * decoded like trace_pipe text (non-UTF-8 bytes as `\xNN`), so a walk stays in one encoding.
   */
  readlink(hostPath: string): string | undefined {
    return firstOf(hostPath, (p) => {
      const raw = fs.readlinkSync(p, { encoding: 'buffer' });
      return escapePathBytes(raw);
    });
  }

  /** What `pid`'s descriptor `fd` names, as the kernel prints it (`/memfd:x (deleted)`), if alive. */
  fdTarget(pid: number, fd: number): string | undefined {
    return this.readlink(path.join(this.root, String(pid), 'fd', String(fd)));
  }

  /**
   * Identity of the place `pid` resolves paths in: its mount namespace and the (dev, inode) of its
   * root directory. Two processes with the same identity see the same files under the same names.
   */
  viewIdentity(pid: number | 'self'): string | undefined {
    const dir = path.join(this.root, String(pid));
    try {
      const ns = fs.readlinkSync(path.join(dir, 'ns', 'mnt'));
      const st = fs.statSync(path.join(dir, 'root'));
      return `${ns}:${st.dev}:${st.ino}`;
    } catch {
      return undefined;
    }
  }

  /**
   * Pins `pid`'s view so paths can be resolved in it after every process in it has exited: an fd on
   * its mount namespace keeps that namespace's mounts alive, an fd on its root directory is where
   * lookups start (`/proc/self/fd/<root>/...` walks that namespace's mount tree). The caller closes
   * both with {@link closeFds}. Undefined when the process is gone.
   */
  pinView(pid: number): { identity: string; fds: number[]; prefix: string } | undefined {
    const dir = path.join(this.root, String(pid));
    const fds: number[] = [];
    try {
      fds.push(fs.openSync(path.join(dir, 'ns', 'mnt'), 'r'));
      fds.push(fs.openSync(path.join(dir, 'root'), 'r'));
      const identity = this.viewIdentity(pid);
      if (identity === undefined) {
        this.closeFds(fds);
        return undefined;
      }
      // The fds are ours: /proc/self is soload itself, whatever procRoot the reader was given.
      return { identity, fds, prefix: `/proc/self/fd/${fds[1]}` };
    } catch {
      this.closeFds(fds);
      return undefined;
    }
  }

  closeFds(fds: readonly number[]): void {
    for (const fd of fds) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already closed */
      }
    }
  }

  /**
   * What `pid` was started with as preloads: `LD_PRELOAD` of its environment (split on spaces and
   * colons, as ld.so does) and `/etc/ld.so.preload` of its own root.
   */
  preloadsOf(pid: number): string[] {
    const dir = path.join(this.root, String(pid));
    const out: string[] = [];
    const env = readText(path.join(dir, 'environ'));
    const pre = env?.split('\0').find((kv) => kv.startsWith('LD_PRELOAD='));
    if (pre) out.push(...pre.slice('LD_PRELOAD='.length).split(/[ :]+/).filter(Boolean));
    const file = readText(path.join(dir, 'root', 'etc', 'ld.so.preload'));
    if (file) out.push(...file.split(/[ :\t\n]+/).filter(Boolean));
    return out;
  }

  /** Start time of `pid` in ticks, cheap enough to validate a cache entry. */
  startTicks(pid: number): number | undefined {
    const stat = readText(path.join(this.root, String(pid), 'stat'));
    if (!stat) return undefined;
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(rest[19]);
  }

  /**
   * True while process or thread `id` exists: /proc/<id> (a thread's too, though readdir hides
   * it). A zombie counts as alive: a thread-group leader that called pthread_exit is one while
   * its other threads still run.
   */
  alive(id: number): boolean {
    const stat = readText(path.join(this.root, String(id), 'stat'));
    if (!stat) return false;
    const state = stat[stat.lastIndexOf(')') + 2];
    return state !== 'X' && state !== 'x';
  }

  /** Current working directory of `pid` (as that process sees paths), if readable. */
  cwd(pid: number): string | undefined {
    try {
      return readlinkEscaped(path.join(this.root, String(pid), 'cwd'));
    } catch {
      return undefined;
    }
  }

  /** Numeric entries of /proc. */
  listPids(): number[] {
    try {
      return fs.readdirSync(this.root).filter((n) => /^\d+$/.test(n)).map(Number);
    } catch {
      return [];
    }
  }

  /** File-backed mappings of `pid` (from /proc/<pid>/maps), deduplicated, in map order. */
  mappedFiles(pid: number): string[] {
    const maps = readText(path.join(this.root, String(pid), 'maps'));
    if (!maps) return [];
    return parseMapsPaths(maps);
  }

  /** Paths of file-backed executable mappings of `pid` (what ld.so or the kernel mapped as code). */
  executableMappings(pid: number): string[] {
    const maps = readText(path.join(this.root, String(pid), 'maps'));
    if (!maps) return [];
    return parseMapsPaths(maps, true);
  }

  /** Parsed /proc/<pid>/maps (file-backed and anonymous). */
  mappings(pid: number): Mapping[] {
    const maps = readText(path.join(this.root, String(pid), 'maps'));
    if (!maps) return [];
    const out: Mapping[] = [];
    for (const line of maps.split('\n')) {
      const m = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S+)\s+([0-9a-f]+)\s+\S+\s+(\d+)\s*(.*)$/.exec(line);
      if (!m) continue;
      out.push({ start: BigInt('0x' + m[1]), end: BigInt('0x' + m[2]), perms: m[3]!, offset: BigInt('0x' + m[4]), inode: Number(m[5]), path: mapsPathField(m[6]!.replace(/ \(deleted\)$/, '')) });
    }
    return out;
  }

  /**
   * Reads `length` bytes of process memory at `address` through /proc/<pid>/mem (root, or a
   * process soload started). Returns undefined when the range is unmapped or the process is gone.
   */
  readMemory(pid: number, address: bigint, length: number): Buffer | undefined {
    let fd: number | undefined;
    try {
      fd = fs.openSync(path.join(this.root, String(pid), 'mem'), 'r');
      const buf = Buffer.alloc(length);
      const n = fs.readSync(fd, buf, 0, length, address);
      return n === length ? buf : undefined;
    } catch {
      return undefined;
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  /** Target of /proc/<pid>/exe. */
  exe(pid: number): string | undefined {
    try {
      return fs.readlinkSync(path.join(this.root, String(pid), 'exe')).replace(/ \(deleted\)$/, '');
    } catch {
      return undefined;
    }
  }

  /** comm and cmdline of a pid: enough to tell whether it is a soload process. */
  commandOf(pid: number): { comm?: string; cmdline?: string } {
    return {
      comm: readText(path.join(this.root, String(pid), 'comm'))?.trim(),
      cmdline: readText(path.join(this.root, String(pid), 'cmdline'))?.split('\0').join(' '),
    };
  }

  private userName(uid: number): string | undefined {
    if (!this.users) {
      this.users = new Map();
      for (const line of (readText(this.passwdPath) ?? '').split('\n')) {
        const f = line.split(':');
        if (f.length >= 3 && /^\d+$/.test(f[2]!)) this.users.set(Number(f[2]), f[0]!);
      }
    }
    return this.users.get(uid);
  }
}

/**
 * `call` on the file-system name a path string stands for: its raw bytes when it holds `\xhh`
 * escapes (soload's spelling of kernel-printed names, see util/path-bytes.ts), else itself. Never
 * the escaped text taken literally: that would open a different file someone named after it.
 * Undefined when the call fails (throws or gives undefined).
 */
function firstOf<T>(p: string, call: (name: string | Buffer) => T): T | undefined {
  try {
    return call(fsName(p));
  } catch {
    return undefined;
  }
}

/**
 * A /proc (or other outside) text file in soload's path escaping (util/path-bytes.ts): names in
 * it — a comm, arguments, environment values, mapped paths — are arbitrary bytes, and a lossy
 * UTF-8 decode would turn different names into the same string.
 */
function readText(p: string): string | undefined {
  try {
    return escapePathBytes(fs.readFileSync(p));
  } catch {
    return undefined;
  }
}

/** readlink in soload's path escaping (a lossy UTF-8 decode would lose the name's bytes). */
function readlinkEscaped(p: string): string {
  return escapePathBytes(fs.readlinkSync(p, { encoding: 'buffer' }));
}

/** A maps path field (already path-escaped) with the kernel's `\012` for a newline undone. */
function mapsPathField(field: string): string {
  return field.indexOf('\\012') === -1 ? field : field.replace(/\\012/g, '\n');
}

/** Paths of file-backed mappings in a maps text (pure). Skips [heap], anon and deleted-marker noise. */
export function parseMapsPaths(maps: string, executableOnly = false): string[] {
  const seen = new Set<string>();
  for (const line of maps.split('\n')) {
    // address perms offset dev inode path — the path is everything after the 5th field and may
    // contain spaces, so split only the first five.
    const m = /^\S+\s+(\S+)\s+\S+\s+\S+\s+(\d+)\s+(.*)$/.exec(line);
    if (!m || m[2] === '0') continue;
    if (executableOnly && !m[1]!.includes('x')) continue;
    const p = mapsPathField(m[3]!.replace(/ \(deleted\)$/, ''));
    if (p.startsWith('/')) seen.add(p);
  }
  return [...seen];
}

/**
 * Container id from a /proc/<pid>/cgroup text (pure). Covers cgroup v1 (`12:memory:/docker/<id>`),
 * v2 (`0::/system.slice/docker-<id>.scope`), containerd/CRI (`cri-containerd-<id>.scope`, kubepods
 * paths), podman (`libpod-<id>.scope`) and CRI-O (`crio-<id>.scope`): all name the container by a
 * 64-hex id in a path element.
 */
export function containerIdFromCgroup(text: string): string | undefined {
  let found: string | undefined;
  for (const line of text.split('\n')) {
    const parts = line.split(':').slice(2).join(':').split('/');
    // The innermost element naming a container wins; podman nests a `container` cgroup below it.
    for (let i = parts.length - 1; i >= 0; i--) {
      const m = /(?:^|[^0-9a-f])([0-9a-f]{64})(?:$|[^0-9a-f])/.exec(parts[i]!);
      if (m) {
        found = m[1];
        break;
      }
    }
  }
  return found;
}

/** Bounds on what one process's OTEL_RESOURCE_ATTRIBUTES may add to its records' resource. */
export const DECLARED_RESOURCE_LIMITS = { maxAttributes: 64, maxKeyLength: 255, maxValueLength: 1024 } as const;

/** LD_LIBRARY_PATH and LD_PRELOAD of a NUL-separated environ (pure; the last assignment wins, as getenv). */
export function loaderEnvFromEnviron(environ: string): LoaderEnv {
  const out: LoaderEnv = {};
  for (const kv of environ.split('\0')) {
    if (kv.startsWith('LD_LIBRARY_PATH=')) out.ldLibraryPath = kv.slice(16, 16 + 4096);
    else if (kv.startsWith('LD_PRELOAD=')) out.ldPreload = kv.slice(11, 11 + 4096);
  }
  return out;
}

/** AT_SECURE (type 23) of a 64-bit little-endian auxv file; undefined when unreadable. */
function auxvSecure(file: string): boolean | undefined {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch {
    return undefined;
  }
  for (let o = 0; o + 16 <= buf.length; o += 16) {
    const type = buf.readBigUInt64LE(o);
    if (type === 0n) break;
    if (type === 23n) return buf.readBigUInt64LE(o + 8) !== 0n;
  }
  return undefined;
}

/**
 * What a process declares for OpenTelemetry in its environ (NUL-separated) (pure): the parsed
 * OTEL_RESOURCE_ATTRIBUTES (bounded by {@link DECLARED_RESOURCE_LIMITS}: over-long members are
 * dropped, the first 64 kept — a hostile environment cannot blow up every record) and the
 * service.name, where OTEL_SERVICE_NAME wins over OTEL_RESOURCE_ATTRIBUTES as in the OTel spec.
 * The environ is the one the process was exec'd with: a later setenv() is not seen (nor is it by
 * an OTel SDK, which reads it at start).
 */
export function otelResourceFromEnviron(environ: string): { serviceName?: string; attributes?: Record<string, string> } {
  let serviceName: string | undefined;
  let list: string | undefined;
  for (const kv of environ.split('\0')) {
    if (kv.startsWith('OTEL_SERVICE_NAME=')) {
      const v = kv.slice('OTEL_SERVICE_NAME='.length).trim();
      if (v) serviceName = v;
    } else if (kv.startsWith('OTEL_RESOURCE_ATTRIBUTES=')) list = kv.slice('OTEL_RESOURCE_ATTRIBUTES='.length);
  }
  const out: { serviceName?: string; attributes?: Record<string, string> } = {};
  if (list !== undefined) {
    const L = DECLARED_RESOURCE_LIMITS;
    const attrs: Record<string, string> = {};
    let n = 0;
    for (const [k, v] of Object.entries(parseOtelKeyValueList(list))) {
      if (k.length > L.maxKeyLength || v.length > L.maxValueLength) continue;
      if (++n > L.maxAttributes) break;
      attrs[k] = v;
    }
    if (n) out.attributes = attrs;
    const declaredName = attrs['service.name']?.trim();
    if (serviceName === undefined && declaredName) serviceName = declaredName;
  }
  if (serviceName !== undefined) out.serviceName = serviceName;
  return out;
}

/** service.name a process declares for OpenTelemetry, from its environ (pure); see {@link otelResourceFromEnviron}. */
export function serviceNameFromEnviron(environ: string): string | undefined {
  return otelResourceFromEnviron(environ).serviceName;
}

/**
 * Namespace id (the nsfs inode) from the target of a /proc/<pid>/ns/<type> link, `mnt:[4026531841]`
 * (pure). Undefined for anything else.
 */
export function parseNsLink(text: string): number | undefined {
  const m = /^[a-z_]+:\[(\d+)\]$/.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * The `NSpid:` line of a /proc/<pid>/status text (pure): `levels` is how many pid namespaces number
 * the process, from the one of this /proc mount down to its own (0 when the line is absent or
 * malformed); `nsPid` is the pid in the innermost one, set only when that is a nested namespace
 * (`levels` > 1) — at one level it is the pid itself.
 */
export function innermostNsPid(statusText: string): { nsPid?: number; levels: number } {
  const line = /^NSpid:[ \t]*(.*)$/m.exec(statusText);
  const values = line ? line[1]!.trim().split(/\s+/).filter(Boolean) : [];
  if (!values.length || !values.every((v) => /^\d+$/.test(v))) return { levels: 0 };
  return values.length > 1 ? { nsPid: Number(values[values.length - 1]), levels: values.length } : { levels: 1 };
}
