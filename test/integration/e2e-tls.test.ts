/**
 * Exporter TLS on real components: a Collector whose OTLP/HTTP receiver requires TLS with client
 * certificates (mTLS; certificates made by openssl for this test) receives soload's records when
 * soload is given the CA, client certificate and key through the OTel-spec environment variables.
 * `soload config` names the key file but never prints its content, and masks header values. TLS
 * files that are missing or do not match are configuration errors (exit 2) before tracefs is touched.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startCollector, waitForFileExporterLogs, type CollectorHandle } from '../helpers/collector';
import { CLI, FIXTURES_C, gcc, requireLiveKernel, runProgram, soloadLeftovers, startSoload, tmpDir, type SoloadProcess } from '../helpers/soload';

let dir: string;
let collector: CollectorHandle;
let soload: SoloadProcess;
let env: NodeJS.ProcessEnv;

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

before(async () => {
  requireLiveKernel();
  dir = tmpDir('soload-tls-');
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=soload-test-ca', '-keyout', 'ca.key', '-out', 'ca.pem']);
  for (const [name, ext] of [
    ['server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth'],
    ['client', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext + '\n');
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`]);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.pem`]);
  }
  const yaml = `receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{{OTLP_HTTP_PORT}}
        tls:
          cert_file: ${dir}/server.pem
          key_file: ${dir}/server.key
          client_ca_file: ${dir}/ca.pem
exporters:
  file:
    path: {{WORK_DIR}}/logs.jsonl
    format: json
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [file]
`;
  collector = await startCollector({ configYaml: yaml });
  const port = new URL(collector.httpEndpoint).port;
  env = {
    OTEL_EXPORTER_OTLP_ENDPOINT: `https://127.0.0.1:${port}`,
    OTEL_EXPORTER_OTLP_CERTIFICATE: path.join(dir, 'ca.pem'),
    OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: path.join(dir, 'client.pem'),
    OTEL_EXPORTER_OTLP_CLIENT_KEY: path.join(dir, 'client.key'),
    OTEL_EXPORTER_OTLP_HEADERS: 'Authorization=Bearer%20t0p-s3cret',
  };
});

after(async () => {
  await soload?.stop('SIGTERM');
  await collector?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('records reach a Collector that requires TLS client certificates (CA, cert, key from OTEL_EXPORTER_OTLP_* env)', async () => {
  const lib = path.join(dir, 'libplug.so');
  const loader = path.join(dir, 'dlopener');
  gcc(['-shared', '-fPIC', '-o', lib, path.join(FIXTURES_C, 'plug.c')]);
  gcc(['-o', loader, path.join(FIXTURES_C, 'dlopener.c'), '-ldl']);
  soload = await startSoload({ otel: { exporters: ['otlp'], batch: { scheduledDelayMs: 100 } } }, { env });
  const r = runProgram(loader, [lib], { SOLOAD_TEST_LINGER_MS: '500' });
  const recs = await waitForFileExporterLogs(collector.fileOutput!, (rs) => rs.some((x) => x.attributes['process.pid'] === r.pid && x.attributes['file.path'] === lib), 20_000);
  assert.ok(recs.length > 0);
  assert.doesNotMatch(soload.stderr(), /OTLP export failed/);
});

test('`soload config` prints TLS file paths but never key material or header values', () => {
  const out = spawnSync(process.execPath, [CLI, 'config'], { env: { ...process.env, ...env }, encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  const cfg = JSON.parse(out.stdout) as { otel: { tls: Record<string, string>; headers: Record<string, string> } };
  assert.equal(cfg.otel.tls.keyFile, path.join(dir, 'client.key'));
  assert.equal(cfg.otel.headers.Authorization, '***');
  const key = fs.readFileSync(path.join(dir, 'client.key'), 'utf8').split('\n')[1]!;
  assert.ok(!out.stdout.includes(key) && !out.stdout.includes('t0p-s3cret') && !out.stdout.includes('PRIVATE KEY'));
});

test('a missing key file is a configuration error (exit 2) naming the key and the path, before anything is installed', () => {
  const before = soloadLeftovers(); // the soload of the first test is still running
  const out = spawnSync(process.execPath, [CLI, 'run'], {
    env: { ...process.env, ...env, OTEL_EXPORTER_OTLP_CLIENT_KEY: path.join(dir, 'nope.key') },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(out.status, 2, out.stderr);
  assert.match(out.stderr, /SOLOAD_ERR_CONFIG_INVALID: invalid configuration: otel\.tls\.keyFile: cannot read \S+nope\.key \(ENOENT\)/);
  assert.ok(!out.stderr.includes('t0p-s3cret'), 'header value printed');
  assert.deepEqual(soloadLeftovers(), before, 'a failed start leaves nothing in tracefs');
});

test('a client key that does not belong to the certificate is refused at start (exit 2), not at the first export', () => {
  const out = spawnSync(process.execPath, [CLI, 'run'], {
    env: { ...process.env, ...env, OTEL_EXPORTER_OTLP_CLIENT_KEY: path.join(dir, 'server.key') },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(out.status, 2, out.stderr);
  assert.match(out.stderr, /otel\.tls\.certFile \+ otel\.tls\.keyFile: \S+client\.pem and \S+server\.key are not a usable client certificate and key \(key values mismatch/);
  const key = fs.readFileSync(path.join(dir, 'server.key'), 'utf8').split('\n')[1]!;
  assert.ok(!out.stderr.includes(key) && !out.stderr.includes('PRIVATE KEY'));
});
