import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, parseOtelKeyValueList, redactConfig } from '../../../src/config/load';
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
    'loader_state:ld-linux*.so*:entry:loader.state',
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
  assert.match(invalid({ probes: [{ ...probe, library: 'lib c.so' }] }), /library/);
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

test('parseOtelKeyValueList skips malformed members and percent-decodes', () => {
  assert.deepEqual(parseOtelKeyValueList('a=1,=x,b,c=%ZZ,d=x%2Cy'), { a: '1', d: 'x,y' });
});
