/**
 * Trace ↔ load correlation with real components only. A service instrumented with the real
 * OpenTelemetry JS SDK (test/fixtures/otel/checkout-service.ts: OTEL_SERVICE_NAME=checkout,
 * service.namespace and service.instance.id in OTEL_RESOURCE_ATTRIBUTES) sends a span to the
 * repository's Collector (otel-collector.yaml, backends chosen by environment only) and, inside the
 * span, dlopen()s a native addon. soload, in its default process resource mode, reports the load to
 * the same Collector, which forwards logs to VictoriaLogs. The span's resource and the load's
 * resource must agree on what backends join on, and a LogsQL query by the span's service and time
 * window must return the load — the query the README gives for Grafana/Loki and Elastic.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, readFileExporterSpans, sleep, startRepoCollector, validateCollectorConfig, waitForFileExporterLogs, type CollectorHandle, type FlatLogRecord, type FlatSpan } from '../helpers/collector';
import { FIXTURES_C, gcc, requireLiveKernel, soloadLeftovers, startSoload, tmpDir, type SoloadProcess } from '../helpers/soload';
import { startVictoriaLogs, type VictoriaLogsHandle } from '../helpers/victorialogs';

const SERVICE = path.join(REPO_ROOT, 'dist', 'test', 'fixtures', 'otel', 'checkout-service.js');
const AGENT_CONFIG = path.join(REPO_ROOT, 'otel-collector.yaml');

let dir: string;
let addon: string;
let vl: VictoriaLogsHandle;
let collector: CollectorHandle;
let soload: SoloadProcess;
let logsFile: string;
let tracesFile: string;

before(async () => {
  requireLiveKernel();
  dir = tmpDir('soload-corr-');
  addon = path.join(dir, 'payments-plugin.node');
  gcc(['-shared', '-fPIC', '-o', addon, path.join(FIXTURES_C, 'napi-addon.c')]);
  vl = await startVictoriaLogs();
  logsFile = path.join(dir, 'otlp-logs.jsonl');
  tracesFile = path.join(dir, 'otlp-traces.jsonl');
  collector = await startRepoCollector({
    SOLOAD_LOG_EXPORTERS: '[debug, otlphttp/victorialogs, file/local]',
    SOLOAD_TRACE_EXPORTERS: '[debug, file/traces]',
    // the resource processor example runs for real (k8s_attributes needs a cluster: validated below)
    SOLOAD_LOG_PROCESSORS: '[memory_limiter, resource/soload, batch]',
    K8S_CLUSTER_NAME: 'test-cluster',
    SOLOAD_OTLP_FILE: logsFile,
    SOLOAD_OTLP_TRACES_FILE: tracesFile,
    VICTORIALOGS_URL: vl.url,
  });
  soload = await startSoload({
    otel: { resourceMode: 'process', exporters: ['otlp', 'console'], endpoint: `${collector.httpEndpoint}/v1/logs`, batch: { scheduledDelayMs: 100 } },
    filters: { pathInclude: [`${dir}/*`] },
  });
});

after(async () => {
  const code = await soload?.stop('SIGTERM');
  await collector?.stop();
  await vl?.stop();
  if (dir && process.env.SOLOAD_KEEP_TEST_DIRS !== '1') fs.rmSync(dir, { recursive: true, force: true });
  assert.equal(code, 143, `soload exit code after SIGTERM; stderr:\n${soload?.stderr()}`);
  assert.deepEqual(soloadLeftovers(), { probes: [], instances: [] }, 'soload left probes or an instance behind');
});

/** Runs the instrumented service; returns what it printed (its pid and span) and its span as the Collector wrote it. */
async function runCheckout(instanceId: string): Promise<{ pid: number; span: FlatSpan; startMs: number; endMs: number }> {
  const r = spawnSync(process.execPath, [SERVICE, addon, '1500'], {
    encoding: 'utf8',
    env: {
      ...process.env,
      OTEL_SERVICE_NAME: 'checkout',
      OTEL_RESOURCE_ATTRIBUTES: `service.namespace=shop,service.instance.id=${instanceId},deployment.environment.name=staging`,
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${collector.httpEndpoint}/v1/traces`,
    },
  });
  assert.equal(r.status, 0, `checkout-service failed:\n${r.stdout}\n${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { pid: number; traceId: string; spanId: string; startMs: number; endMs: number };
  const deadline = Date.now() + 15_000;
  for (;;) {
    const span = readFileExporterSpans(tracesFile).find((s) => s.traceId === out.traceId && s.spanId === out.spanId);
    if (span) return { pid: out.pid, span, startMs: out.startMs, endMs: out.endMs };
    if (Date.now() > deadline) throw new Error(`span ${out.traceId}/${out.spanId} never reached ${tracesFile}:\n${collector.output().slice(-3000)}`);
    await sleep(100);
  }
}

test('the load record of an OTel-instrumented service has the resource of that service\'s span (service.name, service.instance.id, process.pid, host.name), soload as its scope', async () => {
  const instanceId = `checkout-${process.pid}-${Date.now()}`;
  const { pid, span } = await runCheckout(instanceId);
  // the SDK's own resource, as the backend receives it
  assert.equal(span.resource['service.name'], 'checkout');
  assert.equal(span.resource['service.instance.id'], instanceId);
  assert.equal(span.resource['process.pid'], pid);
  assert.equal(span.resource['host.name'], os.hostname());

  const isLoad = (x: FlatLogRecord) => x.attributes['file.path'] === addon && x.resource['process.pid'] === pid;
  const load = (await waitForFileExporterLogs(logsFile, (rs) => rs.some(isLoad), 20_000)).find(isLoad)!;
  for (const key of ['service.name', 'service.namespace', 'service.instance.id', 'process.pid', 'host.name', 'deployment.environment.name']) {
    assert.equal(load.resource[key], span.resource[key], `${key}: load resource ${JSON.stringify(load.resource)} vs span resource ${JSON.stringify(span.resource)}`);
  }
  assert.equal(load.resource['process.executable.name'], 'node');
  assert.equal(load.resource['k8s.cluster.name'], 'test-cluster', 'the resource processor example of otel-collector.yaml ran');
  assert.equal(load.resource['process.command_line'], undefined, 'the resource processor example removed the command line');
  // soload's identity moved to the scope; the record keeps its event name, soload.*/file.* and a readable body
  assert.equal(load.scope.name, 'soload');
  assert.match(load.scope.version ?? '', /^\d+\.\d+\.\d+/);
  assert.equal(load.scope.attributes['soload.agent.service.name'], 'soload');
  assert.equal(load.scope.attributes['soload.agent.instance.id'], `${os.hostname()}:${soload.pid}`);
  assert.equal(load.eventName, 'so.load');
  assert.equal(load.attributes['soload.load.method'], 'dlopen');
  assert.equal(load.attributes['file.name'], 'payments-plugin.node');
  assert.equal(load.attributes['process.pid'], undefined, 'process facts are the resource, not repeated per record');
  assert.match(String(load.body), new RegExp(`^node\\[${pid}\\] loaded ${addon.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} via dlopen$`));
  assert.equal(load.resource['telemetry.sdk.language'], undefined, 'the resource describes the process, not soload\'s SDK');
});

test('a LogsQL query by the span\'s service.name and time window returns the load (VictoriaLogs, through the same Collector)', async () => {
  const instanceId = `checkout-q-${Date.now()}`;
  const { pid, span } = await runCheckout(instanceId);
  // the span's window as a user copies it from the trace view, padded by 1 s on each side
  const from = new Date(Number(BigInt(span.startTimeUnixNano) / 1_000_000n) - 1000).toISOString();
  const to = new Date(Number(BigInt(span.endTimeUnixNano) / 1_000_000n) + 1000).toISOString();
  const q = `'service.name':=checkout 'service.instance.id':=${JSON.stringify(instanceId)} _time:[${from}, ${to}] event_name:="so.load"`;
  const rows = await vl.waitForQuery(q, { minCount: 1, timeoutMs: 30_000 });
  assert.equal(rows.length, 1, JSON.stringify(rows, null, 1));
  assert.equal(rows[0]!['file.path'], addon);
  assert.equal(rows[0]!['process.pid'], String(pid));
  // The stream is the low-cardinality resource only (VL-Stream-Fields in otel-collector.yaml):
  // no stream per pid.
  assert.match(rows[0]!._stream ?? '', /service\.name="checkout"/);
  assert.match(rows[0]!._stream ?? '', /service\.namespace="shop"/);
  assert.doesNotMatch(rows[0]!._stream ?? '', /process\.pid/);
  // the load happened inside the span: its timestamp is within the span's own bounds
  const t = Date.parse(rows[0]!._time!);
  assert.ok(t >= Number(BigInt(span.startTimeUnixNano) / 1_000_000n) - 50 && t <= Number(BigInt(span.endTimeUnixNano) / 1_000_000n) + 50, `load at ${rows[0]!._time} outside span ${from}..${to}`);
  // a different service in the same window finds nothing
  assert.deepEqual(await vl.query(`'service.name':=billing _time:[${from}, ${to}] event_name:="so.load"`), []);
});

test('otel-collector.yaml validates with the Kubernetes processor list, and the validation is real (a bad k8s_attributes field fails it)', () => {
  const k8s = { SOLOAD_LOG_PROCESSORS: '[memory_limiter, k8s_attributes, resource/soload, batch]', SOLOAD_TRACE_EXPORTERS: '[debug, otlphttp/traces]' };
  const ok = validateCollectorConfig(AGENT_CONFIG, k8s);
  assert.equal(ok.status, 0, ok.output);
  const broken = path.join(dir, 'broken-k8s.yaml');
  fs.writeFileSync(broken, fs.readFileSync(AGENT_CONFIG, 'utf8').replace('        - k8s.pod.uid\n', '        - k8s.pod.uidd\n'));
  const bad = validateCollectorConfig(broken, k8s);
  assert.notEqual(bad.status, 0, 'a misspelt metadata field must fail validation');
  assert.match(bad.output, /k8s\.pod\.uidd/);
  // association by container.id only (a record's resource names its container; the connection is always soload's)
  const yaml = fs.readFileSync(AGENT_CONFIG, 'utf8');
  const stanza = yaml.slice(yaml.indexOf('  k8s_attributes:'), yaml.indexOf('  resource/soload:'));
  assert.match(stanza, /pod_association:\s*\n\s*- sources:\s*\n\s*- from: resource_attribute\s*\n\s*name: container\.id\s*\n/);
  assert.doesNotMatch(stanza.replace(/#.*$/gm, ''), /from: connection/);
});
