// Test helper: runs Debian's REAL debuginfod (elfutils; the `debuginfod` package, installed here with
// apt-get when missing, as CI machines start without it) over directories of ELF/debug files.
//
// What debuginfod 0.188 does that shapes this helper:
//   - `-F` is a switch (scan ELF/DWARF files); the directories are positional arguments.
//   - It has no listen-address option: it binds the port on every interface (IPv4 and IPv6).
//     The port is picked free on 127.0.0.1 and the URL is http://127.0.0.1:<port>.
//   - It answers HTTP before it has indexed anything (404 for every build ID meanwhile), so
//     readiness is read from /metrics: one traversal done (thread_work_total{role="traverse"} >= 1),
//     every traversed file scanned (thread_work_total{role="scan"} >= traversed_total{type="file"}),
//     and the scan queue empty and idle.
//   - `-t 0` (no periodic rescan) and `-g 0` (no periodic grooming) keep it from re-walking the tree
//     while a test runs; the initial traversal still happens.
//   - With DEBUGINFOD_URLS in its environment it becomes a federating proxy and asks those servers
//     for every build ID it lacks, so the variable is removed from the child's environment.
//   - The sqlite database (-d) grows -wal and -shm files beside it: all live in one temp dir,
//     removed by stop().
//   - Symlinks are not followed without -L (Debian's libc6-dbg ships regular files, so none is needed).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { watchExit } from './exit-watch';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, sleep } from './collector';

export interface StartDebuginfodOptions {
  /** Directories to index (ELF objects and separate debug files, at any depth). */
  dirs: string[];
  /** Port to listen on; default: a free one. */
  port?: number;
  /** How long indexing may take; default 60 s. */
  readyTimeoutMs?: number;
}

export interface DebuginfodHandle {
  /** e.g. http://127.0.0.1:43125 (no trailing slash). */
  url: string;
  port: number;
  /** Milliseconds from spawn until the index was complete. */
  readyMs: number;
  /** Files the server indexed (scanned_files_total). */
  scannedFiles: number;
  /** The server's stdout+stderr so far (its request log with -v). */
  output(): string;
  /** SIGTERM (SIGKILL after 10 s), waits for the exit, removes the database. Idempotent. */
  stop(): Promise<void>;
}

/** Installs the `debuginfod` package if the binary is missing; throws with apt's output when that fails. */
export function ensureDebuginfod(): void {
  if (spawnSync('debuginfod', ['--version'], { stdio: 'ignore' }).status === 0) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (args: string[]): ReturnType<typeof spawnSync> => spawnSync('apt-get', args, { env, encoding: 'utf8' });
  let r = apt(['install', '-y', 'debuginfod']);
  if (r.status !== 0) {
    // A fresh machine has no package lists yet.
    apt(['update']);
    r = apt(['install', '-y', 'debuginfod']);
  }
  if (spawnSync('debuginfod', ['--version'], { stdio: 'ignore' }).status !== 0) {
    throw new Error(`debuginfod is not installed and \`apt-get install -y debuginfod\` failed (exit ${r.status}; needs root):\n${String(r.stderr ?? r.error ?? '')}`);
  }
}

/** Prometheus text → metric line (name plus labels, as printed) → value. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

/** True once the first traversal is over and every file it found has been scanned. */
function indexed(m: Map<string, number>): boolean {
  const v = (k: string): number => m.get(k) ?? 0;
  return (
    v('thread_work_total{role="traverse"}') >= 1 &&
    v('thread_work_total{role="scan"}') >= v('traversed_total{type="file"}') &&
    v('thread_work_pending{role="scan"}') === 0 &&
    v('thread_busy{role="scan"}') === 0
  );
}

/** Starts debuginfod on `dirs` and resolves once it has indexed them. */
export async function startDebuginfod(opts: StartDebuginfodOptions): Promise<DebuginfodHandle> {
  ensureDebuginfod();
  const dirs = opts.dirs.map((d) => path.resolve(d));
  for (const d of dirs) if (!fs.statSync(d).isDirectory()) throw new Error(`startDebuginfod: ${d} is not a directory`);
  const port = opts.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-debuginfod-'));
  const db = path.join(workDir, 'debuginfod.sqlite');
  const args = ['-F', '-p', String(port), '-d', db, '-t', '0', '-g', '0', '-v', ...dirs];
  const env = { ...process.env };
  delete env.DEBUGINFOD_URLS;
  const started = Date.now();
  const proc: ChildProcess = spawn('debuginfod', args, { cwd: workDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  proc.stdout?.on('data', (b: Buffer) => (logs += b.toString()));
  proc.stderr?.on('data', (b: Buffer) => (logs += b.toString()));
  const watch = watchExit(proc);
  const exited = watch.exited;
  // A test that crashes before stop() must not leave a server behind.
  const killAtExit = (): void => void proc.kill('SIGKILL');
  process.once('exit', killAtExit);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (!stopped) {
      stopped = true;
      if (!watch.info()) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
      process.removeListener('exit', killAtExit);
    }
    fs.rmSync(workDir, { recursive: true, force: true });
  };

  const deadline = started + (opts.readyTimeoutMs ?? 60_000);
  let last = new Map<string, number>();
  for (;;) {
    if (watch.info()) {
      await stop();
      throw new Error(`debuginfod exited before it was ready (${watch.info()}); args ${args.join(' ')}; output:\n${logs}`);
    }
    const text = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(2000) }).then(
      (r) => (r.ok ? r.text() : ''),
      () => '',
    );
    if (text) {
      last = parseMetrics(text);
      if (indexed(last)) break;
    }
    if (Date.now() > deadline) {
      await stop();
      const progress = [...last].filter(([k]) => /^(thread_work|traversed|scanned)/.test(k)).map(([k, v]) => `${k} ${v}`);
      throw new Error(`debuginfod on ${url} did not finish indexing ${dirs.join(' ')} in time; metrics: ${progress.join(', ')}; output:\n${logs}`);
    }
    await sleep(50);
  }
  return {
    url,
    port,
    readyMs: Date.now() - started,
    scannedFiles: last.get('scanned_files_total{source="file"}') ?? 0,
    output: () => logs,
    stop,
  };
}
