/**
 * Helpers for running the real soload CLI the way a service manager would: under a command prefix
 * (setpriv with another uid and capability set, unshare with a private mount namespace), or through
 * a wrapper (npm start), and for comparing the kernel's tracing state byte for byte.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI, FIXTURES_C, gcc, TRACEFS } from './soload';

/** The files soload may write to, read whole: uprobe_events, dynamic_events and the instance names. */
export interface KernelFootprint {
  uprobeEvents: string;
  dynamicEvents: string;
  instances: string[];
}

/** The tracing state other tracers and soload share, as bytes. */
export function kernelFootprint(): KernelFootprint {
  const read = (f: string) => (fs.existsSync(path.join(TRACEFS, f)) ? fs.readFileSync(path.join(TRACEFS, f), 'utf8') : '');
  return { uprobeEvents: read('uprobe_events'), dynamicEvents: read('dynamic_events'), instances: fs.readdirSync(path.join(TRACEFS, 'instances')).sort() };
}

/** The lines of `uprobe_events`/`dynamic_events` and instances named after `prefix`. */
export function prefixLeftovers(prefix: string): { probes: string[]; dynamic: string[]; instances: string[] } {
  const f = kernelFootprint();
  const re = new RegExp(`[pr]:${prefix}_\\d+/`);
  return {
    probes: f.uprobeEvents.split('\n').filter((l) => re.test(l)),
    dynamic: f.dynamicEvents.split('\n').filter((l) => re.test(l)),
    instances: f.instances.filter((i) => new RegExp(`^${prefix}_\\d+$`).test(i)),
  };
}

/** A world-readable temp dir (mkdtemp makes 0700, which a service uid could not enter). */
export function openTmpDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(d, 0o755);
  return d;
}

/** A dlopen program and a library to load, built in a host /tmp directory every uid can read. */
export function buildLoadFixture(name: string): { dir: string; loader: string; lib: string } {
  const dir = openTmpDir(`soload-${name}-`);
  const loader = path.join(dir, 'dlopener');
  gcc(['-o', loader, path.join(FIXTURES_C, 'dlopener.c'), '-ldl']);
  const src = path.join(dir, 'lib.c');
  fs.writeFileSync(src, `int ${name.replace(/\W/g, '_')}_fn(void) { return 7; }\n`);
  const lib = path.join(dir, `lib${name.replace(/\W/g, '')}.so`);
  gcc(['-shared', '-fPIC', '-o', lib, src]);
  return { dir, loader, lib };
}

/** A soload config file (mode 0644) for a run that prints records and exports nothing. */
export function consoleConfig(dir: string, extra: Record<string, unknown> = {}): string {
  const file = path.join(dir, 'soload.json');
  const base = { otel: { exporters: ['console'], metrics: { enabled: false } }, capture: { snapshot: false }, security: { stateDir: '' }, log: { statsIntervalMs: 0 } };
  fs.writeFileSync(file, JSON.stringify(deepMerge(base, extra)));
  fs.chmodSync(file, 0o644);
  return file;
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && typeof a[k] === 'object' ? deepMerge(a[k] as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

/** A JSON record soload printed. */
export type PrintedRecord = { attributes: Record<string, unknown>; resource: Record<string, unknown>; body: string };

/**
 * Asserts a record lacks nothing a privilege or a mount could hide. The package index loads in the
 * background after "ready", so a load right after start may still say `soload.package`: that is timing.
 */
export function assertNothingMissing(rec: PrintedRecord): void {
  const missing = ((rec.attributes['soload.enrichment.missing'] as string[] | undefined) ?? []).filter((k) => k !== 'soload.package');
  if (missing.length) throw new Error(`record lacks ${missing.join(', ')}: ${JSON.stringify(rec)}`);
}

/** soload run started under a prefix command. */
export interface PrefixedSoload {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  records(): PrintedRecord[];
  /** Resolves when a record matches, rejects with soload's stderr at the timeout. */
  waitForRecord(pred: (r: PrintedRecord) => boolean, timeoutMs?: number): Promise<PrintedRecord>;
  exited: Promise<number | string>;
}

/**
 * Starts `node CLI run --config FILE` after `prefix` (e.g. setpriv …), waits for "ready" (or
 * the exit, which rejects with stderr).
 */
export async function startUnder(prefix: string[], config: string, env: NodeJS.ProcessEnv = {}, readyTimeoutMs = 30_000): Promise<PrefixedSoload> {
  const argv = [...prefix, process.execPath, CLI, 'run', '--config', config];
  const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  const deadline = Date.now() + readyTimeoutMs;
  while (!/soload: info: ready/.test(err)) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`soload exited before ready (${child.exitCode ?? child.signalCode}):\n${err}`);
    if (Date.now() > deadline) {
      child.kill('SIGTERM');
      throw new Error(`soload not ready after ${readyTimeoutMs} ms:\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const records = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as PrintedRecord];
        } catch {
          return [];
        }
      });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    records,
    exited,
    async waitForRecord(pred, timeoutMs = 15_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const hit = records().find(pred);
        if (hit) return hit;
        if (Date.now() > end) throw new Error(`no matching record after ${timeoutMs} ms; stderr:\n${err}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}
