/**
 * Secrets never leave soload in what it prints. Planted: header values in the config file and in
 * OTEL_EXPORTER_OTLP_HEADERS / OTEL_EXPORTER_OTLP_LOGS_HEADERS, a password in the logs and metrics
 * endpoint URLs (config and env), and the same secrets in the environment of a traced process.
 * Every command is run (config, config --json, check, check --json, probes), `run` at debug level
 * against a dead collector and against a hostile one that answers 401 echoing the request's headers
 * and URL in its body, and invalid configurations whose bad values carry the secrets. Everything
 * soload wrote to stdout and stderr is grepped for each secret, raw and in its encoded forms.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { buildLoadFixture } from '../helpers/service';
import { CLI, requireLiveKernel, ROOT, soloadLeftovers, startSoload, TRACEFS } from '../helpers/soload';

const tag = crypto.randomBytes(6).toString('hex');
const HEADER_SECRET = `hdr${tag}Secret`;
const ENV_SECRET = `env${tag}Secret`;
const LOGS_ENV_SECRET = `logsenv${tag}Secret`;
const URL_PASSWORD = `pw${tag}Secret`;
const METRICS_PASSWORD = `mpw${tag}Secret`;
const SECRETS = [HEADER_SECRET, ENV_SECRET, LOGS_ENV_SECRET, URL_PASSWORD, METRICS_PASSWORD];

/** Every form a secret could be printed in: raw, percent-encoded, base64 (Basic auth of user:pw). */
function leaks(text: string): string[] {
  const found: string[] = [];
  for (const s of SECRETS) {
    const forms = [s, encodeURIComponent(s), Buffer.from(s).toString('base64').slice(0, 12), Buffer.from(`alice:${s}`).toString('base64'), Buffer.from(`bob:${s}`).toString('base64')];
    for (const f of forms) if (text.includes(f)) found.push(`${s} as ${JSON.stringify(f)}`);
  }
  return found;
}

const SECRET_ENV: NodeJS.ProcessEnv = {
  OTEL_EXPORTER_OTLP_HEADERS: `x-env-token=${ENV_SECRET},authorization=Bearer%20${ENV_SECRET}`,
  OTEL_EXPORTER_OTLP_LOGS_HEADERS: `x-logs-token=${LOGS_ENV_SECRET}`,
};

let dir = '';
let prog = '';
let lib = '';
const uprobeEvents = () => fs.readFileSync(path.join(TRACEFS, 'uprobe_events'), 'utf8');
let hostile: http.Server;
let hostileUrl = '';
let hostileHits = 0;

function writeConfig(name: string, config: object): string {
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(config));
  return file;
}

function secretConfig(endpointHost: string): object {
  return {
    log: { level: 'debug' },
    capture: { snapshot: false },
    otel: {
      exporters: ['otlp'],
      endpoint: `http://alice:${URL_PASSWORD}@${endpointHost}/v1/logs`,
      headers: { authorization: `Bearer ${HEADER_SECRET}`, 'x-api-key': HEADER_SECRET },
      timeoutMs: 1000,
      batch: { scheduledDelayMs: 50 },
      metrics: { enabled: true, endpoint: `http://bob:${METRICS_PASSWORD}@${endpointHost}/v1/metrics`, intervalMs: 1000 },
    },
  };
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...SECRET_ENV, ...env }, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

before(async () => {
  requireLiveKernel();
  ({ dir, loader: prog, lib } = buildLoadFixture('secrets'));
  // A collector that rejects everything and reflects what it was sent, as some proxies do.
  hostile = http.createServer((req, res) => {
    hostileHits++;
    req.resume();
    req.on('end', () => {
      res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': `Bearer realm="${req.headers.authorization ?? ''}"` });
      res.end(`unauthorized: ${req.method} ${req.url} ${JSON.stringify(req.headers)}`);
    });
  });
  await new Promise<void>((r) => hostile.listen(0, '127.0.0.1', () => r()));
  hostileUrl = `127.0.0.1:${(hostile.address() as AddressInfo).port}`;
});

after(() => hostile?.close());

test('config, check and probes print no planted secret', () => {
  const file = writeConfig('secret', secretConfig('127.0.0.1:9'));
  for (const args of [['config'], ['config', '--json'], ['check'], ['check', '--json'], ['probes']]) {
    const r = cli([...args, '--config', file]);
    assert.ok(r.status === 0 || r.status === 1, `${args.join(' ')} exit ${r.status}:\n${r.out}`);
    assert.deepEqual(leaks(r.out), [], `soload ${args.join(' ')} printed a secret:\n${r.out}`);
  }
  // Masked, not dropped: the user still sees which headers and which endpoint are configured.
  const shown = cli(['config', '--config', file]).out;
  assert.match(shown, /"x-api-key": "\*\*\*"/);
  assert.match(shown, /http:\/\/(alice:)?\*\*\*@127\.0\.0\.1:9\/v1\/logs/);
});

for (const collector of ['dead', 'hostile'] as const) {
  test(`run at debug level against a ${collector} collector, with secrets in a traced process's environment: no secret in any output`, async () => {
    const endpoint = collector === 'dead' ? '127.0.0.1:9' : hostileUrl;
    const hitsBefore = hostileHits;
    const soload = await startSoload(secretConfig(endpoint), { env: SECRET_ENV, args: [] });
    try {
      // The traced process carries the same secrets (an instrumented service's OTLP env): soload
      // reads a declared list of variables from /proc/<pid>/environ, never these.
      const r = spawnSync(prog, [lib], { env: { ...process.env, ...SECRET_ENV, SECRET_TOKEN: HEADER_SECRET, SOLOAD_TEST_LINGER_MS: '200' } });
      assert.equal(r.status, 0);
      // Exports fail (refused, or 401 with the echo) and are retried and logged at debug level.
      await new Promise((res) => setTimeout(res, 4000));
    } finally {
      const code = await soload.stop('SIGTERM', 45_000);
      const out = `${soload.stdoutRaw()}${soload.stderr()}`;
      assert.deepEqual(leaks(out), [], `soload run (${collector} collector) printed a secret:\n${out}`);
      assert.equal(code, 143, out);
    }
    if (collector === 'hostile') assert.ok(hostileHits > hitsBefore, 'the hostile collector was never called: the leak check proved nothing');
    assert.match(soload.stderr(), collector === 'hostile' ? /401/ : /ECONNREFUSED|refused|unreachable|failed/i, 'the export failure is reported (without the secret)');
    assert.deepEqual(soloadLeftovers(), { probes: [], instances: [] });
  });
}

test('invalid configurations whose bad values carry secrets: exit 2 naming the key, no secret, nothing installed', () => {
  const good = secretConfig('127.0.0.1:9') as { otel: Record<string, unknown> };
  const cases: Array<{ name: string; config?: object; env?: NodeJS.ProcessEnv; key: RegExp }> = [
    { name: 'header value not a string', config: { ...good, otel: { ...good.otel, headers: { authorization: [HEADER_SECRET] } } }, key: /otel\.headers/ },
    { name: 'header name invalid', config: { ...good, otel: { ...good.otel, headers: { [`bad name ${HEADER_SECRET}`]: HEADER_SECRET } } }, key: /otel\.headers/ },
    { name: 'endpoint not a URL', config: { ...good, otel: { ...good.otel, endpoint: `http://alice:${URL_PASSWORD}@[::1/v1/logs` } }, key: /otel\.endpoint/ },
    { name: 'endpoint scheme', config: { ...good, otel: { ...good.otel, endpoint: `ftp://alice:${URL_PASSWORD}@127.0.0.1/v1/logs` } }, key: /otel\.endpoint/ },
    { name: 'env endpoint not a URL', config: good, env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://alice:${URL_PASSWORD}@[bad` }, key: /OTEL_EXPORTER_OTLP_ENDPOINT/ },
    { name: 'env metrics endpoint not a URL', config: good, env: { OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `http://bob:${METRICS_PASSWORD}@[bad` }, key: /OTEL_EXPORTER_OTLP_METRICS_ENDPOINT/ },
    { name: 'unknown key beside secrets', config: { ...good, otel: { ...good.otel, headerz: { authorization: HEADER_SECRET } } }, key: /otel\.headerz/ },
  ];
  for (const c of cases) {
    const before = uprobeEvents();
    const file = writeConfig(`bad-${cases.indexOf(c)}`, c.config ?? good);
    for (const command of ['run', 'check', 'config']) {
      const r = cli([command, '--config', file], c.env);
      assert.equal(r.status, 2, `${c.name} (${command}): exit ${r.status}\n${r.out}`);
      assert.match(r.out, c.key, `${c.name} (${command}) does not name the key:\n${r.out}`);
      assert.deepEqual(leaks(r.out), [], `${c.name} (${command}) printed a secret:\n${r.out}`);
    }
    assert.equal(uprobeEvents(), before, `${c.name}: uprobe_events changed`);
  }
  assert.deepEqual(soloadLeftovers(), { probes: [], instances: [] });
});
