// Test helper: runs the REAL OpenTelemetry Collector built by scripts/build-collector.sh
// (.cache/otelcol/otelcol-soload) on loopback, and reads back what its file exporter wrote.
//
// Ports: configs may use the placeholders below; startCollector replaces each with a free
// loopback port (found by binding port 0) or the work dir before writing the config file:
//   {{OTLP_HTTP_PORT}}  OTLP/HTTP receiver port   -> handle.httpEndpoint = http://127.0.0.1:<port>
//   {{OTLP_GRPC_PORT}}  OTLP/gRPC receiver port   -> handle.grpcEndpoint
//   {{HEALTH_PORT}}     health_check extension     -> readiness is polled there
//   {{WORK_DIR}}        the collector's work dir (absolute)
// A config with literal ports works too: pass `httpPort` (or use fileExporterConfig(port, out)),
// otherwise the first `endpoint: 127.0.0.1:<port>` under an `http:` key is taken.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** The repo root: nearest ancestor with package.json (works from test/helpers and dist/test/helpers). */
export const REPO_ROOT = ((): string => {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json')) || path.basename(dir) === 'dist') {
    const up = path.dirname(dir);
    if (up === dir) return path.resolve(__dirname, '..', '..');
    dir = up;
  }
  return dir;
})();
export const COLLECTOR_BIN = process.env.SOLOAD_OTELCOL_BIN ?? path.join(REPO_ROOT, '.cache', 'otelcol', 'otelcol-soload');

/** Throws a clear error when the Collector binary has not been built. */
export function requireCollectorBinary(bin: string = COLLECTOR_BIN): string {
  if (!fs.existsSync(bin)) {
    throw new Error(`OpenTelemetry Collector binary not found at ${bin}: run \`bash scripts/build-collector.sh\` first`);
  }
  return bin;
}

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close((err) => (err ? reject(err) : port ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

/** Resolves true once a TCP connection to host:port succeeds. */
export function canConnect(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface StartCollectorOptions {
  /** Collector YAML; may contain the {{...}} placeholders described at the top of this file. */
  configYaml: string;
  /** Directory for config, logs and outputs; default: a fresh temp dir (removed by stop() only if we made it). */
  workDir?: string;
  /** OTLP/HTTP port when the config hard-codes it (otherwise detected, see top of file). */
  httpPort?: number;
  /** The file exporter's output file; default: detected from the config's `path:` line, if any. */
  fileOutput?: string;
  /** Extra environment for the collector process (e.g. values for `${env:VAR}` in the config). */
  env?: Record<string, string | undefined>;
  /** Default 30 s. */
  readyTimeoutMs?: number;
  /** Grace period between SIGTERM and SIGKILL in stop(); default 10 s. */
  stopTimeoutMs?: number;
  /** Collector binary; default .cache/otelcol/otelcol-soload (or $SOLOAD_OTELCOL_BIN). */
  binary?: string;
  /** Keep the temp work dir after stop() (for debugging). Also: SOLOAD_KEEP_TEST_DIRS=1. */
  keepWorkDir?: boolean;
}

export interface CollectorHandle {
  /** e.g. http://127.0.0.1:43123 (POST `${httpEndpoint}/v1/logs`). */
  httpEndpoint: string;
  /** e.g. 127.0.0.1:43124 when the config uses {{OTLP_GRPC_PORT}}. */
  grpcEndpoint?: string;
  /** health_check URL when the config uses {{HEALTH_PORT}}. */
  healthUrl?: string;
  /** File exporter output path, if the config has one. */
  fileOutput?: string;
  workDir: string;
  configPath: string;
  /** Current process id (changes on restart). */
  readonly pid: number | undefined;
  /** Collector's stdout+stderr so far (all runs). */
  output(): string;
  /** SIGTERM, then SIGKILL after stopTimeoutMs; resolves when the process has exited. Idempotent. */
  stop(): Promise<void>;
  /** Sends `signal` (default SIGKILL: a crash) and resolves when the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGSTOP / SIGCONT: the receiver stops answering without closing its socket. */
  pause(): void;
  resume(): void;
  /** stop() (if running), then start again with the same config and ports, waiting for readiness. */
  restart(): Promise<void>;
}

const READY_LINE = 'Everything is ready';

/** Replaces {{...}} placeholders; returns the ports chosen. */
async function fillPlaceholders(
  yaml: string,
  workDir: string,
): Promise<{ yaml: string; httpPort?: number; grpcPort?: number; healthPort?: number }> {
  const out: { yaml: string; httpPort?: number; grpcPort?: number; healthPort?: number } = { yaml };
  const ports: Array<[string, 'httpPort' | 'grpcPort' | 'healthPort']> = [
    ['{{OTLP_HTTP_PORT}}', 'httpPort'],
    ['{{OTLP_GRPC_PORT}}', 'grpcPort'],
    ['{{HEALTH_PORT}}', 'healthPort'],
  ];
  const used = new Set<number>();
  for (const [ph, key] of ports) {
    if (!out.yaml.includes(ph)) continue;
    let p = await freePort();
    while (used.has(p)) p = await freePort();
    used.add(p);
    out[key] = p;
    out.yaml = out.yaml.split(ph).join(String(p));
  }
  out.yaml = out.yaml.split('{{WORK_DIR}}').join(workDir);
  return out;
}

function detectHttpPort(yaml: string): number | undefined {
  // first `endpoint: 127.0.0.1:NNNN` / localhost / 0.0.0.0 after an `http:` key
  const m = /\bhttp:\s*\n(?:[ \t]+[^\n]*\n)*?[ \t]+endpoint:\s*["']?(?:127\.0\.0\.1|localhost|0\.0\.0\.0|\[::1\]):(\d+)/.exec(yaml);
  return m ? Number(m[1]) : undefined;
}

function detectFileOutput(yaml: string): string | undefined {
  const m = /^[ \t]+path:\s*["']?([^"'\s#]+)/m.exec(yaml);
  return m ? m[1] : undefined;
}

/**
 * Starts the Collector with `opts.configYaml` and resolves once it is ready: the health_check
 * endpoint answers 200 (if {{HEALTH_PORT}} is used), the collector has logged
 * "Everything is ready", and the OTLP/HTTP port accepts connections. Rejects, with the
 * collector's output, if it exits first or is not ready within readyTimeoutMs.
 */
export async function startCollector(opts: StartCollectorOptions): Promise<CollectorHandle> {
  const bin = requireCollectorBinary(opts.binary ?? COLLECTOR_BIN);
  const ownDir = !opts.workDir;
  const workDir = opts.workDir ? path.resolve(opts.workDir) : fs.mkdtempSync(path.join(os.tmpdir(), 'soload-otelcol-'));
  fs.mkdirSync(workDir, { recursive: true });
  const filled = await fillPlaceholders(opts.configYaml, workDir);
  const httpPort = opts.httpPort ?? filled.httpPort ?? detectHttpPort(filled.yaml);
  if (!httpPort) throw new Error('startCollector: cannot tell the OTLP/HTTP port: use {{OTLP_HTTP_PORT}} in the config or pass httpPort');
  const configPath = path.join(workDir, 'otelcol.yaml');
  fs.writeFileSync(configPath, filled.yaml);
  const fileOutput = opts.fileOutput ?? detectFileOutput(filled.yaml);
  const healthUrl = filled.healthPort ? `http://127.0.0.1:${filled.healthPort}/` : undefined;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 10_000;
  const logPath = path.join(workDir, 'otelcol.log');
  let logs = '';
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const launch = async (): Promise<void> => {
    const runStart = logs.length;
    const proc = spawn(bin, ['--config', configPath], {
      cwd: workDir,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let exitInfo: string | undefined;
    exited = new Promise<void>((resolve) => {
      proc.once('exit', (code, signal) => {
        exitInfo = `exit code ${code}, signal ${signal}`;
        if (child === proc) child = undefined;
        resolve();
      });
      proc.once('error', (err) => {
        exitInfo = `spawn error: ${err.message}`;
        if (child === proc) child = undefined;
        resolve();
      });
    });
    const onData = (b: Buffer): void => {
      logs += b.toString();
      fs.appendFileSync(logPath, b);
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);

    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      if (exitInfo) {
        throw new Error(`collector exited before it was ready (${exitInfo}); config ${configPath}; output:\n${logs.slice(runStart)}`);
      }
      const logged = logs.indexOf(READY_LINE, runStart) >= 0;
      let healthy = true;
      if (logged && healthUrl) {
        healthy = await fetch(healthUrl).then((r) => r.status === 200, () => false);
      }
      if (logged && healthy && (await canConnect(httpPort))) return;
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        await exited;
        throw new Error(`collector not ready within ${readyTimeoutMs} ms; config ${configPath}; output:\n${logs.slice(runStart)}`);
      }
      await sleep(50);
    }
  };

  const signalAndWait = async (signal: NodeJS.Signals, graceMs: number): Promise<void> => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return exited;
    if (proc.killed && signal !== 'SIGKILL') {
      // already signalled: just wait
    } else {
      proc.kill('SIGCONT'); // in case it was paused
      proc.kill(signal);
    }
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };

  await launch().catch((err: unknown) => {
    if (ownDir && !keep(opts)) fs.rmSync(workDir, { recursive: true, force: true });
    throw err;
  });

  let stopped = false;
  const handle: CollectorHandle = {
    httpEndpoint: `http://127.0.0.1:${httpPort}`,
    grpcEndpoint: filled.grpcPort ? `127.0.0.1:${filled.grpcPort}` : undefined,
    healthUrl,
    fileOutput,
    workDir,
    configPath,
    get pid() {
      return child?.pid;
    },
    output: () => logs,
    async stop() {
      await signalAndWait('SIGTERM', stopTimeoutMs);
      if (!stopped) {
        stopped = true;
        if (ownDir && !keep(opts)) fs.rmSync(workDir, { recursive: true, force: true });
      }
    },
    kill: (signal: NodeJS.Signals = 'SIGKILL') => signalAndWait(signal, stopTimeoutMs),
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
    async restart() {
      if (stopped) throw new Error('restart() after stop(): the work dir is gone');
      await signalAndWait('SIGTERM', stopTimeoutMs);
      await launch();
    },
  };
  return handle;
}

function keep(opts: StartCollectorOptions): boolean {
  return Boolean(opts.keepWorkDir) || process.env.SOLOAD_KEEP_TEST_DIRS === '1';
}

/**
 * `otelcol-soload validate --config <file>`; returns exit status and output (does not throw).
 * `env` adds/overrides environment variables (values for `${env:...}` references).
 */
export function validateCollectorConfig(
  configFile: string,
  env: Record<string, string | undefined> = {},
  bin: string = COLLECTOR_BIN,
): { status: number | null; output: string } {
  requireCollectorBinary(bin);
  const r = spawnSync(bin, ['validate', '--config', configFile], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

/**
 * Collector config: OTLP/HTTP receiver on 127.0.0.1:<port> -> batch (200 ms) -> file exporter
 * (OTLP JSON lines, flushed every 100 ms; truncated when the collector starts) and debug (basic).
 * Defaults use placeholders ({{OTLP_HTTP_PORT}}, {{WORK_DIR}}/logs.jsonl) so startCollector picks
 * them. opts.healthCheck adds the health_check extension ({{HEALTH_PORT}}; readiness then also
 * waits for it), opts.grpc an OTLP/gRPC receiver ({{OTLP_GRPC_PORT}}).
 */
export function fileExporterConfig(
  port: number | string = '{{OTLP_HTTP_PORT}}',
  outFile = '{{WORK_DIR}}/logs.jsonl',
  opts: { healthCheck?: boolean; grpc?: boolean } = {},
): string {
  const ext = opts.healthCheck ? `extensions:\n  health_check:\n    endpoint: 127.0.0.1:{{HEALTH_PORT}}\n` : '';
  const grpc = opts.grpc ? `      grpc:\n        endpoint: 127.0.0.1:{{OTLP_GRPC_PORT}}\n` : '';
  return `# generated by test/helpers/collector.ts fileExporterConfig()
${ext}receivers:
  otlp:
    protocols:
${grpc}      http:
        endpoint: 127.0.0.1:${port}
processors:
  batch:
    timeout: 200ms
    send_batch_size: 512
exporters:
  file:
    path: ${JSON.stringify(outFile)}
    format: json
    flush_interval: 100ms
  debug:
    verbosity: basic
service:
  ${opts.healthCheck ? 'extensions: [health_check]' : ''}
  telemetry:
    logs:
      level: info
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [file, debug]
`;
}

/**
 * Collector config: OTLP/HTTP receiver -> batch -> otlphttp exporter to `logsUrl` (the full
 * URL, e.g. VictoriaLogs' http://127.0.0.1:<port>/insert/opentelemetry/v1/logs), plus debug.
 * Retries are short so tests fail fast.
 */
export function otlpHttpForwardConfig(logsUrl: string, port: number | string = '{{OTLP_HTTP_PORT}}'): string {
  return `# generated by test/helpers/collector.ts otlpHttpForwardConfig()
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${port}
processors:
  batch:
    timeout: 200ms
exporters:
  otlphttp/backend:
    logs_endpoint: ${JSON.stringify(logsUrl)}
    encoding: proto
    compression: gzip
    timeout: 5s
    retry_on_failure:
      enabled: true
      initial_interval: 200ms
      max_interval: 1s
      max_elapsed_time: 30s
  debug:
    verbosity: basic
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlphttp/backend, debug]
`;
}

// ---- reading the file exporter's OTLP JSON ----

export interface FlatLogRecord {
  resource: Record<string, unknown>;
  scope: { name?: string; version?: string; attributes: Record<string, unknown> };
  attributes: Record<string, unknown>;
  body: unknown;
  timeUnixNano: string;
  observedTimeUnixNano: string;
  eventName?: string;
  severityText?: string;
  severityNumber?: number;
  traceId?: string;
  spanId?: string;
  flags?: number;
}

interface OtlpKeyValue {
  key: string;
  value?: OtlpAnyValue;
}
interface OtlpAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number | string;
  arrayValue?: { values?: OtlpAnyValue[] };
  kvlistValue?: { values?: OtlpKeyValue[] };
  bytesValue?: string;
}

/**
 * OTLP JSON AnyValue -> plain JS: string, boolean, number (intValue within the safe-integer
 * range; larger ones stay decimal strings), number for doubleValue (incl. "NaN"/"Infinity"),
 * array, object (kvlist), Buffer (bytesValue, base64 in JSON), null (empty AnyValue).
 */
export function anyValueToJs(v: OtlpAnyValue | undefined): unknown {
  if (!v || typeof v !== 'object') return null;
  if ('stringValue' in v) return v.stringValue;
  if ('boolValue' in v) return v.boolValue;
  if ('intValue' in v) {
    const n = Number(v.intValue);
    return Number.isSafeInteger(n) ? n : String(v.intValue);
  }
  if ('doubleValue' in v) return Number(v.doubleValue);
  if ('arrayValue' in v) return (v.arrayValue?.values ?? []).map(anyValueToJs);
  if ('kvlistValue' in v) return attributesToJs(v.kvlistValue?.values);
  if ('bytesValue' in v) return Buffer.from(v.bytesValue ?? '', 'base64');
  return null;
}

export function attributesToJs(kvs: OtlpKeyValue[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of kvs ?? []) out[kv.key] = anyValueToJs(kv.value);
  return out;
}

/** Flattens OTLP JSON `{resourceLogs:[...]}` objects (one per line) into one entry per log record. */
export function flattenOtlpLogs(requests: unknown[]): FlatLogRecord[] {
  const out: FlatLogRecord[] = [];
  for (const req of requests as Array<{ resourceLogs?: unknown[] }>) {
    for (const rl of (req?.resourceLogs ?? []) as Array<{ resource?: { attributes?: OtlpKeyValue[] }; scopeLogs?: unknown[] }>) {
      const resource = attributesToJs(rl.resource?.attributes);
      for (const sl of (rl.scopeLogs ?? []) as Array<{
        scope?: { name?: string; version?: string; attributes?: OtlpKeyValue[] };
        logRecords?: unknown[];
      }>) {
        const scope = { name: sl.scope?.name, version: sl.scope?.version, attributes: attributesToJs(sl.scope?.attributes) };
        for (const lr of (sl.logRecords ?? []) as Array<Record<string, unknown>>) {
          const rec: FlatLogRecord = {
            resource,
            scope,
            attributes: attributesToJs(lr.attributes as OtlpKeyValue[] | undefined),
            body: anyValueToJs(lr.body as OtlpAnyValue | undefined),
            timeUnixNano: String(lr.timeUnixNano ?? '0'),
            observedTimeUnixNano: String(lr.observedTimeUnixNano ?? '0'),
          };
          if (lr.eventName) rec.eventName = String(lr.eventName);
          if (lr.severityText) rec.severityText = String(lr.severityText);
          if (lr.severityNumber !== undefined) rec.severityNumber = Number(lr.severityNumber);
          if (lr.traceId) rec.traceId = String(lr.traceId);
          if (lr.spanId) rec.spanId = String(lr.spanId);
          if (lr.flags !== undefined) rec.flags = Number(lr.flags);
          out.push(rec);
        }
      }
    }
  }
  return out;
}

/** Reads the file exporter's JSON-lines output (missing file -> []) and flattens it. */
export function readFileExporterLogs(file: string): FlatLogRecord[] {
  if (!fs.existsSync(file)) return [];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const reqs: unknown[] = [];
  for (const [i, line] of lines.entries()) {
    if (!line.trim()) continue;
    try {
      reqs.push(JSON.parse(line));
    } catch (err) {
      // the last line may be half-written while the exporter flushes
      if (i === lines.length - 1) break;
      throw new Error(`${file}:${i + 1}: not JSON: ${(err as Error).message}`);
    }
  }
  return flattenOtlpLogs(reqs);
}

/** Polls readFileExporterLogs until `predicate` holds (default: at least one record). */
export async function waitForFileExporterLogs(
  file: string,
  predicate: (recs: FlatLogRecord[]) => boolean = (r) => r.length > 0,
  timeoutMs = 15_000,
): Promise<FlatLogRecord[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const recs = readFileExporterLogs(file);
    if (predicate(recs)) return recs;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for file exporter output in ${file}; have ${recs.length} record(s)`);
    }
    await sleep(100);
  }
}

/** POSTs an OTLP/HTTP JSON ExportLogsServiceRequest to `${endpoint}/v1/logs`; throws on non-2xx. */
export async function postOtlpJsonLogs(endpoint: string, request: unknown): Promise<unknown> {
  const res = await fetch(`${endpoint}/v1/logs`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(request),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`POST ${endpoint}/v1/logs: HTTP ${res.status}: ${text}`);
  return text ? JSON.parse(text) : {};
}

// ---- reading the file exporter's OTLP JSON traces ----

/** One span of a file exporter's traces output, with its resource and scope. */
export interface FlatSpan {
  resource: Record<string, unknown>;
  scope: { name?: string; version?: string };
  traceId: string;
  spanId: string;
  name: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
}

/** Every span of a file exporter's output (OTLP JSON `{resourceSpans:[...]}` objects, one per line). */
export function readFileExporterSpans(file: string): FlatSpan[] {
  if (!fs.existsSync(file)) return [];
  const out: FlatSpan[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    let req: { resourceSpans?: Array<{ resource?: { attributes?: OtlpKeyValue[] }; scopeSpans?: Array<{ scope?: { name?: string; version?: string }; spans?: Array<Record<string, string>> }> }> };
    try {
      req = JSON.parse(line);
    } catch {
      continue; // a line being written
    }
    for (const rs of req.resourceSpans ?? []) {
      const resource = attributesToJs(rs.resource?.attributes);
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          out.push({
            resource,
            scope: { name: ss.scope?.name, version: ss.scope?.version },
            traceId: s.traceId!,
            spanId: s.spanId!,
            name: s.name!,
            startTimeUnixNano: s.startTimeUnixNano!,
            endTimeUnixNano: s.endTimeUnixNano!,
          });
        }
      }
    }
  }
  return out;
}

/**
 * Starts the Collector with the repository's own otel-collector.yaml, as a user runs it: backends
 * and processors chosen by `env` only (SOLOAD_LOG_EXPORTERS, ...), listening on free loopback ports
 * (OTLP/HTTP, OTLP/gRPC, health_check), the Collector's own metrics off.
 */
export async function startRepoCollector(env: Record<string, string | undefined>): Promise<CollectorHandle> {
  const [http, grpc, health] = [await freePort(), await freePort(), await freePort()];
  return startCollector({
    configYaml: fs.readFileSync(path.join(REPO_ROOT, 'otel-collector.yaml'), 'utf8'),
    httpPort: http,
    env: {
      OTLP_HTTP_LISTEN: `127.0.0.1:${http}`,
      OTLP_GRPC_LISTEN: `127.0.0.1:${grpc}`,
      OTELCOL_HEALTH_ENDPOINT: `127.0.0.1:${health}`,
      OTELCOL_METRICS_LEVEL: 'none',
      ...env,
    },
  });
}
