import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { nsToHrTime, TraceClock } from '../../../src/otel/clock';
import { deviceName, SoLoadLogMapper } from '../../../src/otel/mapper';

test('SoLoadLogMapper: semconv attributes, readable body, kernel timestamp', () => {
  const m = new SoLoadLogMapper({ severity: 'WARN', toWallNs: (ns) => ns + 1_700_000_000_000_000_000n });
  const rec = m.map(
    {
      event: { timestampNs: 5_000_000_123n, pid: 42, tid: 43, comm: 'python3', method: 'dlopen', result: 'ok', probe: 'dlopen_return', path: '/usr/lib/x86_64-linux-gnu/libssl.so.3', requestedName: 'libssl.so.3', flags: 2 },
      process: { pid: 42, ppid: 1, exePath: '/usr/bin/python3.11', exeName: 'python3.11', commandLine: 'python3 app.py', uid: 0, owner: 'root', containerId: 'c'.repeat(64), mntNs: 4026532811, pidNs: 4026532814, nsPid: 7, serviceName: 'checkout', missing: [] },
      file: { size: 100, inode: 7, dev: 1 },
      missing: [],
    },
    1_700_000_005_000_000_500n,
  );
  assert.equal(rec.eventName, 'so.load');
  assert.equal(rec.severityText, 'WARN');
  assert.equal(rec.severityNumber, 13);
  assert.equal(rec.body, 'python3[42] loaded /usr/lib/x86_64-linux-gnu/libssl.so.3 via dlopen');
  assert.deepEqual(rec.timestamp, [1_700_000_005, 123]);
  assert.deepEqual(rec.observedTimestamp, [1_700_000_005, 500]);
  assert.deepEqual(rec.attributes, {
    'process.pid': 42,
    'thread.id': 43,
    'soload.load.method': 'dlopen',
    'soload.result': 'ok',
    'soload.probe': 'dlopen_return',
    'soload.comm': 'python3',
    'file.path': '/usr/lib/x86_64-linux-gnu/libssl.so.3',
    'file.name': 'libssl.so.3',
    'file.directory': '/usr/lib/x86_64-linux-gnu',
    'file.size': 100,
    'file.inode': 7,
    'soload.file.device': '00:01',
    'soload.requested_name': 'libssl.so.3',
    'soload.dlopen.flags': 2,
    'process.parent_pid': 1,
    'process.executable.path': '/usr/bin/python3.11',
    'process.executable.name': 'python3.11',
    'process.command_line': 'python3 app.py',
    'process.owner': 'root',
    'process.user.id': 0,
    'container.id': 'c'.repeat(64),
    'soload.process.mnt_ns': 4026532811,
    'soload.process.pid_ns': 4026532814,
    'soload.process.ns_pid': 7,
    'service.name': 'checkout',
  });
});

test('namespace attributes: a host process has mnt_ns and pid_ns but no ns_pid; custom records carry them too', () => {
  const m = new SoLoadLogMapper({ severity: 'INFO', toWallNs: (ns) => ns });
  const host = { pid: 5, mntNs: 4026531841, pidNs: 4026531836, missing: [] };
  const rec = m.map({ event: { timestampNs: 1n, pid: 5, tid: 5, comm: 'a', method: 'needed', result: 'ok', probe: 'p', path: '/l.so' }, process: host, missing: [] }, 2n);
  assert.equal(rec.attributes!['soload.process.mnt_ns'], 4026531841);
  assert.equal(rec.attributes!['soload.process.pid_ns'], 4026531836);
  assert.ok(!('soload.process.ns_pid' in rec.attributes!));
  const custom = m.mapCustom({ event: 'my_probe', tid: 8, tgid: 8, comm: 'a', cpu: 0, timestampNs: 1n, location: '0x1', fields: {} }, { pid: 8, mntNs: 11, pidNs: 12, nsPid: 1, missing: [] }, [], 2n);
  assert.deepEqual([custom.attributes!['soload.process.mnt_ns'], custom.attributes!['soload.process.pid_ns'], custom.attributes!['soload.process.ns_pid']], [11, 12, 1]);
});

test('README\'s attribute table lists every attribute a load record can carry', () => {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'README.md'))) {
    assert.notEqual(path.dirname(dir), dir, `README.md not found above ${__dirname}`);
    dir = path.dirname(dir);
  }
  const readme = fs.readFileSync(path.join(dir, 'README.md'), 'utf8');
  const start = readme.indexOf('### Attributes');
  assert.ok(start >= 0, 'README has an "Attributes" section');
  const table = readme.slice(start, readme.indexOf('\n\n', readme.indexOf('|', start)));
  const documented = new Set([...table.matchAll(/`([a-z_.]+)`/g)].map((x) => x[1]!));
  const m = new SoLoadLogMapper({ severity: 'INFO', toWallNs: (ns) => ns });
  const rec = m.map(
    {
      event: {
        timestampNs: 1n, pid: 42, tid: 43, comm: 'python3', method: 'dlopen', result: 'ok', probe: 'p', path: '/l/libx.so', requestedName: 'libx.so', flags: 2,
        loaderPath: '/proc/self/fd/4', hostPath: '/srv/l/libx.so', deleted: true, memfd: true, replaced: true, loadedBy: '/l/liba.so', snapshot: true, unresolved: ['soload.requested_name'],
      },
      process: { pid: 42, ppid: 1, exePath: '/bin/p', exeName: 'p', commandLine: 'p', uid: 0, owner: 'root', containerId: 'c'.repeat(64), mntNs: 1, pidNs: 2, nsPid: 3, serviceName: 's', missing: [] },
      file: { size: 1, inode: 2, dev: 3 },
      missing: ['file.path.namespace'],
    },
    2n,
  );
  const undocumented = Object.keys(rec.attributes!).filter((k) => !documented.has(k));
  assert.deepEqual(undocumented, [], 'attributes the mapper emits that README.md does not list');
});

test('failed loads and missing enrichment are said, not hidden', () => {
  const m = new SoLoadLogMapper({ severity: 'INFO', toWallNs: (ns) => ns });
  const rec = m.map({ event: { timestampNs: 1n, pid: 9, tid: 9, comm: '<...>', method: 'dlopen', result: 'failed', probe: 'r', requestedName: 'x.so', unresolved: [] }, missing: ['process'] }, 2n);
  assert.equal(rec.body, 'pid[9] failed to load x.so via dlopen');
  assert.deepEqual(rec.attributes!['soload.enrichment.missing'], ['process']);
  assert.equal(rec.attributes!['soload.comm'], undefined);
});

test('TraceClock: mono trace time converts to wall time within a millisecond', () => {
  const c = new TraceClock();
  const wall = Number(c.toWallNs(c.nowTraceNs()) / 1_000_000n);
  assert.ok(Math.abs(wall - Date.now()) <= 2, `off by ${wall - Date.now()} ms`);
  assert.deepEqual(nsToHrTime(1_000_000_001_000_000_007n), [1_000_000_001, 7]);
});

test('the traced service name can be carried under another attribute (backends that merge namespaces)', () => {
  const m = new SoLoadLogMapper({ severity: 'INFO', toWallNs: (ns) => ns, serviceNameAttribute: 'soload.process.service.name' });
  const rec = m.map({ event: { timestampNs: 1n, pid: 1, tid: 1, comm: 'a', method: 'needed', result: 'ok', probe: 'p', path: '/l.so' }, process: { pid: 1, serviceName: 'checkout', missing: [] }, missing: [] }, 2n);
  assert.equal(rec.attributes!['soload.process.service.name'], 'checkout');
  assert.equal(rec.attributes!['service.name'], undefined);
});

test('path attributes: loader string, host path, deleted/memfd/replaced flags; device as maps prints it', () => {
  const m = new SoLoadLogMapper({ severity: 'INFO', toWallNs: (ns) => ns });
  const base = { timestampNs: 1n, pid: 1, tid: 1, comm: 'a', method: 'dlopen' as const, result: 'ok' as const, probe: 'p' };
  const memfd = m.map({ event: { ...base, path: '/memfd:libmemfd.so', loaderPath: '/proc/self/fd/4', memfd: true, deleted: true }, missing: [] }, 2n);
  assert.equal(memfd.attributes!['file.path'], '/memfd:libmemfd.so');
  assert.equal(memfd.attributes!['file.name'], 'memfd:libmemfd.so');
  assert.equal(memfd.attributes!['soload.loader_path'], '/proc/self/fd/4');
  assert.equal(memfd.attributes!['soload.file.memfd'], true);
  assert.equal(memfd.attributes!['soload.file.deleted'], true);
  const jail = m.map({ event: { ...base, path: '/usr/lib/libj.so', hostPath: '/srv/jail/usr/lib/libj.so', replaced: true }, missing: [] }, 2n);
  assert.equal(jail.attributes!['soload.host_path'], '/srv/jail/usr/lib/libj.so');
  assert.equal(jail.attributes!['soload.file.replaced'], true);
  assert.equal(jail.attributes!['soload.loader_path'], undefined);
  // st_dev of /dev/vda1 (254:1), of a 12-bit-major/20-bit-minor device, and of an overlay (0:45)
  assert.equal(deviceName(0xfe01), 'fe:01');
  assert.equal(deviceName((0x103 << 8) | 0x12 | (0x345 << 12 << 8)), '103:34512');
  assert.equal(deviceName(45), '00:2d');
});

test('process resource mode: the process facts leave the record (they are its resource); file.*, thread.id and soload.* stay', () => {
  const m = new SoLoadLogMapper({ severity: 'INFO', toWallNs: (ns) => ns, processFacts: 'resource' });
  const p = { pid: 42, ppid: 1, exePath: '/bin/p', exeName: 'p', commandLine: 'p', uid: 0, owner: 'root', containerId: 'c'.repeat(64), mntNs: 1, pidNs: 2, nsPid: 3, serviceName: 's', missing: [] };
  const rec = m.map({ event: { timestampNs: 1n, pid: 42, tid: 43, comm: 'p', method: 'dlopen', result: 'ok', probe: 'x', path: '/opt/l.so' }, process: p, missing: [] }, 2n);
  assert.equal(rec.eventName, 'so.load');
  assert.equal(rec.body, 'p[42] loaded /opt/l.so via dlopen');
  const keys = Object.keys(rec.attributes!);
  assert.deepEqual(keys.filter((k) => k.startsWith('process.') || k.startsWith('service.') || k === 'container.id' || k.startsWith('soload.process.')), []);
  assert.equal(rec.attributes!['thread.id'], 43);
  assert.equal(rec.attributes!['file.path'], '/opt/l.so');
  assert.equal(rec.attributes!['soload.load.method'], 'dlopen');
  const custom = m.mapCustom({ event: 'my_probe', tid: 42, tgid: 42, comm: 'p', cpu: 0, timestampNs: 1n, fields: { a: '1' } } as never, p, [], 2n);
  assert.equal(custom.attributes!['process.pid'], undefined);
  assert.equal(custom.attributes!['soload.arg.a'], '1');
});
