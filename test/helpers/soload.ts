/**
 * Test helpers that run the real soload CLI (compiled, as users run it) against the live kernel,
 * compile C fixtures, and inspect tracefs.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ConsoleRecord } from '../../src/otel/console-exporter';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
export const TRACEFS = fs.existsSync('/sys/kernel/tracing/trace') ? '/sys/kernel/tracing' : '/sys/kernel/debug/tracing';
export const FIXTURES_C = path.join(ROOT, 'test', 'fixtures', 'c');

/**
 * Throws (the test fails, loudly) when the live-kernel prerequisites are missing: integration
 * tests must not silently pass on a host that cannot run them.
 */
export function requireLiveKernel(): void {
  if (process.getuid?.() !== 0) throw new Error('integration tests need root: run `npm test` as root');
  if (!fs.existsSync(path.join(TRACEFS, 'uprobe_events'))) {
    throw new Error(`${TRACEFS}/uprobe_events missing: this kernel lacks CONFIG_UPROBE_EVENTS (or tracefs is not mounted)`);
  }
}

/** A fresh temp dir. */
export function tmpDir(prefix = 'soload-it-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** gcc wrapper that throws with gcc's output on failure. */
export function gcc(args: string[]): void {
  const r = spawnSync('gcc', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc ${args.join(' ')} failed:\n${r.stderr}`);
}

/** uprobe_events lines and instance names right now. */
export function tracefsState(): { probes: string[]; instances: string[] } {
  const probes = fs.readFileSync(path.join(TRACEFS, 'uprobe_events'), 'utf8').split('\n').filter(Boolean);
  const instances = fs.readdirSync(path.join(TRACEFS, 'instances'));
  return { probes, instances };
}

/** soload's own leftovers (group `soload_<pid>` / instance `soload_<pid>`). */
export function soloadLeftovers(prefix = 'soload'): { probes: string[]; instances: string[] } {
  const s = tracefsState();
  const re = new RegExp(`^[pr]:${prefix}_\\d+/`);
  return { probes: s.probes.filter((p) => re.test(p)), instances: s.instances.filter((i) => new RegExp(`^${prefix}_\\d+$`).test(i)) };
}

/** A JSON record as soload's console exporter prints it, plus when the test saw it (ms since epoch). */
export interface ConsoleLine extends ConsoleRecord {
  seenAt: number;
}

/** A running soload child process. */
export interface SoloadProcess {
  child: ChildProcess;
  pid: number;
  records: ConsoleLine[];
  stdoutRaw(): string;
  stderr(): string;
  waitFor(pred: (r: ConsoleLine) => boolean, timeoutMs?: number, count?: number): Promise<ConsoleLine[]>;
  /** Sends `signal` and resolves with the exit code (or signal name). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | string>;
}

/**
 * The tests written against the agent resource layout (process.* as record attributes) run in
 * agent mode unless they choose a mode (config `otel.resourceMode` or SOLOAD_RESOURCE_MODE); the
 * process mode, soload's default, has its own tests and the benchmarks run it.
 */
function resourceModeEnv(config: object, env: NodeJS.ProcessEnv | undefined): NodeJS.ProcessEnv {
  const chosen = (config as { otel?: { resourceMode?: string } }).otel?.resourceMode !== undefined || env?.SOLOAD_RESOURCE_MODE !== undefined;
  return chosen ? {} : { SOLOAD_RESOURCE_MODE: 'agent' };
}

/**
 * Starts `soload run` with `config` (written to a temp file) and waits for "ready" on stderr.
 * Rejects with soload's stderr when it exits first.
 */
export async function startSoload(
  config: object,
  opts: { env?: NodeJS.ProcessEnv; readyTimeoutMs?: number; args?: string[]; /** node's own flags, e.g. --cpu-prof */ nodeArgs?: string[] } = {},
): Promise<SoloadProcess> {
  const dir = tmpDir('soload-cfg-');
  const cfgFile = path.join(dir, 'config.json');
  fs.writeFileSync(cfgFile, JSON.stringify(config));
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), CLI, 'run', '--config', cfgFile, ...(opts.args ?? [])], {
    cwd: ROOT,
    env: { ...process.env, ...resourceModeEnv(config, opts.env), ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const records: ConsoleLine[] = [];
  let out = '';
  let err = '';
  let tail = '';
  child.stdout!.on('data', (d: Buffer) => {
    const s = d.toString('utf8');
    out += s;
    tail += s;
    const lines = tail.split('\n');
    tail = lines.pop()!;
    for (const l of lines) {
      if (!l.trim()) continue;
      try {
        records.push({ ...(JSON.parse(l) as Omit<ConsoleLine, 'seenAt'>), seenAt: Date.now() });
      } catch {
        /* non-JSON lines are kept in stdoutRaw */
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 20_000);
  while (!/soload: info: ready/.test(err)) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`soload exited before ready (${child.exitCode ?? child.signalCode}):\n${err}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`soload not ready within ${opts.readyTimeoutMs ?? 20_000} ms:\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    pid: child.pid!,
    records,
    stdoutRaw: () => out,
    stderr: () => err,
    async waitFor(pred, timeoutMs = 5000, count = 1) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const hits = records.filter(pred);
        if (hits.length >= count) return hits;
        if (Date.now() > until) return hits;
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode ?? child.signalCode!;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** Runs a program to completion, returning stdout lines. */
export function runProgram(file: string, args: string[], env: NodeJS.ProcessEnv = {}): { pid: number; stdout: string; status: number | null } {
  const r = spawnSync(file, args, { env: { ...process.env, ...env }, encoding: 'utf8' });
  const pid = Number(/^(\d+) /m.exec(r.stdout)?.[1] ?? -1);
  return { pid, stdout: r.stdout, status: r.status };
}
