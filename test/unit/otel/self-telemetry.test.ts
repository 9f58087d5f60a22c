import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, redactConfig } from '../../../src/config/load';
import { healthSource, type HealthSnapshot } from '../../../src/otel/health';
import { parseCpuStats, readRingBufferStats } from '../../../src/tracefs/ring-stats';
import { tlsAgentOptions } from '../../../src/otel/otlp-sender';
import { formatSummary, metricsEndpoint, metricsExported, startSelfTelemetry } from '../../../src/otel/self-telemetry';
import { emptyDeliveryStats, type DeliveryStats } from '../../../src/otel/retrying-exporter';
import type { SinkObservation, SinkStats } from '../../../src/otel/pipeline';

const CPU_STATS = `entries: 0
overrun: 7
commit overrun: 1
bytes: 0
oldest event ts:     0.000000
now ts:  1525.352723
dropped events: 3
read events: 12
`;

function fakeInstance(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-inst-'));
  for (const cpu of ['cpu0', 'cpu1']) {
    fs.mkdirSync(path.join(dir, 'per_cpu', cpu), { recursive: true });
    fs.writeFileSync(path.join(dir, 'per_cpu', cpu, 'stats'), CPU_STATS);
  }
  return dir;
}

test('per_cpu stats are parsed and summed; the last value survives the instance removal', () => {
  assert.deepEqual(parseCpuStats(CPU_STATS), { overrun: 7, commitOverrun: 1, droppedEvents: 3 });
  const dir = fakeInstance();
  assert.deepEqual(readRingBufferStats(dir), { overrun: 14, commitOverrun: 2, droppedEvents: 6 });
  const dlopen = { nameRecovered: 2, nameUnresolved: 1, pathUnresolved: 0 };
  const agent = { loadsEmitted: 10, loadsFiltered: 1, customEmitted: 0 };
  const h = healthSource({ agent, dlopen, pipe: () => ({ records: 30, lostEvents: 5, malformed: 0 }), ring: () => readRingBufferStats(dir) });
  assert.equal(h().trace.ring.overrun, 14);
  fs.rmSync(dir, { recursive: true });
  agent.loadsEmitted = 11;
  const s = h();
  assert.equal(s.trace.ring.overrun, 14, 'last known');
  assert.equal(s.loads.emitted, 11, 'live view of the agent counters');
  assert.equal(s.faults.avoided, 2);
  assert.equal(s.trace.lostEvents, 5);
});

test('summary line names loads, delivery per exporter, drops by reason, each kernel loss counter on its own, and faults', () => {
  const h: HealthSnapshot = {
    loads: { emitted: 100, filtered: 2, custom: 0 },
    trace: { records: 300, lostEvents: 4, malformed: 0, ring: { overrun: 4, commitOverrun: 1, droppedEvents: 2 } },
    faults: { avoided: 3, nameUnresolved: 1, pathUnresolved: 0 },
    paths: { renamed: 40, deleted: 2, memfd: 1, replaced: 1, namespaceGuessed: 3, fdUnresolved: 0 },
  };
  const otlp: DeliveryStats = {
    exported: 90,
    dropped: 5,
    droppedByReason: { queue_full: 5, rejected: 0, shutdown: 0, spill_error: 0 },
    buffered: 5,
    bufferedBytes: 100,
    spilled: 0,
    spilledBytes: 0,
    spilledTotal: 0,
    recovered: 0,
    failedAttempts: 7,
  };
  const console_: DeliveryStats = { ...emptyDeliveryStats(), exported: 100 };
  const line = formatSummary(h, [
    { name: 'otlp', stats: otlp },
    { name: 'console', stats: console_ },
  ]);
  assert.equal(
    line,
    'stats: loads 100 (filtered 2); exported 90; queued 5; dropped 5 (queue_full 5); export failures 7; console exported 100 dropped 0; trace_pipe lost 4; ring overrun 4 commit_overrun 1 dropped 2; faults avoided 3, unresolved name 1 path 0; paths renamed 40, deleted 2, memfd 1, replaced 1, namespace guessed 3, fd unresolved 0',
  );
  // console only: the same delivery summary (no more silence about where records went); none: said so
  assert.match(formatSummary(h, [{ name: 'console', stats: console_ }]), /; exported 100; queued 0; dropped 0; export failures 0; trace_pipe lost 4;/);
  assert.match(formatSummary(h, []), /; exporters none; trace_pipe lost 4;/);
});

test('self-metrics follow any exporter configuration: otlp, or console/none with a metrics endpoint set', () => {
  const cfg = (env: NodeJS.ProcessEnv) => loadConfig({ env });
  assert.equal(metricsExported(cfg({})), true);
  assert.equal(metricsExported(cfg({ SOLOAD_EXPORTERS: 'console' })), false, 'no collector configured: nothing to send to');
  assert.equal(metricsExported(cfg({ SOLOAD_EXPORTERS: 'console', SOLOAD_METRICS_ENDPOINT: 'http://m:4318/v1/metrics' })), true);
  assert.equal(metricsExported(cfg({ SOLOAD_EXPORTERS: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://gw:4318' })), true);
  assert.equal(metricsExported(cfg({ SOLOAD_EXPORTERS: 'console', SOLOAD_METRICS_ENDPOINT: 'http://m:4318/v1/metrics', SOLOAD_METRICS_ENABLED: 'false' })), false);
});

test('metrics endpoint: derived from the logs URL, or configured, or from OTEL_EXPORTER_OTLP_(METRICS_)ENDPOINT', () => {
  const cfg = (env: NodeJS.ProcessEnv) => loadConfig({ env });
  assert.equal(metricsEndpoint(cfg({})), 'http://localhost:4318/v1/metrics');
  assert.equal(metricsEndpoint(cfg({ SOLOAD_OTLP_ENDPOINT: 'https://gw:4318/v1/logs' })), 'https://gw:4318/v1/metrics');
  assert.equal(metricsEndpoint(cfg({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://gw:4318/' })), 'http://gw:4318/v1/metrics');
  assert.equal(metricsEndpoint(cfg({ OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://m:9/x' })), 'http://m:9/x');
  assert.equal(metricsEndpoint(cfg({ SOLOAD_METRICS_ENDPOINT: 'http://m2:9/v1/metrics' })), 'http://m2:9/v1/metrics');
});

test('OTLP env for TLS, protocol and compression lands in the config; `soload config` prints paths, masks headers', () => {
  const c = loadConfig({
    env: {
      OTEL_EXPORTER_OTLP_CERTIFICATE: '/etc/ca.pem',
      OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: '/etc/c.pem',
      OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY: '/etc/k.pem',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
      OTEL_EXPORTER_OTLP_HEADERS: 'Authorization=Bearer%20s3cret',
      OTEL_METRIC_EXPORT_INTERVAL: '15000',
    },
  });
  assert.deepEqual(c.otel.tls, { caFile: '/etc/ca.pem', certFile: '/etc/c.pem', keyFile: '/etc/k.pem' });
  assert.equal(c.otel.protocol, 'http/json');
  assert.equal(c.otel.compression, 'gzip');
  assert.equal(c.otel.metrics.intervalMs, 15000);
  const printed = JSON.stringify(redactConfig(c));
  assert.ok(!printed.includes('s3cret'));
  assert.ok(printed.includes('/etc/k.pem'));
  assert.throws(() => loadConfig({ env: { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' } }), /otel.protocol/);
});

test('defaults: in-memory bound ≥ 2 × (60 s × 200 loads/s), spill off, stats line every 60 s', () => {
  const c = loadConfig({ env: {} });
  assert.ok(c.otel.delivery.maxBufferedRecords >= 24_000);
  assert.equal(c.otel.delivery.spillDir, '');
  assert.equal(c.log.statsIntervalMs, 60000);
  assert.ok(c.otel.batch.maxQueueSize >= c.otel.batch.maxExportBatchSize);
});

test('TLS files: read into agent options; errors name the file, never its content', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-tls-'));
  const ca = path.join(dir, 'ca.pem');
  fs.writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nSECRETISH\n-----END CERTIFICATE-----\n');
  const o = tlsAgentOptions({ caFile: ca });
  assert.ok(Buffer.isBuffer(o.ca));
  assert.throws(() => tlsAgentOptions({ caFile: path.join(dir, 'missing.pem') }), (e: Error) => /missing\.pem/.test(e.message) && /ENOENT/.test(e.message));
  assert.throws(() => tlsAgentOptions({ certFile: ca }), /must be set together/);
  fs.writeFileSync(path.join(dir, 'key.pem'), 'PRIVATE');
  fs.chmodSync(path.join(dir, 'key.pem'), 0o000);
  if (process.getuid?.() !== 0) {
    assert.throws(() => tlsAgentOptions({ certFile: ca, keyFile: path.join(dir, 'key.pem') }), (e: Error) => !e.message.includes('PRIVATE'));
  }
  fs.rmSync(dir, { recursive: true });
});

type MetricJson = Record<string, unknown> & { name: string };
type Point = { asInt?: number | string; asDouble?: number; attributes: Array<{ key: string; value: { stringValue: string } }> };
const points = (m: MetricJson | undefined): Point[] => ((m?.sum ?? m?.gauge) as { dataPoints: Point[] } | undefined)?.dataPoints ?? [];
const attr = (p: Point, k: string) => p.attributes.find((a) => a.key === k)?.value.stringValue;
const num = (p: Point | undefined) => Number(p?.asInt ?? p?.asDouble);

test('self-metrics are exported over OTLP/HTTP to the metrics URL with the configured headers', async () => {
  const bodies: Array<{ url?: string; auth?: string; body: string }> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      bodies.push({ url: req.url, auth: req.headers.authorization, body });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const config = loadConfig({ env: { SOLOAD_OTLP_ENDPOINT: `http://127.0.0.1:${port}/v1/logs`, OTEL_EXPORTER_OTLP_HEADERS: 'Authorization=Bearer t0k', SOLOAD_LOG_STATS_INTERVAL_MS: '0' } });
  const lines: string[] = [];
  const h: HealthSnapshot = {
    loads: { emitted: 12, filtered: 0, custom: 0 },
    trace: { records: 30, lostEvents: 2, malformed: 0, ring: { overrun: 5, commitOverrun: 1, droppedEvents: 3 } },
    elf: { invalid: { unreadable: 0, not_elf: 2, headers: 1, contents: 0 } },
    faults: { avoided: 1, nameUnresolved: 0, pathUnresolved: 0 },
    paths: { renamed: 6, deleted: 1, memfd: 0, replaced: 0, namespaceGuessed: 2, fdUnresolved: 0 },
  };
  const observers: Array<(o: SinkObservation) => void> = [];
  const delivery = { ...emptyDeliveryStats(), exported: 12, dropped: 3, droppedByReason: { queue_full: 3, rejected: 0, shutdown: 0, spill_error: 0 }, failedAttempts: 1 };
  const t = startSelfTelemetry({
    config,
    health: () => h,
    pipeline: { sinks: [{ name: 'otlp', stats: delivery }] as SinkStats[], onExport: (fn) => (observers.push(fn), () => {}) },
    log: { info: (m) => lines.push(m), warn: (m) => lines.push(m) },
  });
  observers.forEach((fn) => fn({ records: 12, ok: true, durationMs: 4, latencyMs: 250, exporter: 'otlp' }));
  await t.shutdown(); // final export
  server.close();
  assert.equal(bodies.length, 1, lines.join('\n'));
  assert.equal(bodies[0]!.url, '/v1/metrics');
  assert.equal(bodies[0]!.auth, 'Bearer t0k');
  const req = JSON.parse(bodies[0]!.body) as { resourceMetrics: Array<{ scopeMetrics: Array<{ metrics: Array<Record<string, unknown> & { name: string }> }> }> };
  const metrics = req.resourceMetrics[0]!.scopeMetrics.flatMap((s) => s.metrics);
  const byName = new Map(metrics.map((m) => [m.name, m]));
  for (const name of ['soload.records.exported', 'soload.records.dropped', 'soload.faults.avoided', 'soload.faults.unresolved', 'soload.export.latency', 'soload.loads.emitted', 'soload.delivery.queued']) {
    assert.ok(byName.has(name), `missing ${name}; have ${[...byName.keys()].join(', ')}`);
  }
  const qf = points(byName.get('soload.records.dropped')).find((p) => attr(p, 'reason') === 'queue_full');
  assert.equal(num(qf), 3);
  assert.equal(attr(qf!, 'exporter'), 'otlp');
  // Kernel losses: one metric per source, no `source` attribute (values of overlapping sources must not
  // share a metric, whose attribute values are meant to add up).
  assert.equal(byName.has('soload.trace.lost_events'), false);
  const lossMetrics = { 'soload.trace.pipe_lost_events': 2, 'soload.ring.overrun': 5, 'soload.ring.commit_overrun': 1, 'soload.ring.dropped_events': 3 };
  for (const [name, value] of Object.entries(lossMetrics)) {
    const ps = points(byName.get(name));
    assert.equal(ps.length, 1, `${name}: ${JSON.stringify(byName.get(name))}`);
    assert.deepEqual(ps[0]!.attributes, [], name);
    assert.equal(num(ps[0]), value, name);
  }
  // Malformed ELF input, by reason (a .jsa mapped executable is not_elf).
  const elfPoints = points(byName.get('soload.elf.invalid'));
  assert.equal(num(elfPoints.find((p) => attr(p, 'reason') === 'not_elf')), 2);
  assert.equal(num(elfPoints.find((p) => attr(p, 'reason') === 'headers')), 1);
  // Path outcomes: one metric each (a record can be renamed and deleted at once).
  assert.equal(num(points(byName.get('soload.paths.renamed'))[0]), 6);
  assert.equal(num(points(byName.get('soload.paths.namespace_guessed'))[0]), 2);
  assert.equal(num(points(byName.get('soload.paths.deleted'))[0]), 1);
  const latency = byName.get('soload.export.latency') as unknown as { histogram: { dataPoints: Array<{ count: number | string; sum: number }> } };
  assert.equal(Number(latency.histogram.dataPoints[0]!.count), 1);
  assert.equal(latency.histogram.dataPoints[0]!.sum, 0.25);
});

test('with exporters ["console"] and a metrics endpoint, the console delivery counters are exported as self-metrics', async () => {
  const bodies: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      bodies.push(body);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const config = loadConfig({ env: { SOLOAD_EXPORTERS: 'console', SOLOAD_METRICS_ENDPOINT: `http://127.0.0.1:${port}/v1/metrics`, SOLOAD_LOG_STATS_INTERVAL_MS: '0' } });
  const stats = { ...emptyDeliveryStats(), exported: 7 };
  const h: HealthSnapshot = {
    loads: { emitted: 7, filtered: 0, custom: 0 },
    trace: { records: 7, lostEvents: 0, malformed: 0, ring: { overrun: 0, commitOverrun: 0, droppedEvents: 0 } },
    faults: { avoided: 0, nameUnresolved: 0, pathUnresolved: 0 },
    paths: { renamed: 0, deleted: 0, memfd: 0, replaced: 0, namespaceGuessed: 0, fdUnresolved: 0 },
  };
  const t = startSelfTelemetry({ config, health: () => h, pipeline: { sinks: [{ name: 'console', stats }] }, log: { info: () => {}, warn: () => {} } });
  assert.match(t.summary(), /exported 7; queued 0; dropped 0/);
  await t.shutdown();
  server.close();
  assert.equal(bodies.length, 1);
  const req = JSON.parse(bodies[0]!) as { resourceMetrics: Array<{ scopeMetrics: Array<{ metrics: MetricJson[] }> }> };
  const byName = new Map(req.resourceMetrics[0]!.scopeMetrics.flatMap((s) => s.metrics).map((m) => [m.name, m]));
  const exported = points(byName.get('soload.records.exported'));
  assert.equal(exported.length, 1);
  assert.equal(attr(exported[0]!, 'exporter'), 'console');
  assert.equal(num(exported[0]), 7);
});
