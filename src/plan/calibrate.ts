import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ErrorCodes, SoloadError } from '../errors';
import type { Mapping, ProcReader } from '../host/proc-reader';
import type { LoaderRoot } from './discover';
import { escapePathBytes } from '../util/path-bytes';

/** Offsets inside glibc's private `struct link_map` that soload needs, for one ld.so build. */
export interface LinkMapLayout {
  /** Offset of `l_searchlist` (`struct r_scope_elem { struct link_map **r_list; unsigned r_nlist; }`). */
  searchlist: number;
  /**
   * Offset of `l_file_id` (`struct r_file_id { dev_t dev; ino64_t ino; }`): the device and inode
   * ld.so recorded (fstat of the descriptor it mapped) before the object reaches
   * `_dl_add_to_namespace_list`, i.e. the identity of the file the kernel mapped. Undefined when
   * calibration could not find it.
   */
  fileId?: number;
  /** Where the numbers came from. */
  source: string;
}

/** Public `struct link_map` ABI (<link.h>) on LP64: l_addr, l_name, l_ld, l_next, l_prev. */
export const LM_NAME = 8;
export const LM_NEXT = 24;
/** `l_libname` (first private field after l_real and l_ns): stable since glibc 2.3. */
export const LM_LIBNAME = 56;
/** `struct r_debug` on LP64: r_version(int), r_map, r_brk, r_state, r_ldbase. */
export const RD_MAP = 8;
export const RD_STATE = 24;

/** Reads process memory (little-endian LP64); undefined when unreadable. */
export type MemoryReader = (address: bigint, length: number) => Buffer | undefined;

/** Walks a link_map list from `head` (at most `max` entries). */
export function walkLinkMaps(read: MemoryReader, head: bigint, max = 512): bigint[] {
  const out: bigint[] = [];
  let cur = head;
  while (cur !== 0n && out.length < max) {
    out.push(cur);
    const next = read(cur + BigInt(LM_NEXT), 8);
    if (!next) break;
    cur = next.readBigUInt64LE(0);
  }
  return out;
}

/**
 * Finds `l_searchlist` in the main map of a process whose loader just finished start-up (pure over
 * `read`): at that point the main map's search list holds the objects of the link_map list but the
 * vDSO, main map first. The first (pointer, count) pair in the struct that matches is l_searchlist;
 * l_symbolic_searchlist, which comes later, is empty for normal programs.
 */
export function findSearchlistOffset(read: MemoryReader, mainMap: bigint, list: bigint[], structSize = 0x600): number | undefined {
  const raw = read(mainMap, structSize);
  if (!raw || list.length < 2) return undefined;
  const want = new Set(list.map(String));
  for (let off = 32; off + 12 <= raw.length; off += 8) {
    const n = raw.readUInt32LE(off + 8);
    // The vDSO is on the link_map list but never in a search list; a live process may also have
    // dlopened objects (RTLD_LOCAL ones are on the list, not in the main search list).
    if (n < 2 || n > list.length) continue;
    const arr = raw.readBigUInt64LE(off);
    if (arr === 0n) continue;
    const entries = read(arr, 8 * n);
    if (!entries) continue;
    const got = Array.from({ length: n }, (_, i) => entries.readBigUInt64LE(8 * i));
    if (got[0] === mainMap && got.every((p) => want.has(String(p))) && new Set(got.map(String)).size === n) return off;
  }
  return undefined;
}

/**
 * Finds `l_file_id` in the link_map of a library whose (dev, inode) is known (pure over `read`):
 * the first 8-aligned offset holding that dev followed by that inode. Only offsets past the public
 * fields and `l_libname` are considered; a match in two different objects confirms it.
 */
export function findFileIdOffset(read: MemoryReader, maps: Array<{ map: bigint; dev: bigint; ino: bigint }>, structSize = 0x600): number | undefined {
  let found: number | undefined;
  for (const m of maps) {
    const raw = read(m.map, structSize);
    if (!raw) continue;
    let here: number | undefined;
    for (let off = LM_LIBNAME + 8; off + 16 <= raw.length; off += 8) {
      if (raw.readBigUInt64LE(off) === m.dev && raw.readBigUInt64LE(off + 8) === m.ino) {
        here = off;
        break;
      }
    }
    if (here === undefined) continue;
    if (found !== undefined && found !== here) return undefined;
    found = here;
  }
  return found;
}

/** Reads a NUL-terminated string (at most `max` bytes) from process memory, in soload's path escaping. */
export function readMemoryString(read: MemoryReader, at: bigint, max = 4096): string | undefined {
  if (at === 0n) return undefined;
  // Reads never cross a page boundary: a string near the end of the last mapped page would make a
  // longer read fail as a whole.
  let buf = Buffer.alloc(0);
  let cur = at;
  while (!buf.includes(0) && buf.length < max) {
    const n = 4096 - Number(cur % 4096n);
    const chunk = read(cur, Math.min(n, 256));
    if (!chunk || chunk.length === 0) break;
    buf = Buffer.concat([buf, chunk]);
    cur += BigInt(chunk.length);
  }
  if (buf.length === 0) return undefined;
  const end = buf.indexOf(0);
  return escapePathBytes(buf.subarray(0, end < 0 ? buf.length : end));
}

/** Load bias of `file` (its inode) in a process: start of the mapping with file offset 0. */
export function loadBase(maps: Mapping[], inode: number): bigint | undefined {
  return maps.find((m) => m.inode === inode && m.offset === 0n)?.start;
}

/** Inputs of {@link calibrateLinkMap}. */
export interface CalibrationInput {
  /** ld.so to calibrate (a host path soload can read and, for the helper, execute). */
  ldso: string;
  /** Virtual address of `_r_debug` in that file (minus the first PT_LOAD's vaddr, 0 for ld.so). */
  rDebugVaddr: number;
  proc: ProcReader;
  /** Program to run under that ld.so (host loader only); default /bin/sleep. */
  program?: string;
  /**
   * The loader belongs to another root (a container, a chroot, an image layer): calibrate against
   * a live process of that root, else a helper made only of that root's files, never the host's.
   */
  root?: LoaderRoot;
  /** ld.so's path inside `root` (what the helper executes after chroot). */
  ldsoInRoot?: string;
  timeoutMs?: number;
}

/** Programs looked for in a foreign root to run under its own loader (they wait for their argument). */
export const ROOT_HELPERS: ReadonlyArray<{ file: string; args: string[] }> = [
  { file: '/bin/sleep', args: ['10'] },
  { file: '/usr/bin/sleep', args: ['10'] },
  { file: '/bin/busybox', args: ['sleep', '10'] },
];

/**
 * One look at a process that uses `ldsoIno`: when its loader is at RT_CONSISTENT with a list of
 * at least three objects, the offsets found in its link_maps (read-only, /proc/<pid>/mem).
 */
export function calibrateFromProcess(pid: number, ldsoIno: number, rDebugVaddr: number, proc: ProcReader, what = 'a live process'): LinkMapLayout | undefined {
  const read: MemoryReader = (a, n) => proc.readMemory(pid, a, n);
  const base = loadBase(proc.mappings(pid), ldsoIno);
  if (base === undefined) return undefined;
  const rd = read(base + BigInt(rDebugVaddr), 32);
  const head = rd?.readBigUInt64LE(RD_MAP) ?? 0n;
  // RT_CONSISTENT with a list of ≥ 3 objects (program, libc, ld.so): start-up is done.
  if (!rd || rd.readInt32LE(RD_STATE) !== 0 || head === 0n) return undefined;
  const list = walkLinkMaps(read, head);
  if (list.length < 3) return undefined;
  const off = findSearchlistOffset(read, head, list);
  if (off === undefined) return undefined;
  const fileId = findFileIdOffset(read, identities(read, list, pid, proc));
  return { searchlist: off, ...(fileId !== undefined ? { fileId } : {}), source: `calibrated against pid ${pid}, ${what} (${list.length} objects)` };
}

/**
 * Calibrates `struct link_map` offsets for an ld.so build that ships no debug symbols. A foreign
 * root's loader is calibrated against a live process of that root when there is one (read-only);
 * otherwise, and for the host's loader, against a helper process soload controls: `<ldso>
 * <program> 10`, where for a foreign root both come from that root (run after chroot into it), so
 * no host binary ever runs under a foreign loader. The helper is killed as soon as the offsets are
 * read.
 */
export async function calibrateLinkMap(input: CalibrationInput): Promise<LinkMapLayout> {
  const ino = fs.statSync(input.ldso).ino;
  const timeoutMs = input.timeoutMs ?? 3000;
  for (const pid of input.root?.pids ?? []) {
    const found = calibrateFromProcess(pid, ino, input.rDebugVaddr, input.proc);
    if (found) return found;
  }
  const cmd = helperCommand(input);
  const held = cmd ? undefined : blockedStdout();
  if (!cmd) {
    const self = selfHelper(input);
    if (self && held) return runHelper(input, ino, self, held, timeoutMs);
    held?.close();
    throw new SoloadError(
      ErrorCodes.CALIBRATION_FAILED,
      `cannot calibrate ${input.ldso}: no live process uses it yet and its root (${input.root?.prefix}) has none of ${ROOT_HELPERS.map((h) => h.file).join(', ')} to run under its own loader; install its debug symbols (or serve them by debuginfod) for the complete mechanism`,
      { ldso: input.ldso },
    );
  }
  return runHelper(input, ino, cmd, undefined, timeoutMs);
}

/**
 * Runs a calibration helper, reads its link_maps once its loader is done, kills it. With `held`,
 * the helper's stdout is a pipe soload filled up beforehand, so its first write blocks: a program
 * that would print and exit (libc.so.6 run as a program) waits there, start-up complete.
 */
async function runHelper(input: CalibrationInput, ino: number, cmd: { file: string; args: string[] }, held: HeldPipe | undefined, timeoutMs: number): Promise<LinkMapLayout> {
  // Nothing of soload's environment (LD_PRELOAD, LD_LIBRARY_PATH) reaches the helper's loader.
  const child = spawn(cmd.file, cmd.args, { stdio: ['ignore', held ? held.writeFd : 'ignore', 'ignore'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  held?.closeWriter();
  if (child.pid !== undefined) noteHelper(child.pid);
  // A helper that could not be started emits 'error' and never 'exit'.
  const exited = new Promise<void>((r) => {
    child.once('exit', () => r());
    child.once('error', () => r());
  });
  try {
    const pid = child.pid;
    if (pid === undefined) throw new SoloadError(ErrorCodes.CALIBRATION_FAILED, `cannot run ${cmd.file} ${cmd.args.join(' ')} to calibrate ${input.ldso}`, { ldso: input.ldso });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = calibrateFromProcess(pid, ino, input.rDebugVaddr, input.proc, `helper \`${cmd.file === 'chroot' ? `chroot ${input.root?.prefix} ` : ''}${cmd.file === 'chroot' ? cmd.args.slice(1).join(' ') : [cmd.file, ...cmd.args].join(' ')}\``);
      if (found) return found;
      if (Date.now() > deadline) {
        throw new SoloadError(ErrorCodes.CALIBRATION_FAILED, `could not find l_searchlist in ${input.ldso}'s link_map within ${timeoutMs} ms: install its debug symbols (libc6-dbg / glibc-debuginfo) for the complete mechanism`, { ldso: input.ldso });
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    child.kill('SIGKILL');
    await exited;
    held?.close();
  }
}

/** A pipe whose buffer soload filled: a writer blocks on it until soload reads (it never does). */
interface HeldPipe {
  writeFd: number;
  closeWriter(): void;
  close(): void;
}

/**
 * A FIFO in a private temp dir, its buffer filled through a non-blocking descriptor, and a second,
 * blocking write descriptor for the helper (O_NONBLOCK belongs to the open file, so the helper's
 * own descriptor must be a separate open).
 */
function blockedStdout(): HeldPipe | undefined {
  let dir: string | undefined;
  const fds: number[] = [];
  try {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-cal-'));
    const fifo = path.join(dir, 'out');
    if (spawnSync('mkfifo', ['-m', '600', fifo]).status !== 0) throw new SoloadError(ErrorCodes.CALIBRATION_FAILED, `mkfifo ${fifo} failed`);
    const r = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    fds.push(r);
    const fill = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    fds.push(fill);
    // One write of the default pipe capacity (16 pages) fills it; a second write on a full
    // non-blocking pipe would only spin on EAGAIN.
    fs.writeSync(fill, Buffer.alloc(65536, 0x20));
    const w = fs.openSync(fifo, fs.constants.O_WRONLY);
    const d = dir;
    let writerOpen = true;
    return {
      writeFd: w,
      closeWriter: () => {
        if (writerOpen) fs.closeSync(w);
        writerOpen = false;
      },
      close: () => {
        if (writerOpen) fs.closeSync(w);
        writerOpen = false;
        for (const fd of fds.splice(0)) fs.closeSync(fd);
        fs.rmSync(d, { recursive: true, force: true });
      },
    };
  } catch {
    for (const fd of fds) fs.closeSync(fd);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
}

/**
 * A root with no program to run (a distroless image, a layer holding only the C library): its
 * loader runs its own libc.so.6 as the program (glibc's libc prints its version and exits; its
 * only dependency is that loader), inside the root, so only the files being probed ever run.
 */
function selfHelper(input: CalibrationInput): { file: string; args: string[] } | undefined {
  if (!input.root || !input.ldsoInRoot) return undefined;
  const libc = path.join(path.dirname(input.ldsoInRoot), 'libc.so.6');
  try {
    if (!fs.statSync(input.root.prefix + libc).isFile()) return undefined;
  } catch {
    return undefined;
  }
  return { file: 'chroot', args: [helperRoot(input.root), input.ldsoInRoot, libc] };
}

/** Pids of calibration helpers soload ran recently (their execs are soload's own, not the host's). */
const helpers = new Map<number, number>();

function noteHelper(pid: number): void {
  const now = Date.now();
  for (const [p, at] of helpers) if (now - at > 60_000) helpers.delete(p);
  helpers.set(pid, now);
}

/** True for a calibration helper soload started in the last minute. */
export function isCalibrationHelper(pid: number): boolean {
  return helpers.has(pid);
}

/** The helper command line: the host's loader runs /bin/sleep; a foreign one only its root's files. */
function helperCommand(input: CalibrationInput): { file: string; args: string[] } | undefined {
  if (!input.root) {
    const program = input.program ?? '/bin/sleep';
    return { file: input.ldso, args: [program, '10'] };
  }
  const inRoot = input.ldsoInRoot;
  if (!inRoot) return undefined;
  const helper = ROOT_HELPERS.find((h) => {
    try {
      return fs.statSync(input.root!.prefix + h.file).isFile();
    } catch {
      return false;
    }
  });
  // chroot(8) is the host's own program under the host's loader; what it execs is the root's.
  return helper ? { file: 'chroot', args: [helperRoot(input.root), inRoot, helper.file, ...helper.args] } : undefined;
}

/** The root as a helper names it: a pinned root (`/proc/self/fd/N`) is soload's descriptor, so by soload's pid. */
function helperRoot(root: LoaderRoot): string {
  return root.prefix.replace(/^\/proc\/self\//, `/proc/${process.pid}/`);
}

/** (map, dev, inode) of the helper's objects that are files (libc; the vDSO and main map have none). */
function identities(read: MemoryReader, list: bigint[], pid: number, proc: ProcReader): Array<{ map: bigint; dev: bigint; ino: bigint }> {
  const out: Array<{ map: bigint; dev: bigint; ino: bigint }> = [];
  for (const map of list.slice(1)) {
    const ptr = read(map + BigInt(LM_NAME), 8)?.readBigUInt64LE(0) ?? 0n;
    const name = readMemoryString(read, ptr);
    if (!name || !name.startsWith('/')) continue;
    // Through the helper's root: the name is the one its loader opened.
    const st = proc.statAs(pid, name);
    if (st) out.push({ map, dev: BigInt(st.dev), ino: BigInt(st.inode) });
  }
  return out;
}
