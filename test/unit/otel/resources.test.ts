import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { ProtobufLogsSerializer, JsonLogsSerializer } from '@opentelemetry/otlp-transformer';
import { InMemoryLogRecordExporter, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import type { ProcessInfo } from '../../../src/host/proc-reader';
import {
  AgentLoggers,
  DeclaredKeyFilter,
  hostArch,
  hostAttributes,
  processResourceAttributes,
  ProcessLoggers,
  SCOPE_NAME,
} from '../../../src/otel/resources';

const HOST = { 'host.name': 'node-7', 'host.arch': 'amd64', 'os.type': 'linux', 'os.version': '6.1.0' };
const opts = (over: Partial<Parameters<typeof processResourceAttributes>[2]> = {}) => ({
  host: HOST,
  defaults: {},
  declared: new DeclaredKeyFilter(['service.*', 'deployment.*']),
  ...over,
});

const checkout: ProcessInfo = {
  pid: 4242,
  ppid: 1,
  exePath: '/usr/bin/node',
  exeName: 'node',
  commandLine: 'node server.js',
  uid: 1000,
  owner: 'app',
  containerId: 'a'.repeat(64),
  serviceName: 'checkout',
  declaredResource: {
    'service.name': 'ignored-because-OTEL_SERVICE_NAME-wins',
    'service.namespace': 'shop',
    'service.instance.id': 'checkout-1',
    'deployment.environment.name': 'prod',
    'k8s.pod.uid': 'forged',
    'host.name': 'forged-host',
    'process.pid': '1',
    'container.id': 'b'.repeat(64),
    'soload.anything': 'x',
  },
  mntNs: 4026531841,
  pidNs: 4026531836,
  missing: [],
};

test('process resource: declared service.*/deployment.* are taken, observed process.*/host.*/container.id always win, k8s.* is not taken by default', () => {
  const a = processResourceAttributes(checkout, 4242, opts({ defaults: { 'k8s.cluster.name': 'eu-1', 'deployment.environment.name': 'default-env' } }));
  assert.equal(a['service.name'], 'checkout', 'serviceName (OTEL_SERVICE_NAME) wins over the list');
  assert.equal(a['service.namespace'], 'shop');
  assert.equal(a['service.instance.id'], 'checkout-1');
  assert.equal(a['deployment.environment.name'], 'prod', 'what the process declares wins over the operator default');
  assert.equal(a['k8s.cluster.name'], 'eu-1', 'operator default');
  assert.equal(a['k8s.pod.uid'], undefined, 'k8s.* comes from k8s_attributes in the Collector, not from the process');
  assert.equal(a['host.name'], 'node-7');
  assert.equal(a['process.pid'], 4242);
  assert.equal(a['container.id'], 'a'.repeat(64));
  assert.equal(a['soload.anything'], undefined);
  assert.equal(a['process.executable.name'], 'node');
  assert.equal(a['process.command_line'], 'node server.js');
  assert.equal(a['process.parent_pid'], 1);
  assert.equal(a['soload.process.mnt_ns'], 4026531841);
});

test('process resource: service.name falls back like an OTel SDK: unknown_service:<executable>, else unknown_service', () => {
  assert.equal(processResourceAttributes({ pid: 9, exeName: 'nginx', missing: [] }, 9, opts())['service.name'], 'unknown_service:nginx');
  assert.equal(processResourceAttributes(undefined, 9, opts())['service.name'], 'unknown_service');
  const gone = processResourceAttributes(undefined, 9, opts());
  assert.equal(gone['process.pid'], 9, 'a record whose process was gone still names its pid');
  assert.equal(gone['host.name'], 'node-7');
  // service.name from OTEL_RESOURCE_ATTRIBUTES only
  const listed = processResourceAttributes({ pid: 9, exeName: 'x', serviceName: 'from-list', declaredResource: { 'service.name': 'from-list' }, missing: [] }, 9, opts());
  assert.equal(listed['service.name'], 'from-list');
  // an empty declared name is no name
  assert.equal(processResourceAttributes({ pid: 9, exeName: 'x', declaredResource: { 'service.name': '' }, missing: [] }, 9, opts())['service.name'], 'unknown_service:x');
});

test('DeclaredKeyFilter: prefixes, exact keys, "*" — and never an observed namespace', () => {
  const f = new DeclaredKeyFilter(['service.*', 'team']);
  assert.ok(f.accepts('service.version'));
  assert.ok(f.accepts('team'));
  assert.ok(!f.accepts('teams'));
  assert.ok(!f.accepts('serviceX'));
  const all = new DeclaredKeyFilter(['*']);
  assert.ok(all.accepts('k8s.pod.name'));
  for (const k of ['process.pid', 'host.name', 'host', 'os.type', 'container.id', 'soload.x', 'telemetry.sdk.language']) assert.ok(!all.accepts(k), k);
  assert.ok(all.accepts('container.image.name'), 'only container.id is observed');
  assert.ok(!new DeclaredKeyFilter([]).accepts('service.namespace'));
});

test('host attributes use the semantic conventions\' host.arch values', () => {
  assert.equal(hostArch('x64'), 'amd64');
  assert.equal(hostArch('arm64'), 'arm64');
  assert.equal(hostArch('riscv64'), 'riscv64');
  assert.equal(hostAttributes()['host.name'], os.hostname());
});

function processLoggers() {
  const exporter = new InMemoryLogRecordExporter();
  const loggers = new ProcessLoggers({
    ...opts(),
    processors: [new SimpleLogRecordProcessor({ exporter })],
    scope: { name: SCOPE_NAME, version: '9.9.9', attributes: { 'soload.agent.instance.id': 'h:1' } },
    maxUnknown: 2,
  });
  return { exporter, loggers };
}

test('ProcessLoggers: one Logger (one Resource) per ProcessInfo; records carry the process resource and soload as the scope', () => {
  const { exporter, loggers } = processLoggers();
  const a = loggers.loggerFor(checkout, 4242);
  assert.equal(loggers.loggerFor(checkout, 4242), a);
  const other: ProcessInfo = { pid: 7, exeName: 'python3', missing: [] };
  assert.notEqual(loggers.loggerFor(other, 7), a);
  assert.equal(loggers.resourcesCreated, 2);
  a.emit({ eventName: 'so.load', body: 'x', attributes: { 'file.path': '/l.so' } });
  const [r] = exporter.getFinishedLogRecords();
  assert.equal(r!.resource.attributes['service.name'], 'checkout');
  assert.equal(r!.resource.attributes['process.pid'], 4242);
  assert.equal(r!.resource.attributes['telemetry.sdk.language'], undefined, 'the resource is the traced process, not soload\'s SDK');
  assert.equal(r!.instrumentationScope.name, 'soload');
  assert.equal(r!.instrumentationScope.version, '9.9.9');
  assert.deepEqual(r!.instrumentationScope.attributes, { 'soload.agent.instance.id': 'h:1' });
  assert.equal(r!.eventName, 'so.load');
});

test('ProcessLoggers: records without ProcessInfo get a pid-keyed Logger from a bounded map', () => {
  const { loggers } = processLoggers();
  const l1 = loggers.loggerFor(undefined, 1);
  assert.equal(loggers.loggerFor(undefined, 1), l1);
  loggers.loggerFor(undefined, 2);
  loggers.loggerFor(undefined, 3); // evicts pid 1 (bound 2)
  assert.notEqual(loggers.loggerFor(undefined, 1), l1);
  assert.equal(loggers.resourcesCreated, 4);
});

test('an OTLP request of interleaved records of 3 processes holds 3 ResourceLogs, each with its own records (protobuf and JSON)', () => {
  const { exporter, loggers } = processLoggers();
  const procs: ProcessInfo[] = [1, 2, 3].map((pid) => ({ pid, exeName: `p${pid}`, serviceName: `svc-${pid}`, missing: [] }));
  for (let i = 0; i < 300; i++) loggers.loggerFor(procs[i % 3], procs[i % 3]!.pid).emit({ eventName: 'so.load', body: `load ${i}`, attributes: { n: i } });
  const records = exporter.getFinishedLogRecords();
  assert.equal(records.length, 300);
  const json = JSON.parse(Buffer.from(JsonLogsSerializer.serializeRequest(records)!).toString('utf8')) as {
    resourceLogs: Array<{ resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> }; scopeLogs: Array<{ scope: { name: string }; logRecords: unknown[] }> }>;
  };
  assert.equal(json.resourceLogs.length, 3);
  for (const rl of json.resourceLogs) {
    const svc = rl.resource.attributes.find((a) => a.key === 'service.name')!.value.stringValue;
    assert.match(svc!, /^svc-[123]$/);
    assert.equal(rl.scopeLogs.length, 1);
    assert.equal(rl.scopeLogs[0]!.scope.name, 'soload');
    assert.equal(rl.scopeLogs[0]!.logRecords.length, 100);
  }
  const proto = ProtobufLogsSerializer.serializeRequest(records)!;
  // the resource (service.name, host.*, pid) is written once per process, not once per record
  const times = (buf: Uint8Array, s: string) => Buffer.from(buf).toString('latin1').split(s).length - 1;
  assert.equal(times(proto, 'svc-2'), 1);
});

test('AgentLoggers: every record through the one Logger', () => {
  const fake = { emit() {} } as never;
  const l = new AgentLoggers(fake);
  assert.equal(l.loggerFor(checkout, 1), fake);
  assert.equal(l.loggerFor(undefined, 2), fake);
  assert.equal(l.resourcesCreated, 0);
});
