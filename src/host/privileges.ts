import fs from 'node:fs';
import path from 'node:path';
import { ErrorCodes, SoloadError, type ErrorCode } from '../errors';
import { TRACEFS_CANDIDATES } from '../tracefs/session';

/** The capabilities soload's decisions depend on (numbers from linux/capability.h). */
export const CAPABILITIES = {
  CAP_DAC_OVERRIDE: 1,
  CAP_DAC_READ_SEARCH: 2,
  CAP_FOWNER: 3,
  CAP_SYS_CHROOT: 18,
  CAP_SYS_PTRACE: 19,
  CAP_SYS_ADMIN: 21,
  CAP_PERFMON: 38,
} as const;

export type CapabilityName = keyof typeof CAPABILITIES;

/** Where the facts are read from; tests point these at fixture trees. */
export interface PrivilegeRoots {
  /** The process's status file (`CapEff:` line). Default /proc/self/status. */
  statusFile?: string;
  /** securityfs mount (its `lockdown` file). Default /sys/kernel/security. */
  securityfsRoot?: string;
  /** tracefs as configured (`tracefs.path`); empty = the usual mount points. */
  tracefsPath?: string;
  /** Mount points tried when `tracefsPath` is empty. */
  tracefsCandidates?: readonly string[];
  /** Effective uid (default: the process's). */
  euid?: number;
}

/** One thing that stops soload from running, with the stable code `run` fails with. */
export interface PrivilegeProblem {
  code: ErrorCode;
  /** The exact missing piece, e.g. "missing CAP_DAC_OVERRIDE: cannot write …/uprobe_events (…)". */
  message: string;
}

/** What soload may do on this host, measured without writing anything to the kernel. */
export interface PrivilegeReport {
  euid: number;
  /** Effective capabilities soload cares about. */
  capabilities: CapabilityName[];
  /** Kernel lockdown mode from securityfs, when securityfs exposes it. */
  lockdown?: 'none' | 'integrity' | 'confidentiality';
  /** tracefs mount point found (may be unusable: see problems). */
  tracefs?: string;
  /** Fatal: soload cannot install probes. */
  problems: PrivilegeProblem[];
  /** soload runs, but records lose attributes or features (each says which). */
  degraded: string[];
}

/** Parses the hexadecimal `CapEff:` mask of a /proc status file. */
export function parseCapEff(status: string): bigint | undefined {
  const m = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : undefined;
}

/** Parses securityfs's `lockdown` file (`none integrity [confidentiality]`: the bracketed one is in force). */
export function parseLockdown(text: string): PrivilegeReport['lockdown'] {
  const m = /\[(none|integrity|confidentiality)\]/.exec(text);
  return m ? (m[1] as PrivilegeReport['lockdown']) : undefined;
}

function has(mask: bigint, cap: CapabilityName): boolean {
  return ((mask >> BigInt(CAPABILITIES[cap])) & 1n) === 1n;
}

function modeOf(st: fs.Stats): string {
  return `owner uid ${st.uid}, mode 0${(st.mode & 0o7777).toString(8)}`;
}

/**
 * Opens `file` for appending and closes it without writing: the kernel runs every check a real
 * write meets at open (file permissions, a read-only mount, lockdown's LOCKDOWN_TRACEFS), and
 * uprobe_events only clears itself when opened with O_TRUNC, which this never passes.
 */
function openForAppend(file: string): NodeJS.ErrnoException | undefined {
  try {
    fs.closeSync(fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND));
    return undefined;
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
}

function lstatOrError(p: string): fs.Stats | NodeJS.ErrnoException {
  try {
    return fs.statSync(p);
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
}

/**
 * What soload needs from the kernel and the filesystem, checked the way `run` will use it: the
 * effective capabilities (not the uid: a service user with the right capabilities is enough), the
 * kernel lockdown mode, and whether uprobe_events and instances/ can be written. Writes nothing.
 *
 * Measured on 6.18 (README "Privileges"): tracefs is root-owned (0700 mount point, 0640 files), so
 * a uid other than 0 needs CAP_DAC_OVERRIDE for every tracefs file and nothing else to install
 * probes; CAP_SYS_PTRACE is needed to read other processes' /proc/<pid>/{exe,environ,ns,root};
 * CAP_SYS_ADMIN only to mount tracefs when it is not mounted. CAP_PERFMON is not consulted by
 * tracefs at all.
 */
export function assessPrivileges(roots: PrivilegeRoots = {}): PrivilegeReport {
  const euid = roots.euid ?? process.geteuid?.() ?? -1;
  let status = '';
  try {
    status = fs.readFileSync(roots.statusFile ?? '/proc/self/status', 'utf8');
  } catch {
    /* no /proc: decided by uid below */
  }
  const mask = parseCapEff(status) ?? (euid === 0 ? (1n << 64n) - 1n : 0n);
  const capabilities = (Object.keys(CAPABILITIES) as CapabilityName[]).filter((c) => has(mask, c));
  const report: PrivilegeReport = { euid, capabilities, problems: [], degraded: [] };
  const problem = (code: ErrorCode, message: string) => report.problems.push({ code, message });

  let lockdownText: string | undefined;
  const lockdownFile = path.join(roots.securityfsRoot ?? '/sys/kernel/security', 'lockdown');
  try {
    lockdownText = fs.readFileSync(lockdownFile, 'utf8');
  } catch {
    /* no securityfs or no lockdown LSM: nothing is locked down */
  }
  if (lockdownText !== undefined) {
    const mode = parseLockdown(lockdownText);
    if (mode) report.lockdown = mode;
    // LOCKDOWN_TRACEFS sits above LOCKDOWN_INTEGRITY_MAX: only confidentiality mode forbids tracefs.
    if (mode === 'confidentiality') {
      problem(
        ErrorCodes.KERNEL_LOCKDOWN,
        `kernel lockdown is in confidentiality mode (${lockdownFile}: ${lockdownText.trim()}): the kernel refuses every tracefs access, whatever the privileges; boot with lockdown=integrity (or none), which allows tracefs`,
      );
      return report;
    }
  }

  const candidates = roots.tracefsPath ? [roots.tracefsPath] : (roots.tracefsCandidates ?? TRACEFS_CANDIDATES);
  const dac = has(mask, 'CAP_DAC_OVERRIDE');
  const needDac = (st: fs.Stats) => !dac && st.uid !== euid;
  let found: string | undefined;
  let unreadable: { dir: string; st: fs.Stats } | undefined;
  for (const dir of candidates) {
    const inner = lstatOrError(path.join(dir, 'trace'));
    if (inner instanceof fs.Stats) {
      found = dir;
      break;
    }
    if (inner.code === 'EACCES' && !unreadable) {
      const st = lstatOrError(dir);
      if (st instanceof fs.Stats) unreadable = { dir, st };
    }
  }
  if (!found) {
    if (unreadable) {
      problem(
        ErrorCodes.NOT_PRIVILEGED,
        `${dac ? 'permission denied' : 'missing CAP_DAC_OVERRIDE'}: cannot read tracefs at ${unreadable.dir} (${modeOf(unreadable.st)}; soload runs as uid ${euid}): run as root or grant CAP_DAC_OVERRIDE (README "Privileges")`,
      );
    } else if (!has(mask, 'CAP_SYS_ADMIN')) {
      problem(
        ErrorCodes.TRACEFS_UNAVAILABLE,
        `tracefs is not mounted (${candidates.join(', ')}) and mounting it needs CAP_SYS_ADMIN, which soload does not have: mount it first (\`mount -t tracefs nodev /sys/kernel/tracing\`, or let systemd's sys-kernel-tracing.mount do it)`,
      );
    }
    // With CAP_SYS_ADMIN, run mounts it; check reports the unmounted tracefs itself.
    return report;
  }
  report.tracefs = found;

  let readOnly = false;
  for (const [file, what] of [
    ['uprobe_events', 'write'],
    ['instances', 'create an instance in'],
  ] as const) {
    if (readOnly || report.problems.length) break; // one cause, named once
    const p = path.join(found, file);
    const st = lstatOrError(p);
    if (!(st instanceof fs.Stats)) {
      if (st.code === 'ENOENT') continue; // the kernel lacks it: check reports the missing feature
      problem(ErrorCodes.NOT_PRIVILEGED, `${dac ? 'permission denied' : 'missing CAP_DAC_OVERRIDE'}: cannot stat ${p} (${st.code}; soload runs as uid ${euid})`);
      continue;
    }
    const err = st.isDirectory() ? dirWritable(p, st, euid, dac) : openForAppend(p);
    if (!err) continue;
    if (err.code === 'EROFS') {
      readOnly = true;
      problem(ErrorCodes.TRACEFS_READ_ONLY, `tracefs at ${found} is mounted read-only: cannot ${what} ${p}; remount it read-write, or list it in the unit's ReadWritePaths= (examples/systemd/soload.service)`);
    } else if (err.code === 'EACCES' && needDac(st)) {
      problem(ErrorCodes.NOT_PRIVILEGED, `missing CAP_DAC_OVERRIDE: cannot ${what} ${p} (${modeOf(st)}; soload runs as uid ${euid}): run as root or grant CAP_DAC_OVERRIDE (README "Privileges")`);
    } else if (err.code === 'EPERM') {
      problem(
        ErrorCodes.KERNEL_LOCKDOWN,
        `the kernel refuses to open ${p} (EPERM) although its permissions allow it: kernel lockdown or a security module (SELinux, AppArmor) forbids tracefs; ${report.lockdown ? `lockdown is ${report.lockdown}` : 'securityfs shows no lockdown mode'}`,
      );
    } else {
      problem(ErrorCodes.NOT_PRIVILEGED, `cannot ${what} ${p}: ${err.code ?? err.message} (${modeOf(st)}; soload runs as uid ${euid})`);
    }
  }
  if (!has(mask, 'CAP_SYS_PTRACE')) {
    report.degraded.push(
      'missing CAP_SYS_PTRACE: /proc/<pid>/exe, environ, ns/ and root/ of processes of other users (or with capabilities soload lacks) cannot be read: their records lack process.executable.path, the namespaces and the environment (soload.enrichment.missing says so per record)',
    );
  }
  return report;
}

/**
 * Whether mkdir in `dir` would pass the permission check, from its mode: the owner's write bit,
 * the others' bit, or CAP_DAC_OVERRIDE (a read-only mount was found on uprobe_events already).
 */
function dirWritable(dir: string, st: fs.Stats, euid: number, dac: boolean): NodeJS.ErrnoException | undefined {
  if (dac) return undefined;
  const bit = st.uid === euid ? 0o200 : 0o002;
  if (st.mode & bit) return undefined;
  return Object.assign(new Error(`EACCES: ${dir}`), { code: 'EACCES' });
}

/** Throws the first problem as a SoloadError with its stable code (what `run` does before installing). */
export function assertPrivileged(report: PrivilegeReport): void {
  const first = report.problems[0];
  if (!first) return;
  const rest = report.problems.slice(1).map((p) => p.message);
  throw new SoloadError(first.code, [first.message, ...rest].join('; '), { problems: report.problems });
}
