// Test helper: runs the REAL VictoriaLogs built by scripts/build-collector.sh (.cache/bin/victoria-logs)
// on a free loopback port with a temp storage dir, and queries it with LogsQL.
//
// How VictoriaLogs (v1.52) stores an OTLP log record received on /insert/opentelemetry/v1/logs
// (protobuf only; JSON is refused):
//   - resource attributes -> fields named exactly as in OTLP (`service.name`, `host.name`), and
//     they are the log STREAM fields (`_stream` = {host.name="…",service.name="…"});
//   - log-record attributes -> fields named exactly as in OTLP (`process.pid`, `soload.load.method`);
//     nested kvlist values are flattened with dots (`a.b.c`), arrays become JSON strings;
//   - body -> `_msg` (a kvlist body is flattened into top-level fields instead);
//   - scope -> `scope.name`, `scope.version`, `scope.attributes.<key>`;
//   - severity -> `severity_text` (derived from the number when empty), `severity_number`;
//     trace/span ids -> `trace_id`, `span_id`; eventName -> `event_name` (also a stream field);
//   - timestamp -> `_time` (timeUnixNano, else observedTimeUnixNano, else ingestion time).
// All values come back as strings (`process.pid: "1234"`). Quote dotted names in LogsQL:
//   'process.pid':=1234   or   "soload.load.method":dlopen
import { spawn, type ChildProcess } from 'node:child_process';
import { watchExit } from './exit-watch';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, canConnect, freePort, sleep } from './collector';

export const VICTORIALOGS_BIN = process.env.SOLOAD_VICTORIALOGS_BIN ?? path.join(REPO_ROOT, '.cache', 'bin', 'victoria-logs');

export interface StartVictoriaLogsOptions {
  /** Parent dir for the storage dir and log; default: a fresh temp dir (removed by stop()). */
  workDir?: string;
  binary?: string;
  /** Extra command-line flags, e.g. ['-retentionPeriod=1d']. */
  extraArgs?: string[];
  /** Default 30 s. */
  readyTimeoutMs?: number;
  keepWorkDir?: boolean;
}

export interface VictoriaLogsHandle {
  /** e.g. http://127.0.0.1:43125 */
  url: string;
  port: number;
  /** For the otlphttp exporter's `endpoint` (it appends /v1/logs). */
  otlpEndpoint: string;
  /** Full OTLP logs URL, for the otlphttp exporter's `logs_endpoint`. */
  otlpLogsUrl: string;
  storageDir: string;
  /** Runs a LogsQL query over all time; returns one object per matching log entry (values are strings). */
  query(logsql: string, opts?: { limit?: number }): Promise<Array<Record<string, string>>>;
  /** Makes just-ingested entries searchable at once (otherwise that takes up to ~1 s). */
  flush(): Promise<void>;
  /** Polls (flush + query) until at least `minCount` entries match; throws with the last result on timeout. */
  waitForQuery(logsql: string, opts?: { minCount?: number; timeoutMs?: number }): Promise<Array<Record<string, string>>>;
  output(): string;
  /** SIGTERM (SIGKILL after 10 s); removes the temp dir it made. */
  stop(): Promise<void>;
}

export async function startVictoriaLogs(opts: StartVictoriaLogsOptions = {}): Promise<VictoriaLogsHandle> {
  const bin = opts.binary ?? VICTORIALOGS_BIN;
  if (!fs.existsSync(bin)) {
    throw new Error(`victoria-logs binary not found at ${bin}: run \`bash scripts/build-collector.sh\` first`);
  }
  const ownDir = !opts.workDir;
  const workDir = opts.workDir ? path.resolve(opts.workDir) : fs.mkdtempSync(path.join(os.tmpdir(), 'soload-vlogs-'));
  const storageDir = path.join(workDir, 'vlogs-data');
  fs.mkdirSync(storageDir, { recursive: true });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = [
    `-storageDataPath=${storageDir}`,
    `-httpListenAddr=127.0.0.1:${port}`,
    '-loggerLevel=WARN',
    ...(opts.extraArgs ?? []),
  ];
  let logs = '';
  const proc: ChildProcess = spawn(bin, args, { cwd: workDir, stdio: ['ignore', 'pipe', 'pipe'] });
  const watch = watchExit(proc);
  const exited = watch.exited;
  proc.stdout?.on('data', (b: Buffer) => (logs += b.toString()));
  proc.stderr?.on('data', (b: Buffer) => (logs += b.toString()));

  const cleanup = (): void => {
    if (ownDir && !(opts.keepWorkDir || process.env.SOLOAD_KEEP_TEST_DIRS === '1')) {
      fs.rmSync(workDir, { recursive: true, force: true });
    }
  };
  const stop = async (): Promise<void> => {
    if (!watch.info()) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    cleanup();
  };

  // readiness: /health answers "OK"
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (watch.info()) {
      cleanup();
      throw new Error(`victoria-logs exited before it was ready (${watch.info()}); args ${args.join(' ')}; output:\n${logs}`);
    }
    if (await canConnect(port)) {
      const ok = await fetch(`${url}/health`).then((r) => r.ok, () => false);
      if (ok) break;
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`victoria-logs not ready on ${url}; output:\n${logs}`);
    }
    await sleep(50);
  }

  const flush = async (): Promise<void> => {
    const r = await fetch(`${url}/internal/force_flush`);
    if (!r.ok) throw new Error(`force_flush: HTTP ${r.status}: ${await r.text()}`);
  };

  const query = async (logsql: string, q: { limit?: number } = {}): Promise<Array<Record<string, string>>> => {
    const body = new URLSearchParams({ query: logsql });
    if (q.limit !== undefined) body.set('limit', String(q.limit));
    const r = await fetch(`${url}/select/logsql/query`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body,
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`LogsQL query ${JSON.stringify(logsql)}: HTTP ${r.status}: ${text}`);
    return text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, string>);
  };

  const waitForQuery = async (
    logsql: string,
    w: { minCount?: number; timeoutMs?: number } = {},
  ): Promise<Array<Record<string, string>>> => {
    const minCount = w.minCount ?? 1;
    const until = Date.now() + (w.timeoutMs ?? 15_000);
    for (;;) {
      await flush();
      const rows = await query(logsql);
      if (rows.length >= minCount) return rows;
      if (Date.now() > until) {
        throw new Error(
          `timed out waiting for ${minCount} result(s) of ${JSON.stringify(logsql)}; got ${rows.length}; all entries: ${JSON.stringify(
            await query('*', { limit: 20 }),
          )}`,
        );
      }
      await sleep(200);
    }
  };

  return {
    url,
    port,
    otlpEndpoint: `${url}/insert/opentelemetry`,
    otlpLogsUrl: `${url}/insert/opentelemetry/v1/logs`,
    storageDir,
    query,
    flush,
    waitForQuery,
    output: () => logs,
    stop,
  };
}
