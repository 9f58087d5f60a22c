import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../../src/config/load';
import { configProblems, validateConfig } from '../../../src/config/validate';
import { isSoloadError } from '../../../src/errors';

let dir: string;
const haveOpenssl = spawnSync('openssl', ['version']).status === 0;

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-validate-'));
  if (haveOpenssl) {
    for (const n of ['a', 'b']) openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${n}`, '-keyout', `${n}.key`, '-out', `${n}.pem`]);
  }
  fs.writeFileSync(path.join(dir, 'garbage.pem'), 'not a certificate\n');
  fs.writeFileSync(path.join(dir, 'file'), '');
});

const at = (f: string) => path.join(dir, f);
const cfg = (env: NodeJS.ProcessEnv) => loadConfig({ env: { SOLOAD_EXPORTERS: 'otlp', ...env } });
const problems = (env: NodeJS.ProcessEnv) => configProblems(cfg(env)).map((p) => `${p.key}: ${p.message}`);

test('nothing to check by default', () => {
  assert.deepEqual(configProblems(loadConfig({ env: {} })), []);
});

test('TLS files that do not exist or are not files: the key, the path and the errno, and what to set', () => {
  const all = problems({ OTEL_EXPORTER_OTLP_CERTIFICATE: at('missing-ca.pem'), SOLOAD_OTLP_CERT_FILE: dir, SOLOAD_OTLP_KEY_FILE: at('nope.key') });
  assert.equal(all.length, 3, all.join('\n'));
  assert.match(all[0]!, /^otel\.tls\.caFile: cannot read \S+missing-ca\.pem \(ENOENT\); set otel\.tls\.caFile .*CA/);
  assert.match(all[1]!, /^otel\.tls\.certFile: \S+ is not a regular file; set otel\.tls\.certFile/);
  assert.match(all[2]!, /^otel\.tls\.keyFile: cannot read \S+nope\.key \(ENOENT\); set otel\.tls\.keyFile .*private key/);
});

test('a CA file without a PEM certificate is refused (Node would accept it and fail every handshake)', () => {
  assert.match(problems({ OTEL_EXPORTER_OTLP_CERTIFICATE: at('garbage.pem') }).join('\n'), /^otel\.tls\.caFile: \S+garbage\.pem holds no PEM certificate/);
  assert.match(problems({ OTEL_EXPORTER_OTLP_CERTIFICATE: at('file') }).join('\n'), /holds no PEM certificate/);
});

test('valid CA, certificate and key pass; a key of another certificate is refused without printing key material', { skip: !haveOpenssl && 'openssl not installed' }, () => {
  assert.deepEqual(problems({ OTEL_EXPORTER_OTLP_CERTIFICATE: at('b.pem'), OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: at('a.pem'), OTEL_EXPORTER_OTLP_CLIENT_KEY: at('a.key') }), []);
  const p = problems({ OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: at('a.pem'), OTEL_EXPORTER_OTLP_CLIENT_KEY: at('b.key') });
  assert.equal(p.length, 1);
  assert.match(p[0]!, /^otel\.tls\.certFile \+ otel\.tls\.keyFile: \S+a\.pem and \S+b\.key are not a usable client certificate and key \(key values mismatch/);
  const keyLines = fs.readFileSync(at('b.key'), 'utf8').split('\n').filter((l) => l && !l.startsWith('-----'));
  assert.ok(keyLines.every((l) => !p[0]!.includes(l)) && !p[0]!.includes('PRIVATE KEY'), 'key material in the message');
  // A certificate given as its own key: not a key.
  assert.match(problems({ OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: at('a.pem'), OTEL_EXPORTER_OTLP_CLIENT_KEY: at('a.pem') }).join(), /not a usable client certificate and key/);
});

test('spill directory: missing is fine when it can be created; a file in the way or as the directory is not', () => {
  assert.deepEqual(problems({ SOLOAD_DELIVERY_SPILL_DIR: at('spill/deeper') }), []);
  assert.ok(!fs.existsSync(at('spill')), 'validation creates nothing');
  assert.deepEqual(problems({ SOLOAD_DELIVERY_SPILL_DIR: dir }), []);
  assert.match(problems({ SOLOAD_DELIVERY_SPILL_DIR: at('file') }).join(), /^otel\.delivery\.spillDir: \S+file is not a directory; set it to a directory/);
  assert.match(problems({ SOLOAD_DELIVERY_SPILL_DIR: at('file/sub') }).join(), /^otel\.delivery\.spillDir: cannot use \S+file\/sub: .*ENOTDIR/);
});

test('spill directory not writable by an unprivileged user', { skip: process.getuid?.() === 0 ? false : 'runs as root only (to create a root-owned directory)' }, () => {
  const locked = at('locked');
  fs.mkdirSync(locked, { mode: 0o755 });
  // As root access(2) ignores the mode, so the check is run in a child as nobody.
  const script = `const { loadConfig } = require(${JSON.stringify(path.resolve(__dirname, '../../../src/config/load.js'))});
const { configProblems } = require(${JSON.stringify(path.resolve(__dirname, '../../../src/config/validate.js'))});
process.stdout.write(JSON.stringify(configProblems(loadConfig({ env: { SOLOAD_EXPORTERS: 'otlp', SOLOAD_DELIVERY_SPILL_DIR: ${JSON.stringify(path.join(locked, 'spill'))} } }))));`;
  fs.chmodSync(dir, 0o755);
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script], { encoding: 'utf8' });
  if (r.error) return; // no setpriv
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /otel\.delivery\.spillDir.*locked \(where \S+spill would be created\) is not writable by soload \(EACCES\)/);
});

test('files are checked only when the otlp exporter (their only user) is on', () => {
  const env = { OTEL_EXPORTER_OTLP_CERTIFICATE: at('missing.pem'), SOLOAD_DELIVERY_SPILL_DIR: at('file') };
  assert.deepEqual(configProblems(loadConfig({ env: { ...env, SOLOAD_EXPORTERS: 'console' } })), []);
  assert.equal(configProblems(loadConfig({ env: { ...env, SOLOAD_EXPORTERS: 'console,otlp' } })).length, 2);
});

test('validateConfig: one CONFIG_INVALID error listing every problem with its key', () => {
  assert.doesNotThrow(() => validateConfig(loadConfig({ env: {} })));
  try {
    validateConfig(cfg({ OTEL_EXPORTER_OTLP_CERTIFICATE: at('missing.pem'), SOLOAD_DELIVERY_SPILL_DIR: at('file') }));
    assert.fail('accepted');
  } catch (err) {
    assert.ok(isSoloadError(err, 'SOLOAD_ERR_CONFIG_INVALID'), String(err));
    assert.match(err.message, /^invalid configuration: otel\.tls\.caFile: .*; otel\.delivery\.spillDir: /);
    assert.deepEqual(err.details.keys, ['otel.tls.caFile', 'otel.delivery.spillDir']);
  }
});
