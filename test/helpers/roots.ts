/**
 * Foreign root file systems for tests that run programs "in a container": the Debian roots that
 * scripts/make-roots.sh builds (.cache/roots/{bullseye,trixie}, each with its own glibc, gcc and
 * libc6-dev, and no debug symbols; the roots' libc6-dbg unpacked in .cache/debug/<root>), and the
 * command lines that run a program inside one.
 *
 * inRoot() runs a program the way a minimal container runtime would: a new mount namespace whose
 * mounts are all private (nothing propagates back to the host), the root bind-mounted onto itself
 * (or an overlay on it) so that "/" is a mount point, /proc mounted inside the root (truth.h and
 * anything else reading /proc/self/... needs it), then chroot. Every mount is made inside the new
 * namespace, so it disappears with the namespace's last process: nothing to unmount afterwards.
 * `unshare`, the host's `sh` and `chroot` all exec, so without `pidNs` the program keeps the pid
 * that spawn() returned, a host pid. Note
 * that the pid then also carries the loads of the host's unshare, sh and chroot binaries before the
 * program's own exec (a test that attributes loads by pid must fork inside the root, as the recall
 * corpus' static forkexec launcher does), and that the environment passes through them too (an
 * LD_PRELOAD naming an in-root path would be tried on the host's unshare first).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
export const MAKE_ROOTS = path.join(REPO_ROOT, 'scripts', 'make-roots.sh');
export const ROOTS_DIR = path.join(REPO_ROOT, '.cache', 'roots');
export const DEBUG_DIR = path.join(REPO_ROOT, '.cache', 'debug');
/** The roots make-roots.sh builds. */
export const KNOWN_ROOTS = ['bullseye', 'trixie'] as const;
export type KnownRoot = (typeof KNOWN_ROOTS)[number];

/**
 * Runs scripts/make-roots.sh (fast when everything is stamped); throws with the script's output
 * when it fails. Returns how long it took (ms).
 */
export function ensureRoots(opts: { force?: boolean; log?: (m: string) => void } = {}): number {
  const t0 = Date.now();
  const r = spawnSync('bash', [MAKE_ROOTS, ...(opts.force ? ['--force'] : [])], { cwd: REPO_ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${MAKE_ROOTS}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${MAKE_ROOTS} failed (exit ${r.status}):\n${r.stderr}${r.stdout}`);
  const ms = Date.now() - t0;
  opts.log?.(`make-roots.sh: ${ms} ms`);
  return ms;
}

/** Canonical host path of a root: a known name (bullseye, trixie) or a directory. */
export function rootDir(nameOrDir: string): string {
  const dir = (KNOWN_ROOTS as readonly string[]).includes(nameOrDir) ? path.join(ROOTS_DIR, nameOrDir) : path.resolve(nameOrDir);
  if (!fs.existsSync(path.join(dir, 'etc'))) throw new Error(`${dir} is not a root file system (no etc/)${(KNOWN_ROOTS as readonly string[]).includes(nameOrDir) ? ': run scripts/make-roots.sh' : ''}`);
  return fs.realpathSync(dir);
}

/** Where make-roots.sh unpacked a known root's libc6-dbg. */
export function debugDir(name: KnownRoot): string {
  return path.join(DEBUG_DIR, name);
}

/** Reads a symlink's target; undefined when `hostPath` is not a symlink (or does not exist). */
export type ReadLink = (hostPath: string) => string | undefined;

export const fsReadLink: ReadLink = (p) => {
  try {
    return fs.readlinkSync(p);
  } catch {
    return undefined;
  }
};

/**
 * The canonical path of `p` as a process chrooted into `root` sees it: every symlink resolved
 * *inside* the root (an absolute target restarts at the root, ".." stops at it), the way the
 * kernel resolves names for that process. A missing component is kept as it is (like realpath -m).
 * Pure apart from `readLink` (which gets host paths). Throws after 40 symlinks (a loop).
 */
export function realpathIn(root: string, p: string, readLink: ReadLink = fsReadLink): string {
  if (!p.startsWith('/')) throw new Error(`realpathIn: ${JSON.stringify(p)} is not absolute`);
  const hostOf = (parts: string[]): string => path.join(root, ...parts);
  const done: string[] = [];
  let todo = p.split('/').filter(Boolean);
  let links = 0;
  while (todo.length) {
    const c = todo.shift()!;
    if (c === '.') continue;
    if (c === '..') {
      done.pop();
      continue;
    }
    const target = readLink(hostOf([...done, c]));
    if (target === undefined) {
      done.push(c);
      continue;
    }
    if (++links > 40) throw new Error(`realpathIn: too many symlinks resolving ${p} in ${root}`);
    if (target.startsWith('/')) done.length = 0;
    todo = [...target.split('/').filter(Boolean), ...todo];
  }
  return `/${done.join('/')}`;
}

export interface InRootOptions {
  /** A new pid namespace too (`--pid --fork`): the program is pid 1 there, with a fresh /proc. */
  pidNs?: boolean;
  /**
   * Run on an overlayfs (lowerdir = the root, fresh upper and work dirs in a temp dir), as a
   * container runtime does: the root itself is never written. The overlay is mounted inside the
   * new mount namespace and disappears with it; cleanup() removes the temp dir.
   */
  overlay?: boolean;
  /** Parent of the overlay's temp dir (default os.tmpdir()). */
  tmpDir?: string;
}

export interface InRootCommand {
  /** What to spawn. */
  file: string;
  args: string[];
  /**
   * Host path of the directory the program sees as "/": the root itself, or (overlay) the merged
   * dir, which exists only inside the program's mount namespace.
   */
  target: string;
  /** The overlay's upper dir (what the program wrote; files put here before the run are in the image). */
  upperDir?: string;
  /** Removes the overlay's temp dir (no-op without overlay). Call after the process has exited. */
  cleanup(): void;
}

/**
 * Run by the host's sh inside the new mount namespace: `sh -c ROOT_SH sh <root> <overlay-tmp or ""> argv...`.
 * The program's "/" is made a mount point, as in a container (a bind mount of the root onto
 * itself, or the overlay), so that programs in it can change mount propagation of "/" (nsrun,
 * nsbind); then /proc is mounted inside, and chroot execs the program.
 */
const ROOT_SH = [
  'set -eu',
  'lower=$1 tmp=$2',
  'shift 2',
  'if [ -n "$tmp" ]; then',
  '  target=$tmp/merged',
  '  mount -t overlay soload-overlay -o "lowerdir=$lower,upperdir=$tmp/upper,workdir=$tmp/work" "$target"',
  'else',
  '  target=$lower',
  '  mount --bind "$target" "$target"',
  'fi',
  'mount -t proc proc "$target/proc"',
  'exec chroot "$target" "$@"',
].join('\n');

/** True when something under `dir` is mounted in this process's mount namespace. */
export function hasMountsUnder(dir: string): boolean {
  const info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((l) => {
    const mp = l.split(' ')[4];
    return mp !== undefined && (mp === dir || mp.startsWith(`${dir}/`));
  });
}

/**
 * The command line that runs `argv` (argv[0] as the root sees it, looked up on the root's PATH by
 * chroot) inside `root` in a new mount namespace (`unshare --mount --propagation private`), with
 * "/" a mount point and /proc mounted inside the root, then `chroot <root>`. Without `pidNs`
 * nothing forks on the way: the program keeps the spawned pid. Needs root.
 */
export function inRoot(root: string, argv: string[], opts: InRootOptions = {}): InRootCommand {
  if (!argv.length) throw new Error('inRoot: empty argv');
  const ns = ['--mount', '--propagation', 'private', ...(opts.pidNs ? ['--pid', '--fork'] : [])];
  // with --pid --fork, sh runs as pid 1 of the new pid namespace, so its proc mount is that namespace's
  if (!opts.overlay) return { file: 'unshare', args: [...ns, '/bin/sh', '-c', ROOT_SH, 'soload-root', root, '', ...argv], target: root, cleanup: () => undefined };
  if (/[,:\\]/.test(root)) throw new Error(`inRoot: overlay lowerdir ${root} contains a character overlayfs options cannot carry`);
  const tmp = fs.mkdtempSync(path.join(opts.tmpDir ?? os.tmpdir(), 'soload-overlay-'));
  if (/[,:\\]/.test(tmp)) throw new Error(`inRoot: overlay temp dir ${tmp} contains a character overlayfs options cannot carry`);
  for (const d of ['upper', 'work', 'merged']) fs.mkdirSync(path.join(tmp, d));
  return {
    file: 'unshare',
    args: [...ns, '/bin/sh', '-c', ROOT_SH, 'soload-root', root, tmp, ...argv],
    target: path.join(tmp, 'merged'),
    upperDir: path.join(tmp, 'upper'),
    cleanup: () => {
      // the overlay lives in the program's private namespace; never rm -rf through a mount
      if (hasMountsUnder(tmp)) throw new Error(`inRoot cleanup: ${tmp} is still mounted in this namespace`);
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/** inRoot, run to completion (spawnSync); throws with its output on failure. Returns stdout. */
export function runInRoot(root: string, argv: string[], opts: InRootOptions & { env?: NodeJS.ProcessEnv; input?: string } = {}): string {
  const cmd = inRoot(root, argv, opts);
  try {
    const r = spawnSync(cmd.file, cmd.args, { encoding: 'utf8', env: opts.env ?? cleanHostEnv(), input: opts.input, maxBuffer: 64 << 20 });
    if (r.error) throw r.error;
    if (r.status !== 0) throw new Error(`in ${root}: ${argv.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}${r.stdout}`);
    return r.stdout;
  } finally {
    cmd.cleanup();
  }
}

/**
 * The environment for host tools that start a program in a root: the harness's own minus the
 * loader's variables (LD_*), with a PATH that also finds the root's tools.
 */
export function cleanHostEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LD_') && v !== undefined) env[k] = v;
  env.PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  return { ...env, ...extra };
}
