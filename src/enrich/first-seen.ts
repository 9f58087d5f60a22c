/**
 * "The first time this host loaded this file": `soload.first_seen`, kept across restarts.
 *
 * A key (the caller's: path + build-id, or path + sha256 when there is no build-id) is first seen
 * once per host since the state began — until it is evicted: the store is bounded to `maxEntries`
 * keys and evicts the least recently *seen* ones, so a key unseen for long enough may be reported
 * first seen again. That is the price of a bound a flood of distinct paths cannot break.
 *
 * Keys are stored as a 16-byte sha256 prefix, so a hostile path of any length costs the same
 * 23 bytes of state file; a collision (2^-64 for 100k keys) would only hide one first sighting.
 *
 * State file `first-seen.v1` in `dir`, UTF-8 text, written atomically (temporary file in the same
 * directory, fsync, rename, fsync of the directory), mode 0600:
 *
 * ```
 * soload-first-seen v1 <ms since the epoch the state began>
 * <22 characters: base64url of sha256(key)[0..16)>     one line per key, least recently seen first
 * ...
 * end <number of key lines>
 * ```
 *
 * Anything else (bad header, bad line, missing or wrong `end` — a truncated file) is corrupt: the
 * file is renamed to `first-seen.v1.corrupt-<ms>` and the state starts empty.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import path from 'node:path';
import { ErrorCodes, SoloadError } from '../errors';

/** Options of {@link FirstSeenStore}. */
export interface FirstSeenOptions {
  /** State directory: created with mode 0700 when absent; refused when group/world-writable or not ours. */
  dir: string;
  /** Keys kept at most (least recently seen evicted). Default 100000 (a state file of ~2.3 MB). */
  maxEntries?: number;
  /** A new key is written out within this many ms. Default 5000. */
  flushMs?: number;
  /** Clock, ms since the epoch (for the state's start and the corrupt file's name). */
  now?: () => number;
  /** Errors of the background flush (the state stays dirty and is tried again later). */
  onError?: (err: Error) => void;
  /**
   * Whether the process named in an existing lock file is a live soload (default: the pid exists).
   * A lock whose holder is not alive was left by a crash and is taken over.
   */
  isAlive?: (pid: number) => boolean;
  /** This process's id, written into the lock file. Default process.pid. */
  pid?: number;
}

/** What {@link FirstSeenStore.open} found. */
export interface FirstSeenOpenInfo {
  /** Keys loaded. */
  entries: number;
  /** When the state began (ms since the epoch): first_seen means "first since then". */
  since: number;
  /** Set when a corrupt state file was moved aside: what happened, for the operator's log. */
  recovered?: string;
  /** Where the corrupt file was moved. */
  corruptPath?: string;
}

/** Name of the state file in the state directory. */
export const FIRST_SEEN_FILE = 'first-seen.v1';
/**
 * Lock file beside it, holding the owner's pid: two soloads sharing a state directory would each
 * rewrite the file from their own memory (last writer wins, the other's sightings lost), so the
 * second one is refused the state instead.
 */
export const FIRST_SEEN_LOCK = 'first-seen.v1.lock';

const HEADER = 'soload-first-seen v1';
const KEY_CHARS = 22;
const KEY_RE = /^[A-Za-z0-9_-]{22}$/;
// Far above any maxEntries in use (~2.9M keys); a bigger file is not ours.
const MAX_FILE_BYTES = 64 * 1024 * 1024;

class CorruptState extends Error {}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The compact form of a key stored in the state. */
export function firstSeenDigest(key: string): string {
  return createHash('sha256').update(key).digest().subarray(0, 16).toString('base64url');
}

/** Bounded, persistent set of the keys this host has loaded, in least-recently-seen order. */
export class FirstSeenStore {
  private readonly dir: string;
  private readonly file: string;
  private readonly tmp: string;
  private readonly maxEntries: number;
  private readonly flushMs: number;
  private readonly now: () => number;
  private readonly onError: ((err: Error) => void) | undefined;
  private readonly lock: string;
  private readonly pid: number;
  private readonly isAlive: (pid: number) => boolean;
  private locked = false;
  /** Insertion order is recency order: first = least recently seen. */
  private readonly keys = new Set<string>();
  private since = 0;
  private state: 'new' | 'open' | 'closed' = 'new';
  /** A key was added or evicted: worth a write soon. */
  private dirty = false;
  /** Only the recency order changed: written with the next write or at close, never on its own. */
  private reordered = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: FirstSeenOptions) {
    this.dir = path.resolve(opts.dir);
    this.file = path.join(this.dir, FIRST_SEEN_FILE);
    this.tmp = `${this.file}.tmp`;
    this.maxEntries = Math.floor(opts.maxEntries ?? 100_000);
    if (!(this.maxEntries >= 1)) throw new SoloadError(ErrorCodes.INTERNAL, `FirstSeenStore: maxEntries must be >= 1, got ${opts.maxEntries}`);
    this.flushMs = opts.flushMs ?? 5000;
    this.now = opts.now ?? Date.now;
    this.onError = opts.onError;
    this.lock = path.join(this.dir, FIRST_SEEN_LOCK);
    this.pid = opts.pid ?? process.pid;
    this.isAlive = opts.isAlive ?? pidExists;
  }

  /**
   * Loads the state file (creating `dir` with mode 0700 if absent). Throws when `dir` is not a
   * directory, is group- or world-writable, or is not owned by the current uid: whoever can write
   * there can forge or erase first sightings. A corrupt file is renamed aside and the state starts
   * empty (see `recovered`). A temporary file left by a crash mid-write is ignored and removed.
   */
  open(): FirstSeenOpenInfo {
    if (this.state !== 'new') throw new SoloadError(ErrorCodes.INTERNAL, 'FirstSeenStore: already opened');
    this.checkDir();
    this.acquireLock();
    try {
      fs.unlinkSync(this.tmp);
    } catch {
      // usually absent
    }
    const info: FirstSeenOpenInfo = { entries: 0, since: 0 };
    try {
      const text = this.readState();
      if (text === undefined) {
        this.since = this.now();
        this.dirty = true; // write the start time, so "since" survives a restart with no keys
      } else this.parse(text);
    } catch (err) {
      if (!(err instanceof CorruptState)) throw err;
      this.keys.clear();
      const aside = `${this.file}.corrupt-${this.now()}`;
      fs.renameSync(this.file, aside);
      this.since = this.now();
      this.dirty = true;
      info.recovered = `corrupt state file (${err.message}) moved to ${aside}; first-seen state starts empty`;
      info.corruptPath = aside;
    }
    this.state = 'open';
    if (this.dirty) this.schedule();
    info.entries = this.keys.size;
    info.since = this.since;
    return info;
  }

  /** True when `key` was never seen before (it is then recorded); either way it becomes the most recently seen. */
  firstSeen(key: string): boolean {
    if (this.state !== 'open') throw new SoloadError(ErrorCodes.INTERNAL, `FirstSeenStore: ${this.state === 'new' ? 'not opened' : 'closed'}`);
    const k = firstSeenDigest(key);
    if (this.keys.has(k)) {
      this.keys.delete(k);
      this.keys.add(k);
      this.reordered = true;
      return false;
    }
    this.keys.add(k);
    if (this.keys.size > this.maxEntries) this.keys.delete(this.keys.values().next().value!);
    this.dirty = true;
    this.schedule();
    return true;
  }

  /**
   * Writes the state atomically (temporary file in the same directory, fsync, rename, fsync of the
   * directory; mode 0600) when anything changed. Throws on I/O errors (the state stays dirty).
   */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.state !== 'open' || (!this.dirty && !this.reordered)) return;
    const lines = [`${HEADER} ${this.since}`];
    for (const k of this.keys) lines.push(k);
    lines.push(`end ${this.keys.size}`, '');
    const data = Buffer.from(lines.join('\n'));
    try {
      fs.unlinkSync(this.tmp);
    } catch {
      // usually absent
    }
    let fd: number | undefined;
    try {
      const C = fs.constants;
      fd = fs.openSync(this.tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
      fs.fchmodSync(fd, 0o600); // whatever the umask
      for (let off = 0; off < data.length; ) off += fs.writeSync(fd, data, off, data.length - off);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fd = undefined;
      fs.renameSync(this.tmp, this.file);
    } catch (err) {
      if (fd !== undefined) fs.closeSync(fd);
      try {
        fs.unlinkSync(this.tmp);
      } catch {
        // nothing to clean
      }
      throw err;
    }
    this.dirty = this.reordered = false;
    // The rename is durable only once the directory is.
    const dfd = fs.openSync(this.dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  }

  /** Writes what changed and stops; firstSeen() throws afterwards. */
  close(): void {
    if (this.state !== 'open') {
      this.state = 'closed';
      return;
    }
    try {
      this.flush();
    } finally {
      this.state = 'closed';
      this.releaseLock();
    }
  }

  /**
   * Takes the directory's lock (O_EXCL create of a file holding our pid). A lock held by a live
   * soload is an error naming it; a lock left by a dead one is taken over. Two starts racing for a
   * stale lock both unlink it and retry the exclusive create: exactly one wins.
   */
  private acquireLock(): void {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = fs.openSync(this.lock, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
        try {
          fs.writeSync(fd, `${this.pid}\n`);
        } finally {
          fs.closeSync(fd);
        }
        this.locked = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      let holder = NaN;
      try {
        holder = Number(fs.readFileSync(this.lock, 'utf8').trim());
      } catch {
        continue; // removed meanwhile: try again
      }
      if (Number.isInteger(holder) && holder > 0 && holder !== this.pid && this.isAlive(holder)) {
        throw new SoloadError(
          ErrorCodes.STATE_DIR_UNUSABLE,
          `state directory ${this.dir} is in use by soload pid ${holder} (${this.lock}); give each soload its own security.stateDir (SOLOAD_STATE_DIR)`,
        );
      }
      try {
        fs.unlinkSync(this.lock); // left by a soload that died (or unreadable garbage)
      } catch {
        // another start took it first: its O_EXCL create decides
      }
    }
    throw new SoloadError(ErrorCodes.STATE_DIR_UNUSABLE, `could not take the lock ${this.lock}; remove it if no soload is running`);
  }

  private releaseLock(): void {
    if (!this.locked) return;
    this.locked = false;
    try {
      if (Number(fs.readFileSync(this.lock, 'utf8').trim()) === this.pid) fs.unlinkSync(this.lock);
    } catch {
      // already gone
    }
  }

  /** Keys held. */
  get size(): number {
    return this.keys.size;
  }

  /** Coalesces writes: the first change after a write arms one timer; later changes ride on it. */
  private schedule(): void {
    if (this.timer || this.state !== 'open') return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      try {
        this.flush();
      } catch (err) {
        this.onError?.(err as Error);
        this.schedule(); // still dirty: try again later
      }
    }, this.flushMs);
    this.timer.unref();
  }

  private checkDir(): void {
    let st: fs.Stats;
    try {
      st = fs.statSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new SoloadError(ErrorCodes.STATE_DIR_UNUSABLE, `first-seen state directory ${this.dir}: ${(err as Error).message}`);
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      fs.chmodSync(this.dir, 0o700); // the umask may have taken bits we want, never given any
      return;
    }
    if (!st.isDirectory()) throw new SoloadError(ErrorCodes.STATE_DIR_UNUSABLE, `first-seen state directory ${this.dir} is not a directory`);
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) throw new SoloadError(ErrorCodes.STATE_DIR_UNUSABLE, `first-seen state directory ${this.dir} is owned by uid ${st.uid}, not by soload's uid ${uid}`);
    if (st.mode & 0o022) {
      throw new SoloadError(ErrorCodes.STATE_DIR_UNUSABLE, `first-seen state directory ${this.dir} is group- or world-writable (mode ${(st.mode & 0o7777).toString(8)}): others could forge the state; chmod go-w it`);
    }
  }

  /** The state file's text; undefined when there is none. */
  private readState(): string | undefined {
    let fd: number;
    try {
      fd = fs.openSync(this.file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      if (code === 'ELOOP') throw new CorruptState('a symlink');
      throw new SoloadError(ErrorCodes.STATE_DIR_UNUSABLE, `first-seen state ${this.file}: ${(err as Error).message}`);
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new CorruptState('not a regular file');
      if (st.size > MAX_FILE_BYTES) throw new CorruptState(`${st.size} bytes`);
      return fs.readFileSync(fd, 'utf8');
    } finally {
      fs.closeSync(fd);
    }
  }

  private parse(text: string): void {
    const lines = text.split('\n');
    if (lines.pop() !== '') throw new CorruptState('no final newline');
    const head = /^soload-first-seen v1 (\d{1,16})$/.exec(lines[0] ?? '');
    if (!head) throw new CorruptState('unknown header');
    const tail = /^end (\d{1,10})$/.exec(lines[lines.length - 1] ?? '');
    if (!tail || lines.length < 2 || Number(tail[1]) !== lines.length - 2) throw new CorruptState('truncated');
    // Oldest first: past maxEntries (lowered since the write) only the most recent are kept.
    const from = Math.max(1, lines.length - 1 - this.maxEntries);
    for (let i = 1; i < lines.length - 1; i++) {
      const k = lines[i]!;
      if (k.length !== KEY_CHARS || !KEY_RE.test(k)) throw new CorruptState(`bad line ${i + 1}`);
      if (i < from) continue;
      this.keys.delete(k);
      this.keys.add(k);
    }
    this.since = Number(head[1]);
  }
}
