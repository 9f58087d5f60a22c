/**
 * A live test of the uprobe `@+OFFSET` file-offset fetch. Every kernel with uprobes accepts the
 * syntax and documents it in tracefs' README, but the kernel matrix (KERNELS.md) measured that on
 * Debian 11's 5.10 and Debian 12's 6.1 it does not read the probed file: 0 or unrelated bytes for
 * integers, `(fault)` for strings, even at the probed function's own bytes (it works on 6.12 and
 * 6.18). The mechanisms that reach
 * ld.so's state through libc's GOT with `@+` (loader-lists, search-lists, musl's state) then see no
 * objects at all, so soload tests the fetch itself instead of trusting the README: one probe on a
 * small program's ELF entry point reading its own first 8 bytes (`t=@+<entry's file offset>:x64`),
 * one run of the program, one line read back. In memory the first byte is the probe's own
 * breakpoint (int3, 0xcc on x86), so bytes 1-7 are compared.
 *
 * tracefs safety: the probe goes into soload's own group and is enabled only in soload's own
 * instance (the names the session uses next, which stale-state cleanup knows), and both are
 * removed before the function returns.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { locateTracefs } from './session';

/** The verdict of one self-test. */
export interface FileOffsetFetchTest {
  /** True: the fetch read the file's bytes. False: it read something else (0 or unrelated bytes). */
  works: boolean;
  /** The program probed and run. */
  binary: string;
  /** File offset of its entry point (the probe and the fetch offset). */
  offset: number;
  /** What the fetch read, as the kernel printed it. */
  read: string;
  /** The file's 8 bytes at `offset` (little-endian, hex). */
  expected: string;
}

/** Programs tried, in order: tiny, present on nearly every Linux system, exit at once. */
export const SELFTEST_PROGRAMS = ['/usr/bin/true', '/bin/true'];

/** File offset of an ELF64 little-endian file's entry point (pure over the file's first bytes). */
export function entryFileOffset(head: Buffer): number | undefined {
  if (head.length < 64 || head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2 || head[5] !== 1) return undefined;
  const entry = Number(head.readBigUInt64LE(0x18));
  const phoff = Number(head.readBigUInt64LE(0x20));
  const phentsize = head.readUInt16LE(0x36);
  const phnum = head.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 56 > head.length) return undefined;
    if (head.readUInt32LE(at) !== 1) continue; // PT_LOAD
    const offset = Number(head.readBigUInt64LE(at + 8));
    const vaddr = Number(head.readBigUInt64LE(at + 16));
    const filesz = Number(head.readBigUInt64LE(at + 32));
    if (entry >= vaddr && entry < vaddr + filesz) return entry - vaddr + offset;
  }
  return undefined;
}

/**
 * Whether what the fetch read is the file's bytes with the first `breakpointBytes` replaced by the
 * uprobe's breakpoint instruction (1 byte on x86, 4 elsewhere) (pure).
 */
export function fetchReadFileBytes(read: string, expected: bigint, breakpointBytes = process.arch === 'x64' || process.arch === 'ia32' ? 1 : 4): boolean {
  if (!/^0x[0-9a-f]+$/i.test(read)) return false;
  const got = BigInt(read);
  const shift = BigInt(8 * breakpointBytes);
  return got !== 0n && got >> shift === expected >> shift;
}

/**
 * Runs the test on the tracefs at `root` with probe group `group` and instance `instance` (both
 * must be soload's own and not exist yet). Undefined when it cannot be run here (no program to
 * probe, the probe refused, or no event came back): callers then keep trusting the README.
 */
export function testFileOffsetFetch(root: string, group: string, instance: string, programs = SELFTEST_PROGRAMS): FileOffsetFetchTest | undefined {
  const binary = programs.find((p) => fs.existsSync(p));
  if (!binary) return undefined;
  const real = fs.realpathSync(binary);
  let head: Buffer;
  try {
    const fd = fs.openSync(real, 'r');
    head = Buffer.alloc(4096);
    fs.readSync(fd, head, 0, head.length, 0);
    fs.closeSync(fd);
  } catch {
    return undefined;
  }
  const offset = entryFileOffset(head);
  if (offset === undefined || !/^\/[A-Za-z0-9._+\-/]*$/.test(real)) return undefined;
  const bytes = Buffer.alloc(8);
  const fd = fs.openSync(real, 'r');
  fs.readSync(fd, bytes, 0, 8, offset);
  fs.closeSync(fd);
  const expected = bytes.readBigUInt64LE();
  const event = 'selftest_foffs';
  const events = path.join(root, 'uprobe_events');
  const hex = `0x${offset.toString(16)}`;
  try {
    fs.appendFileSync(events, `p:${group}/${event} ${real}:${hex} t=@+${hex}:x64\n`);
  } catch {
    return undefined;
  }
  const inst = path.join(root, 'instances', instance);
  let made = false;
  try {
    fs.mkdirSync(inst);
    made = true;
    const enable = path.join(inst, 'events', group, event, 'enable');
    fs.writeFileSync(enable, '1');
    spawnSync(binary, [], { stdio: 'ignore', timeout: 10_000 });
    fs.writeFileSync(enable, '0');
    const line = fs.readFileSync(path.join(inst, 'trace'), 'utf8').split('\n').find((l) => l.includes(` ${event}:`));
    const read = line ? / t=(\S+)/.exec(line)?.[1] : undefined;
    if (read === undefined) return undefined;
    return { works: fetchReadFileBytes(read, expected), binary: real, offset, read, expected: `0x${expected.toString(16)}` };
  } catch {
    return undefined;
  } finally {
    if (made) {
      try {
        fs.rmdirSync(inst);
      } catch {
        /* the kernel refuses while an event is enabled; disabled above */
      }
    }
    try {
      fs.appendFileSync(events, `-:${group}/${event}\n`);
    } catch {
      /* nothing more to do: stale-state cleanup removes the group of a dead soload */
    }
  }
}

let verdict: FileOffsetFetchTest | undefined;

/** Records this process's self-test verdict (the CLI runs the test once, before planning). */
export function setFileOffsetFetchVerdict(v: FileOffsetFetchTest | undefined): void {
  verdict = v;
}

/** The verdict the mechanisms consult; undefined = not measured (trust the README). */
export function fileOffsetFetchVerdict(): FileOffsetFetchTest | undefined {
  return verdict;
}

/** Why a mechanism that needs `@+` cannot run here, or undefined when it can (as far as measured). */
export function fileOffsetFetchRejection(): string | undefined {
  const v = verdict;
  if (!v || v.works) return undefined;
  return `this kernel's @+ file-offset fetch does not read the probed file (self-test on ${v.binary}: read ${v.read} at file offset 0x${v.offset.toString(16)}, the file has ${v.expected})`;
}

/**
 * Runs the self-test once for this process with soload's configured tracefs and names
 * (`<groupPrefix>_<pid>`, `<instancePrefix>_<pid>`) and records the verdict for the planner.
 * Does nothing without root, uprobe_events or a real tracefs mount (check and run report those
 * problems themselves).
 */
export function selfTestFileOffsetFetch(tracefs: { path: string; groupPrefix: string; instancePrefix: string }): FileOffsetFetchTest | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const root = locateTracefs(tracefs.path, true);
  if (!root || !fs.existsSync(path.join(root, 'uprobe_events')) || !fs.existsSync(path.join(root, 'instances'))) return undefined;
  // Only a real tracefs: a configured path can be a fixture tree of plain files, which must not be written.
  if (!isTracefs(root)) return undefined;
  const v = testFileOffsetFetch(root, `${tracefs.groupPrefix}_${process.pid}`, `${tracefs.instancePrefix}_${process.pid}`);
  setFileOffsetFetchVerdict(v);
  return v;
}

const TRACEFS_MAGIC = 0x74726163;

function isTracefs(dir: string): boolean {
  try {
    return fs.statfsSync(dir).type === TRACEFS_MAGIC;
  } catch {
    return false;
  }
}
