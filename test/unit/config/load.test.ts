import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, redactConfig } from '../../../src/config/load';
import { builtinProbes } from '../../../src/config/probes';
import { isSoloadError } from '../../../src/errors';

function withFile(obj: unknown): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-cfg-'));
  const f = path.join(dir, 'c.json');
  fs.writeFileSync(f, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return f;
}

function invalid(obj: unknown, env: NodeJS.ProcessEnv = {}): string {
  try {
    loadConfig({ file: obj === undefined ? undefined : withFile(obj), env });
  } catch (err) {
    assert.ok(isSoloadError(err), `not a SoloadError: ${err}`);
    return `${err.code}: ${err.message}`;
  }
  assert.fail('config was accepted');
}

test('defaults: dlopen probes for libc.so.6 and libdl.so.2, OTLP to localhost:4318 and console', () => {
  const c = loadConfig({ env: {} });
  assert.equal(c.otel.endpoint, 'http://localhost:4318/v1/logs');
  assert.deepEqual(c.otel.exporters, ['otlp', 'console']);
  assert.deepEqual(c.probes.map((p) => `${p.name}:${p.library}:${p.kind}:${p.role}`), [
    'dlopen_entry:libc.so.6:entry:dlopen.entry',
    'dlopen_return:libc.so.6:return:dlopen.return',
    'dlopen_entry_libdl:libdl.so.2:entry:dlopen.entry',
    'dlopen_return_libdl:libdl.so.2:return:dlopen.return',
    'loader_add:ld-linux*.so*:entry:loader.add',
    'loader_open:ld-linux*.so*:return:loader.open',
    'loader_unmap:ld-linux*.so*:entry:loader.unmap',
    'loader_state:ld-linux*.so*:entry:loader.state',
    'libc_init:libc.so.6:entry:libc.init',
    'libc_init_first:libc.so.6:entry:libc.init',
    'chdir_entry:libc.so.6:entry:chdir.entry',
    'chdir_return:libc.so.6:return:chdir.return',
    'chroot_entry:libc.so.6:entry:chroot.entry',
    'chroot_return:libc.so.6:return:chroot.return',
    'unshare_entry:libc.so.6:entry:view.entry',
    'unshare_return:libc.so.6:return:view.return',
    'setns_entry:libc.so.6:entry:view.entry',
    'setns_return:libc.so.6:return:view.return',
    'memfd_entry:libc.so.6:entry:memfd.entry',
    'memfd_return:libc.so.6:return:memfd.return',
    'musl_state:ld-musl-*.so.1:entry:loader.state',
    'musl_start:ld-musl-*.so.1:entry:libc.init',
    'musl_dlopen_entry:ld-musl-*.so.1:entry:dlopen.entry',
    'musl_dlopen_return:ld-musl-*.so.1:return:dlopen.return',
    'musl_chdir_entry:ld-musl-*.so.1:entry:chdir.entry',
    'musl_chdir_return:ld-musl-*.so.1:return:chdir.return',
    'musl_chroot_entry:ld-musl-*.so.1:entry:chroot.entry',
    'musl_chroot_return:ld-musl-*.so.1:return:chroot.return',
    'musl_unshare_entry:ld-musl-*.so.1:entry:view.entry',
    'musl_unshare_return:ld-musl-*.so.1:return:view.return',
    'musl_setns_entry:ld-musl-*.so.1:entry:view.entry',
    'musl_setns_return:ld-musl-*.so.1:return:view.return',
    'musl_memfd_entry:ld-musl-*.so.1:entry:memfd.entry',
    'musl_memfd_return:ld-musl-*.so.1:return:memfd.return',
  ]);
  assert.equal(c.tracefs.traceClock, 'mono');
});

test('built-in fetch arguments follow the architecture calling convention and link_map layout', () => {
  const x64 = builtinProbes('x64');
  assert.equal(x64[0]!.fetch.name, '+0(%di):ustring');
  assert.equal(x64[1]!.fetch.path, '+0(+8($retval)):ustring');
  assert.equal(x64[1]!.fetch.libname, '+0(+0(+56($retval))):ustring');
  const arm = builtinProbes('arm64');
  assert.equal(arm[0]!.fetch.name, '+0(%x0):ustring');
  const ia32 = builtinProbes('ia32');
  assert.equal(ia32[1]!.fetch.path, '+0(+4($retval)):ustring');
  assert.equal(ia32[1]!.fetch.libname, '+0(+0(+28($retval))):ustring');
});

test('file overrides defaults; OTEL_* env follows the spec', () => {
  const f = withFile({ otel: { severity: 'WARN', exporters: ['console'] } });
  const c = loadConfig({
    file: f,
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'https://collector:4318/',
      OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20abc, x-team = sec ,broken',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,host.role=edge',
      OTEL_SERVICE_NAME: 'soload-edge',
    },
  });
  assert.equal(c.otel.severity, 'WARN');
  assert.deepEqual(c.otel.exporters, ['console']);
  assert.equal(c.otel.endpoint, 'https://collector:4318/v1/logs');
  assert.deepEqual(c.otel.headers, { authorization: 'Bearer abc', 'x-team': 'sec' });
  assert.deepEqual(c.otel.resourceAttributes, { 'deployment.environment': 'prod', 'host.role': 'edge' });
  assert.equal(c.otel.serviceName, 'soload-edge');
  const logs = loadConfig({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:1', OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'http://b:2/custom' } });
  assert.equal(logs.otel.endpoint, 'http://b:2/custom');
});

test('SOLOAD_* env overrides, including lists', () => {
  const c = loadConfig({ env: { SOLOAD_FILTER_PIDS: '1, 22', SOLOAD_FILTER_EXCLUDE_COMMS: 'sshd,cron', SOLOAD_SEVERITY: 'DEBUG', SOLOAD_EXPORTERS: 'console' } });
  assert.deepEqual(c.filters.pids, [1, 22]);
  assert.deepEqual(c.filters.excludeComms, ['sshd', 'cron']);
  assert.equal(c.otel.severity, 'DEBUG');
  assert.deepEqual(c.otel.exporters, ['console']);
});

test('invalid values name the key and the allowed values', () => {
  assert.match(invalid({ otel: { severity: 'LOUD' } }), /SOLOAD_ERR_CONFIG_INVALID.*otel\.severity.*"INFO"/s);
  assert.match(invalid({ otel: { exporters: ['kafka'] } }), /otel\.exporters.*"otlp", "console", "none".*kafka/s);
  assert.match(invalid({ tracefs: { traceClock: 'tsc' } }), /tracefs\.traceClock.*"mono"/s);
  assert.match(invalid({ otel: { endpoint: 'localhost:4318' } }), /otel\.endpoint.*http/s);
  assert.match(invalid({ nosuchkey: 1 }), /nosuchkey/);
  assert.match(invalid({ filters: { pids: [-1] } }), /filters\.pids/);
  assert.match(invalid(undefined, { SOLOAD_FILTER_PIDS: 'abc' }), /filters\.pids/);
});

test('probe list validation: kinds, names, roles, injection through fetch args', () => {
  const probe = { name: 'x', library: 'libc.so.6', symbol: 'malloc', kind: 'entry', fetch: { size: '%di:u64' } };
  assert.doesNotThrow(() => loadConfig({ file: withFile({ probes: [probe] }), env: {} }));
  assert.match(invalid({ probes: [{ ...probe, kind: 'exit' }] }), /probes\[0\]\.kind must be one of "entry", "return"/);
  assert.match(invalid({ probes: [{ ...probe, name: '9bad' }] }), /probes\[0\]\.name/);
  assert.match(invalid({ probes: [probe, probe] }), /used twice/);
  assert.match(invalid({ probes: [{ ...probe, role: 'magic' }] }), /role must be one of/);
  assert.match(invalid({ probes: [{ ...probe, symbol: undefined }] }), /needs "symbol" or "offset"/);
  assert.match(invalid({ probes: [{ ...probe, offset: '12zz' }] }), /offset/);
  // A newline or space in a fetch argument would let config smuggle another probe into uprobe_events.
  assert.match(invalid({ probes: [{ ...probe, fetch: { a: '%di\n-:other/probe' } }] }), /fetch\.a/);
  assert.match(invalid({ probes: [{ ...probe, fetch: { a: '%di x=%si' } }] }), /fetch\.a/);
  // Whitespace in a library path is allowed (probed through a symlink alias); NUL or empty is not.
  assert.doesNotThrow(() => loadConfig({ file: withFile({ probes: [{ ...probe, library: '/opt/my libs/libx.so' }] }), env: {} }));
  assert.match(invalid({ probes: [{ ...probe, library: 'lib\0c.so' }] }), /probes\[0\]\.library/);
  assert.match(invalid({ probes: [{ ...probe, library: '' }] }), /probes\[0\]\.library/);
  assert.match(invalid({ probes: [{ ...probe, extra: 1 }] }), /unknown key "extra"/);
});

test('unreadable or malformed config files are CONFIG_FILE errors', () => {
  assert.match(invalid('{ not json'), /SOLOAD_ERR_CONFIG_FILE.*not valid JSON/);
  assert.match(invalid('[1,2]'), /SOLOAD_ERR_CONFIG_FILE.*JSON object/);
  try {
    loadConfig({ file: '/nonexistent/soload.json', env: {} });
    assert.fail('accepted');
  } catch (err) {
    assert.ok(isSoloadError(err, 'SOLOAD_ERR_CONFIG_FILE'));
  }
});

test('redactConfig masks header values and URL credentials', () => {
  const c = loadConfig({ env: { OTEL_EXPORTER_OTLP_HEADERS: 'authorization=secret', OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'https://user:pw@host/v1/logs' } });
  const r = redactConfig(c);
  assert.deepEqual(r.otel.headers, { authorization: '***' });
  assert.equal(r.otel.endpoint, 'https://***@host/v1/logs');
  assert.equal(c.otel.headers.authorization, 'secret', 'original untouched');
});

test('precedence per key: file < SOLOAD_* < OTEL_EXPORTER_OTLP_* < OTEL_EXPORTER_OTLP_LOGS_*', () => {
  const f = withFile({ otel: { endpoint: 'http://file:1/v1/logs', protocol: 'http/json', compression: 'none', tls: { caFile: '/file/ca.pem' } } });
  const soload = { SOLOAD_OTLP_ENDPOINT: 'http://soload:2/v1/logs', SOLOAD_OTLP_PROTOCOL: 'http/protobuf', SOLOAD_OTLP_COMPRESSION: 'gzip', SOLOAD_OTLP_CA_FILE: '/soload/ca.pem' };
  const generic = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://generic:3', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_COMPRESSION: 'none', OTEL_EXPORTER_OTLP_CERTIFICATE: '/generic/ca.pem' };
  const logs = { OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'http://logs:4/x', OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: 'http/protobuf', OTEL_EXPORTER_OTLP_LOGS_COMPRESSION: 'gzip', OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE: '/logs/ca.pem' };
  const pick = (env: NodeJS.ProcessEnv) => {
    const c = loadConfig({ file: f, env });
    return [c.otel.endpoint, c.otel.protocol, c.otel.compression, c.otel.tls.caFile];
  };
  assert.deepEqual(pick({}), ['http://file:1/v1/logs', 'http/json', 'none', '/file/ca.pem']);
  assert.deepEqual(pick(soload), ['http://soload:2/v1/logs', 'http/protobuf', 'gzip', '/soload/ca.pem']);
  assert.deepEqual(pick({ ...soload, ...generic }), ['http://generic:3/v1/logs', 'http/json', 'none', '/generic/ca.pem']);
  assert.deepEqual(pick({ ...soload, ...generic, ...logs }), ['http://logs:4/x', 'http/protobuf', 'gzip', '/logs/ca.pem']);
  // The signal-specific variable wins even without the generic one, and over SOLOAD_*.
  assert.deepEqual(pick({ ...soload, ...logs }), ['http://logs:4/x', 'http/protobuf', 'gzip', '/logs/ca.pem']);
});

test('metrics endpoint and interval: SOLOAD_* < OTEL_EXPORTER_OTLP_ENDPOINT (+/v1/metrics) < OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', () => {
  const m = (env: NodeJS.ProcessEnv) => loadConfig({ env }).otel.metrics;
  assert.equal(m({}).endpoint, '');
  assert.equal(m({ SOLOAD_METRICS_ENDPOINT: 'http://s:1/m' }).endpoint, 'http://s:1/m');
  assert.equal(m({ SOLOAD_METRICS_ENDPOINT: 'http://s:1/m', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://g:2//' }).endpoint, 'http://g:2/v1/metrics');
  assert.equal(m({ SOLOAD_METRICS_ENDPOINT: 'http://s:1/m', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://g:2', OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://m:3/x' }).endpoint, 'http://m:3/x');
  assert.equal(m({ SOLOAD_METRICS_INTERVAL_MS: '5000' }).intervalMs, 5000);
  assert.equal(m({ SOLOAD_METRICS_INTERVAL_MS: '5000', OTEL_METRIC_EXPORT_INTERVAL: '7000' }).intervalMs, 7000);
  // The SDK specification: an invalid OTEL_METRIC_EXPORT_INTERVAL is ignored, not fatal.
  assert.equal(m({ SOLOAD_METRICS_INTERVAL_MS: '5000', OTEL_METRIC_EXPORT_INTERVAL: '7s' }).intervalMs, 5000);
});

test('headers merge member by member: file < OTEL_EXPORTER_OTLP_HEADERS < OTEL_EXPORTER_OTLP_LOGS_HEADERS; resource attributes: file < OTEL_RESOURCE_ATTRIBUTES', () => {
  const f = withFile({ otel: { headers: { a: 'file', b: 'file', c: 'file' }, resourceAttributes: { 'x.y': 'file', keep: 'file' } } });
  const c = loadConfig({ file: f, env: { OTEL_EXPORTER_OTLP_HEADERS: 'b=generic,c=generic', OTEL_EXPORTER_OTLP_LOGS_HEADERS: 'c=logs', OTEL_RESOURCE_ATTRIBUTES: 'x.y=env' } });
  assert.deepEqual(c.otel.headers, { a: 'file', b: 'generic', c: 'logs' });
  assert.deepEqual(c.otel.resourceAttributes, { 'x.y': 'env', keep: 'file' });
});

test('resource mode: process by default; per-process resource attributes merge file < SOLOAD_PROCESS_RESOURCE_ATTRIBUTES and stay apart from soload\'s own', () => {
  const d = loadConfig({ env: {} });
  assert.equal(d.otel.resourceMode, 'process');
  assert.deepEqual(d.otel.processDeclaredAttributes, ['service.*', 'deployment.*']);
  const f = withFile({ otel: { resourceMode: 'agent', processResourceAttributes: { 'k8s.cluster.name': 'file', 'deployment.environment.name': 'file' } } });
  const c = loadConfig({
    file: f,
    env: { SOLOAD_PROCESS_RESOURCE_ATTRIBUTES: 'k8s.cluster.name=eu-1', OTEL_RESOURCE_ATTRIBUTES: 'k8s.pod.name=soload-abc', SOLOAD_PROCESS_DECLARED_ATTRIBUTES: 'service.*,team' },
  });
  assert.equal(c.otel.resourceMode, 'agent');
  assert.deepEqual(c.otel.processResourceAttributes, { 'k8s.cluster.name': 'eu-1', 'deployment.environment.name': 'file' });
  assert.deepEqual(c.otel.resourceAttributes, { 'k8s.pod.name': 'soload-abc' }, 'soload\'s own pod is not every process\'s pod');
  assert.deepEqual(c.otel.processDeclaredAttributes, ['service.*', 'team']);
  assert.throws(() => loadConfig({ env: { SOLOAD_RESOURCE_MODE: 'both' } }), /otel\.resourceMode \(from SOLOAD_RESOURCE_MODE\)/);
  assert.throws(() => loadConfig({ file: withFile({ otel: { processResourceAttributes: { a: 1 } } }) }), /otel\.processResourceAttributes: value of "a" must be a string/);
});

test('empty variables: an empty OTEL_* is unset (OTel spec); an empty SOLOAD_* is the empty value', () => {
  const f = withFile({ otel: { delivery: { spillDir: '/var/spill' } } });
  const c = loadConfig({ file: f, env: { OTEL_SERVICE_NAME: '', OTEL_EXPORTER_OTLP_ENDPOINT: ' ', SOLOAD_DELIVERY_SPILL_DIR: '', SOLOAD_FILTER_COMMS: '' } });
  assert.equal(c.otel.serviceName, 'soload');
  assert.equal(c.otel.endpoint, 'http://localhost:4318/v1/logs');
  assert.equal(c.otel.delivery.spillDir, '');
  assert.deepEqual(c.filters.comms, []);
  assert.match(invalid(undefined, { SOLOAD_OTLP_TIMEOUT_MS: '' }), /SOLOAD_OTLP_TIMEOUT_MS \(otel\.timeoutMs\)/);
});

test('SOLOAD_FILTER_EXCLUDE_SELF (documented in the README) and strict booleans and numbers', () => {
  assert.equal(loadConfig({ env: {} }).filters.excludeSelf, true);
  assert.equal(loadConfig({ env: { SOLOAD_FILTER_EXCLUDE_SELF: 'false' } }).filters.excludeSelf, false);
  assert.equal(loadConfig({ env: { SOLOAD_CAPTURE_SNAPSHOT: '0' } }).capture.snapshot, false);
  assert.equal(loadConfig({ env: { SOLOAD_CAPTURE_REPORT_EXECUTABLE: 'TRUE' } }).capture.reportExecutable, true);
  assert.equal(loadConfig({ env: { SOLOAD_TRACEFS_BUFFER_SIZE_KB: ' 8192 ' } }).tracefs.bufferSizeKb, 8192);
  // convict alone read "no" as true and "10s" as 10: a typo now stops soload, naming the variable.
  assert.match(invalid(undefined, { SOLOAD_CAPTURE_SNAPSHOT: 'no' }), /SOLOAD_CAPTURE_SNAPSHOT \(capture\.snapshot\): must be true or false/);
  assert.match(invalid(undefined, { SOLOAD_OTLP_TIMEOUT_MS: '10s' }), /SOLOAD_OTLP_TIMEOUT_MS \(otel\.timeoutMs\): must be a non-negative integer/);
});

test('a value from the environment that fails its format names the key and the variable', () => {
  assert.match(invalid(undefined, { SOLOAD_SEVERITY: 'LOUD' }), /otel\.severity \(from SOLOAD_SEVERITY\): must be one of .*"INFO"/);
  assert.match(invalid(undefined, { OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: 'grpc' }), /otel\.protocol \(from OTEL_EXPORTER_OTLP_LOGS_PROTOCOL\)/);
  assert.match(invalid(undefined, { SOLOAD_EXPORTERS: 'otlp,kafka' }), /otel\.exporters \(from SOLOAD_EXPORTERS\).*kafka/);
});

test('endpoints must parse as http(s) URLs with a host; credentials never appear in the error', () => {
  assert.match(invalid({ otel: { endpoint: 'ftp://collector/v1/logs' } }), /otel\.endpoint: must be an http:\/\/ or https:\/\/ URL.*scheme "ftp"/);
  assert.match(invalid({ otel: { endpoint: 'http://' } }), /otel\.endpoint.*does not parse/);
  assert.match(invalid({ otel: { endpoint: 'http://[::1' } }), /otel\.endpoint.*does not parse/);
  assert.match(invalid({ otel: { metrics: { endpoint: 'metrics:4318' } } }), /otel\.metrics\.endpoint: must be empty or an http/);
  const msg = invalid(undefined, { OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'ftp://alice:hunter2@collector/v1/logs' });
  assert.match(msg, /otel\.endpoint \(from OTEL_EXPORTER_OTLP_LOGS_ENDPOINT\)/);
  assert.match(msg, /ftp:\/\/\*\*\*@collector/);
  assert.ok(!msg.includes('hunter2') && !msg.includes('alice'), msg);
  assert.doesNotThrow(() => loadConfig({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://[::1]:4318' } }));
});

test('client certificate and key: both or neither, checked at load', () => {
  assert.match(invalid(undefined, { OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: '/etc/c.pem' }), /SOLOAD_ERR_CONFIG_INVALID.*otel\.tls\.keyFile: must be set together with otel\.tls\.certFile/);
  assert.match(invalid({ otel: { tls: { keyFile: '/etc/k.pem' } } }), /otel\.tls\.certFile: must be set together with otel\.tls\.keyFile/);
  assert.doesNotThrow(() => loadConfig({ env: { SOLOAD_OTLP_CERT_FILE: '/etc/c.pem', SOLOAD_OTLP_KEY_FILE: '/etc/k.pem' } }));
});

test('header values are never part of an error message', () => {
  const msg = invalid({ otel: { headers: { authorization: 'Bearer s3cr3t', n: 5 } } });
  assert.match(msg, /otel\.headers: the value of header "n" must be a string \(value not shown\)/);
  assert.ok(!msg.includes('s3cr3t'));
  const env = invalid(undefined, { OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20s3cr3t', SOLOAD_SEVERITY: 'LOUD' });
  assert.ok(!env.includes('s3cr3t'), env);
});

test('state: housekeeping, dlopen age, exited grace and the debug view from file and environment; the interval has a floor', () => {
  const d = loadConfig({ env: {} }).state;
  assert.deepEqual(d, { housekeepingIntervalMs: 10000, dlopenMaxAgeMs: 60000, exitedGraceMs: 10000, debug: false });
  const e = loadConfig({ env: { SOLOAD_DEBUG_STATE: '1', SOLOAD_STATE_HOUSEKEEPING_INTERVAL_MS: '500', SOLOAD_STATE_DLOPEN_MAX_AGE_MS: '3000' } }).state;
  assert.deepEqual(e, { housekeepingIntervalMs: 500, dlopenMaxAgeMs: 3000, exitedGraceMs: 10000, debug: true });
  assert.match(invalid({ state: { housekeepingIntervalMs: 10 } }), /SOLOAD_ERR_CONFIG_INVALID.*state\.housekeepingIntervalMs.*at least 100/s);
});

test('header names must be HTTP tokens and values free of CR/LF/NUL, from the file or the environment; neither is quoted', () => {
  const name = invalid({ otel: { headers: { 'Bearer s3cr3t': 'x' } } });
  assert.match(name, /otel\.headers: header #1: its name \(13 characters\) is not an HTTP token: character 7/);
  assert.ok(!name.includes('s3cr3t'), name);
  const crlf = invalid(undefined, { OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20s3cr3t%0D%0AX-Injected:%201' });
  assert.match(crlf, /otel\.headers \(from OTEL_EXPORTER_OTLP_HEADERS\): the value of header "authorization" contains a CR, LF or NUL/);
  assert.ok(!crlf.includes('s3cr3t') && !crlf.includes('Injected'), crlf);
  assert.match(invalid(undefined, { OTEL_EXPORTER_OTLP_LOGS_HEADERS: 'x-token=a%00b' }), /\(from OTEL_EXPORTER_OTLP_LOGS_HEADERS\).*"x-token" contains a CR, LF or NUL/);
  assert.doesNotThrow(() => loadConfig({ env: { OTEL_EXPORTER_OTLP_HEADERS: "x-Custom_h.1!#$%&'*+^`|~=value with spaces" } }));
});
