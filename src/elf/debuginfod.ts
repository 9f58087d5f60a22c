/**
 * debuginfod client: fetches the separate debug file of an ELF object by its GNU build ID, the way
 * gdb, perf and bpftrace do, so that a dynamic loader installed without its debug package still
 * gets the private symbols (e.g. `_dl_add_to_namespace_list`) soload probes.
 *
 * Protocol (elfutils' debuginfod): `GET <server>/buildid/<lowercase hex build-id>/debuginfo`
 * answers 200 with the debug file, anything else means "not here" and the next server is asked.
 *
 * Downloads land in `<cacheDir>/.build-id/<xx>/<rest>.debug`, the layout of a debug root such as
 * /usr/lib/debug, so an ElfSymbolResolver whose `debugRoot` is the cache dir finds them without any
 * debuginfod-specific code. Nothing reaches that path unverified: a download is streamed to a temp
 * file next to it, checked to be an ELF file carrying the requested build ID, then renamed.
 *
 * No I/O happens at import or construction; the network is touched only by fetch().
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { ErrorCodes, SoloadError } from '../errors';
import { parseElf } from './image';
import { decodeBuildId } from './metadata';

/** Options of DebuginfodClient. */
export interface DebuginfodOptions {
  /** Server base URLs, asked in order (e.g. from debuginfodUrlsFromEnv()). Trailing slashes are ignored. */
  urls: string[];
  /** Cache root; downloads are stored as `<cacheDir>/.build-id/<xx>/<rest>.debug`. Created 0700 on first download. */
  cacheDir: string;
  /** Budget of one fetch() call across all servers (connect, headers and body), in ms. */
  timeoutMs: number;
  /** Largest debug file accepted, in bytes (checked against Content-Length, then while streaming). */
  maxBytes: number;
  /** How long a failed build ID is not asked for again, in ms. Default 10 minutes; 0 disables. */
  negativeTtlMs?: number;
}

/** Outcome of DebuginfodClient.fetch(). It never rejects: failures are values with a reason. */
export type DebuginfodResult =
  | {
      ok: true;
      /** The verified debug file in the cache. */
      path: string;
      /** The URL it was downloaded from; for a cache hit, the cache file's file:// URL. */
      url: string;
      /** Its size. */
      bytes: number;
      /** True when no request was made because the file was already cached. */
      fromCache: boolean;
    }
  | {
      ok: false;
      /** What happened, per server, e.g. `http://127.0.0.1:8002: HTTP 404`. */
      reason: string;
    };

/** Counters of a DebuginfodClient, for `soload check` and tests. */
export interface DebuginfodStats {
  /** HTTP requests sent. */
  readonly requests: number;
  /** fetch() calls answered from the cache directory. */
  readonly cacheHits: number;
  /** fetch() calls answered from the remembered failures, without a request. */
  readonly negativeHits: number;
  /** Debug files downloaded, verified and stored. */
  readonly downloads: number;
  /** Bytes of those stored files. */
  readonly downloadedBytes: number;
  /** fetch() attempts that ended without a file (not counting negativeHits). */
  readonly failures: number;
}

/** Default of DebuginfodOptions.negativeTtlMs. */
const DEFAULT_NEGATIVE_TTL_MS = 10 * 60_000;
/**
 * Remembered failures are pruned lazily; this bound keeps a host with many unknown objects from
 * growing the map forever (the oldest entry goes first).
 */
const MAX_NEGATIVE_ENTRIES = 4096;
/** Build IDs are 8 (xxhash), 16 (md5/uuid) or 20 (sha1) bytes in practice; ld accepts any 0xHEX. */
const BUILD_ID_RE = /^(?:[0-9a-f]{2}){2,128}$/;

/**
 * Server URLs from DEBUGINFOD_URLS: whitespace-separated (the standard separator is a space; tabs,
 * newlines and repeated spaces are tolerated), trailing slashes removed, duplicates dropped, and only
 * http:// and https:// kept (elfutils also accepts file:// and other curl schemes; soload's client
 * speaks HTTP only).
 */
export function debuginfodUrlsFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  for (const word of (env.DEBUGINFOD_URLS ?? '').split(/\s+/)) {
    const url = normaliseUrl(word);
    if (url !== undefined && !out.includes(url)) out.push(url);
  }
  return out;
}

function normaliseUrl(raw: string): string | undefined {
  const url = raw.trim().replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]/i.test(url)) return undefined;
  try {
    new URL(url);
  } catch {
    return undefined;
  }
  return url;
}

/** Lowercase build ID, or undefined when `id` is not an even-length hex string of 2..128 bytes. */
function normaliseBuildId(id: string): string | undefined {
  if (typeof id !== 'string') return undefined;
  const lower = id.toLowerCase();
  return BUILD_ID_RE.test(lower) ? lower : undefined;
}

/** Why one server attempt ended; `fatal` stops asking further servers (the time budget is spent). */
interface Attempt {
  readonly ok: false;
  readonly reason: string;
  readonly fatal: boolean;
}

type Stored = { ok: true; path: string; url: string; bytes: number };

/**
 * Fetches separate debug files by build ID from debuginfod servers into a build-id cache directory.
 * Concurrent fetches of one build ID share one download; failures are remembered for
 * `negativeTtlMs` so an unreachable server is not asked again for every object.
 */
export class DebuginfodClient {
  /** Normalised server URLs, in the order they are asked. */
  readonly urls: readonly string[];
  /** Cache root (see DebuginfodOptions.cacheDir). */
  readonly cacheDir: string;
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  private readonly negativeTtlMs: number;
  private readonly inFlight = new Map<string, Promise<DebuginfodResult>>();
  private readonly negative = new Map<string, { until: number; reason: string }>();
  private counters = { requests: 0, cacheHits: 0, negativeHits: 0, downloads: 0, downloadedBytes: 0, failures: 0 };

  /** @throws SoloadError INTERNAL when a numeric option is not a positive number or cacheDir is empty */
  constructor(opts: DebuginfodOptions) {
    const positive = (name: string, v: unknown, allowZero = false): number => {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (v === 0 && !allowZero)) {
        throw new SoloadError(ErrorCodes.INTERNAL, `DebuginfodClient: ${name} must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${String(v)}`, {
          [name]: v,
        });
      }
      return v;
    };
    if (typeof opts.cacheDir !== 'string' || opts.cacheDir === '') {
      throw new SoloadError(ErrorCodes.INTERNAL, 'DebuginfodClient: cacheDir must be a non-empty path', { cacheDir: opts.cacheDir });
    }
    this.timeoutMs = positive('timeoutMs', opts.timeoutMs);
    this.maxBytes = positive('maxBytes', opts.maxBytes);
    this.negativeTtlMs = positive('negativeTtlMs', opts.negativeTtlMs ?? DEFAULT_NEGATIVE_TTL_MS, true);
    const urls: string[] = [];
    for (const u of opts.urls) {
      const n = normaliseUrl(u);
      if (n !== undefined && !urls.includes(n)) urls.push(n);
    }
    this.urls = Object.freeze(urls);
    this.cacheDir = path.resolve(opts.cacheDir);
  }

  /**
   * The cached debug file of `buildId` (`<cacheDir>/.build-id/<xx>/<rest>.debug`) when it exists and
   * is a regular file; undefined otherwise, and for a string that is not a hex build ID. No network.
   */
  cachedPath(buildId: string): string | undefined {
    const id = normaliseBuildId(buildId);
    if (id === undefined) return undefined;
    const p = this.pathFor(id);
    try {
      return fs.statSync(p).isFile() ? p : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The debug file of `buildId`: from the cache, else downloaded from the first server that has it
   * (verified to be an ELF file with that build ID). Never rejects. Within `negativeTtlMs` of a
   * failure the same failure is returned without asking the servers again.
   */
  fetch(buildId: string): Promise<DebuginfodResult> {
    const id = normaliseBuildId(buildId);
    if (id === undefined) {
      // It would become part of a URL and a path: refuse anything but hex before doing any I/O.
      this.counters.failures++;
      return Promise.resolve({ ok: false, reason: `invalid build-id ${JSON.stringify(String(buildId)).slice(0, 80)}: expected an even number of hex digits (4 to 256)` });
    }
    const cached = this.cachedPath(id);
    if (cached !== undefined) return Promise.resolve(this.cacheHit(cached));

    const shared = this.inFlight.get(id);
    if (shared) return shared;

    const remembered = this.negative.get(id);
    if (remembered) {
      const left = remembered.until - Date.now();
      if (left > 0) {
        this.counters.negativeHits++;
        return Promise.resolve({ ok: false, reason: `${remembered.reason} (remembered; not asked again for ${Math.ceil(left / 1000)} s)` });
      }
      this.negative.delete(id);
    }

    const p = this.download(id)
      .catch((err: unknown): DebuginfodResult => ({ ok: false, reason: `unexpected error: ${errText(err)}` }))
      .then((r) => {
        if (r.ok) {
          this.counters.downloads++;
          this.counters.downloadedBytes += r.bytes;
        } else {
          this.counters.failures++;
          this.remember(id, r.reason);
        }
        return r;
      })
      .finally(() => this.inFlight.delete(id));
    this.inFlight.set(id, p);
    return p;
  }

  /** Counters since construction. */
  stats(): DebuginfodStats {
    return { ...this.counters };
  }

  private pathFor(id: string): string {
    return path.join(this.cacheDir, '.build-id', id.slice(0, 2), `${id.slice(2)}.debug`);
  }

  private cacheHit(p: string): DebuginfodResult {
    this.counters.cacheHits++;
    let bytes = 0;
    try {
      bytes = fs.statSync(p).size;
    } catch {
      // cachedPath() saw it a moment ago; a concurrent removal only loses the size.
    }
    return { ok: true, path: p, url: pathToFileURL(p).href, bytes, fromCache: true };
  }

  private remember(id: string, reason: string): void {
    if (this.negativeTtlMs <= 0) return;
    this.negative.delete(id);
    this.negative.set(id, { until: Date.now() + this.negativeTtlMs, reason });
    if (this.negative.size > MAX_NEGATIVE_ENTRIES) {
      const now = Date.now();
      for (const [k, v] of this.negative) if (v.until <= now) this.negative.delete(k);
      while (this.negative.size > MAX_NEGATIVE_ENTRIES) this.negative.delete(this.negative.keys().next().value as string);
    }
  }

  /** Asks each server in turn within one deadline; the per-server reasons make up the failure reason. */
  private async download(id: string): Promise<DebuginfodResult> {
    if (this.urls.length === 0) return { ok: false, reason: 'no debuginfod server configured (DEBUGINFOD_URLS is empty)' };
    const deadline = Date.now() + this.timeoutMs;
    const reasons: string[] = [];
    for (const base of this.urls) {
      const r = await this.tryServer(id, base, deadline);
      if (r.ok) return { ...r, fromCache: false };
      reasons.push(r.reason);
      if (r.fatal) break;
    }
    return { ok: false, reason: reasons.join('; ') };
  }

  private async tryServer(id: string, base: string, deadline: number): Promise<Stored | Attempt> {
    const url = `${base}/buildid/${id}/debuginfo`;
    const remaining = deadline - Date.now();
    if (remaining <= 0) return { ok: false, reason: `${base}: timed out after ${this.timeoutMs} ms`, fatal: true };

    // One controller per attempt, aborted by the deadline or by the size check: undici's fetch then
    // rejects wherever it is (connecting, waiting for headers, or mid-body), so a server that accepts
    // the connection and never answers cannot hold the caller past the deadline.
    const controller = new AbortController();
    let aborted: 'timeout' | 'size' | undefined;
    const timer = setTimeout(() => {
      aborted = 'timeout';
      controller.abort();
    }, remaining);
    const fail = (why: string, fatal = false): Attempt => ({ ok: false, reason: `${base}: ${why}`, fatal });
    let tmp: string | undefined;
    try {
      this.counters.requests++;
      let res: Response;
      try {
        res = await fetch(url, { signal: controller.signal, redirect: 'follow', headers: { 'user-agent': 'soload-debuginfod-client' } });
      } catch (err) {
        if (aborted === 'timeout') return fail(`timed out after ${this.timeoutMs} ms`, true);
        return fail(`request failed (${errText(err)})`);
      }
      if (res.status !== 200) {
        await res.body?.cancel().catch(() => undefined);
        return fail(`HTTP ${res.status}`);
      }
      // Content-Length is the compressed size when the server gzips; still a sound early refusal,
      // and the streamed count below is the real limit.
      const declared = Number(res.headers.get('content-length') ?? NaN);
      if (Number.isFinite(declared) && declared > this.maxBytes) {
        aborted = 'size';
        controller.abort();
        return fail(`larger than maxBytes (Content-Length ${declared} > ${this.maxBytes})`);
      }
      if (!res.body) return fail('HTTP 200 without a body');

      const dir = path.dirname(this.pathFor(id));
      await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
      // Same directory as the final name, so the rename is atomic (one file system); a unique name so
      // concurrent soload processes sharing the cache never write into each other's file.
      tmp = path.join(dir, `.tmp-${id.slice(2)}-${process.pid}-${randomBytes(4).toString('hex')}`);
      const fh = await fs.promises.open(tmp, 'wx', 0o600);
      let bytes = 0;
      try {
        for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
          bytes += chunk.byteLength;
          if (bytes > this.maxBytes) {
            // Leaving the loop cancels the body stream, which closes the connection; no error to
            // catch, so the reason is decided below rather than by whatever the cancel throws.
            aborted = 'size';
            break;
          }
          await fh.write(chunk);
        }
      } catch (err) {
        if (aborted === 'timeout') return fail(`timed out after ${this.timeoutMs} ms (${bytes} bytes received)`, true);
        if (aborted !== 'size') return fail(`download failed after ${bytes} bytes (${errText(err)})`);
      } finally {
        await fh.close();
      }
      clearTimeout(timer);
      if (aborted === 'size') {
        controller.abort();
        return fail(`larger than maxBytes (more than ${this.maxBytes} bytes received)`);
      }

      const verdict = verify(await fs.promises.readFile(tmp), id);
      if (verdict !== undefined) return fail(verdict);
      const dest = this.pathFor(id);
      await fs.promises.rename(tmp, dest);
      tmp = undefined;
      return { ok: true, path: dest, url, bytes };
    } catch (err) {
      return fail(`cannot store the download in ${this.cacheDir} (${errText(err)})`);
    } finally {
      clearTimeout(timer);
      if (tmp !== undefined) await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
    }
  }
}

/** Undefined when `buf` is an ELF file whose GNU build-id note is `id`; otherwise why not. */
function verify(buf: Buffer, id: string): string | undefined {
  let got: string | undefined;
  try {
    got = decodeBuildId(parseElf(buf, 'the download'));
  } catch (err) {
    return `not an ELF file (${errText(err)})`;
  }
  if (got === undefined) return 'build-id mismatch (the file has no GNU build-id note)';
  if (got !== id) return `build-id mismatch (the file's is ${got})`;
  return undefined;
}

/** Message of an error, with the cause's code when undici wraps a socket error in "fetch failed". */
function errText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return `${err.message}: ${code ?? cause.message}`;
  }
  return err.message;
}
