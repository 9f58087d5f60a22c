// Proves the test helpers against the REAL components built by scripts/build-collector.sh:
// the otelcol-soload Collector (ocb build) and VictoriaLogs. No mocks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  REPO_ROOT,
  fileExporterConfig,
  otlpHttpForwardConfig,
  postOtlpJsonLogs,
  readFileExporterLogs,
  startCollector,
  validateCollectorConfig,
  waitForFileExporterLogs,
} from '../helpers/collector';
import { startVictoriaLogs } from '../helpers/victorialogs';

const AGENT_CONFIG = path.join(REPO_ROOT, 'otel-collector.yaml');

/** One OTLP/HTTP JSON ExportLogsServiceRequest shaped like a soload record. */
function sampleRequest(marker: string, pid = 4242): object {
  const nowNs = (BigInt(Date.now()) * 1_000_000n).toString();
  return {
    resourceLogs: [
      {
        resource: {
          attributes: [
            { key: 'service.name', value: { stringValue: 'soload-it' } },
            { key: 'host.name', value: { stringValue: 'it-host' } },
          ],
        },
        scopeLogs: [
          {
            scope: { name: 'soload', version: '0.1.0' },
            logRecords: [
              {
                timeUnixNano: nowNs,
                observedTimeUnixNano: nowNs,
                severityNumber: 9,
                severityText: 'INFO',
                eventName: 'soload.load',
                body: { stringValue: `loaded libz.so.1 ${marker}` },
                attributes: [
                  { key: 'process.pid', value: { intValue: String(pid) } },
                  { key: 'soload.load.method', value: { stringValue: 'dlopen' } },
                  { key: 'soload.library.path', value: { stringValue: '/usr/lib/x86_64-linux-gnu/libz.so.1' } },
                  { key: 'soload.marker', value: { stringValue: marker } },
                  { key: 'soload.first_load', value: { boolValue: true } },
                  { key: 'soload.latency_ms', value: { doubleValue: 1.5 } },
                  { key: 'soload.big', value: { intValue: '9007199254740993' } },
                  { key: 'soload.tags', value: { arrayValue: { values: [{ stringValue: 'a' }, { intValue: '2' }] } } },
                  {
                    key: 'soload.elf',
                    value: { kvlistValue: { values: [{ key: 'soname', value: { stringValue: 'libz.so.1' } }] } },
                  },
                ],
              },
            ],
          },
        ],
      },
    ],
  };
}

test('otel-collector.yaml passes `otelcol-soload validate` with default and with every backend selected', () => {
  const def = validateCollectorConfig(AGENT_CONFIG, { SOLOAD_LOG_EXPORTERS: undefined });
  assert.equal(def.status, 0, def.output);
  const all = validateCollectorConfig(AGENT_CONFIG, {
    SOLOAD_LOG_EXPORTERS: '[debug, otlphttp/loki, otlphttp/elastic, otlphttp/victorialogs, file/local]',
    LOKI_OTLP_ENDPOINT: 'http://loki.example:3100/otlp',
    ELASTIC_AUTHORIZATION: 'ApiKey abc',
  });
  assert.equal(all.status, 0, all.output);
  const typo = validateCollectorConfig(AGENT_CONFIG, { SOLOAD_LOG_EXPORTERS: '[debug, otlphttp/lokki]' });
  assert.notEqual(typo.status, 0, 'a misspelt exporter name must fail validation');
  assert.match(typo.output, /otlphttp\/lokki/);
});

test('collector with file exporter: one OTLP/HTTP JSON log in, same record out; restart keeps working', async () => {
  const col = await startCollector({ configYaml: fileExporterConfig() });
  try {
    assert.match(col.httpEndpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(col.fileOutput, 'fileOutput detected from the config');
    const out = col.fileOutput;
    const marker = crypto.randomUUID();
    await postOtlpJsonLogs(col.httpEndpoint, sampleRequest(marker));
    const recs = await waitForFileExporterLogs(out);
    assert.equal(recs.length, 1);
    const r = recs[0];
    assert.deepEqual(r.resource, { 'service.name': 'soload-it', 'host.name': 'it-host' });
    assert.equal(r.scope.name, 'soload');
    assert.equal(r.body, `loaded libz.so.1 ${marker}`);
    assert.equal(r.eventName, 'soload.load');
    assert.equal(r.severityText, 'INFO');
    assert.equal(r.severityNumber, 9);
    assert.match(r.timeUnixNano, /^\d{19}$/);
    assert.equal(r.attributes['process.pid'], 4242);
    assert.equal(r.attributes['soload.load.method'], 'dlopen');
    assert.equal(r.attributes['soload.first_load'], true);
    assert.equal(r.attributes['soload.latency_ms'], 1.5);
    assert.equal(r.attributes['soload.big'], '9007199254740993', 'int64 beyond 2^53 stays a decimal string');
    assert.deepEqual(r.attributes['soload.tags'], ['a', 2]);
    assert.deepEqual(r.attributes['soload.elf'], { soname: 'libz.so.1' });

    const pid1 = col.pid;
    await col.restart();
    assert.notEqual(col.pid, pid1);
    await postOtlpJsonLogs(col.httpEndpoint, sampleRequest('after-restart', 7));
    // the file exporter truncates on start (append: false): only the new record remains
    const after = await waitForFileExporterLogs(out, (rs) => rs.some((x) => x.attributes['soload.marker'] === 'after-restart'));
    assert.equal(after.length, 1, JSON.stringify(after));
    assert.equal(after[0].attributes['process.pid'], 7);
  } finally {
    await col.stop();
  }
  assert.equal(col.pid, undefined, 'process gone after stop()');
  assert.equal(fs.existsSync(col.workDir), false, 'temp work dir removed');
});

test('collector with health_check and gRPC placeholders: all ports picked, health endpoint answers', async () => {
  const col = await startCollector({ configYaml: fileExporterConfig(undefined, undefined, { healthCheck: true, grpc: true }) });
  try {
    assert.ok(col.healthUrl && col.grpcEndpoint);
    const ports = new Set([col.httpEndpoint, `http://${col.grpcEndpoint}`, col.healthUrl.replace(/\/$/, '')].map((u) => new URL(u).port));
    assert.equal(ports.size, 3, 'three distinct ports');
    const h = await fetch(col.healthUrl);
    assert.equal(h.status, 200);
    assert.match(fs.readFileSync(col.configPath, 'utf8'), /health_check:\n\s+endpoint: 127\.0\.0\.1:\d+/);
  } finally {
    await col.stop();
  }
});

test('collector kill(): crash and restart', async () => {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-it-'));
  try {
    const col = await startCollector({ configYaml: fileExporterConfig(), workDir });
    await col.kill();
    assert.equal(col.pid, undefined);
    await assert.rejects(postOtlpJsonLogs(col.httpEndpoint, sampleRequest('dead')));
    await col.restart();
    await postOtlpJsonLogs(col.httpEndpoint, sampleRequest('alive'));
    await waitForFileExporterLogs(path.join(workDir, 'logs.jsonl'));
    await col.stop();
    assert.ok(fs.existsSync(workDir), 'a caller-provided workDir is kept');
    assert.ok(readFileExporterLogs(path.join(workDir, 'logs.jsonl')).length >= 1);
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
});

test('collector -> otlphttp -> VictoriaLogs: the record is queryable with its attributes', async () => {
  const vl = await startVictoriaLogs();
  try {
    const col = await startCollector({ configYaml: otlpHttpForwardConfig(vl.otlpLogsUrl) });
    try {
      const marker = crypto.randomUUID();
      await postOtlpJsonLogs(col.httpEndpoint, sampleRequest(marker, 31337));
      const rows = await vl.waitForQuery(`"soload.marker":="${marker}"`, { timeoutMs: 20_000 });
      assert.equal(rows.length, 1, JSON.stringify(rows));
      const row = rows[0];
      // OTLP attribute names are kept verbatim as VictoriaLogs field names; values are strings
      assert.equal(row['process.pid'], '31337');
      assert.equal(row['soload.load.method'], 'dlopen');
      assert.equal(row['soload.library.path'], '/usr/lib/x86_64-linux-gnu/libz.so.1');
      assert.equal(row['service.name'], 'soload-it');
      assert.equal(row['host.name'], 'it-host');
      assert.equal(row._msg, `loaded libz.so.1 ${marker}`);
      assert.equal(row.severity_text, 'INFO');
      assert.equal(row.event_name, 'soload.load');
      assert.equal(row['scope.name'], 'soload');
      assert.equal(row['soload.elf.soname'], 'libz.so.1', 'kvlist flattened with dots');
      assert.match(row._stream, /service\.name="soload-it"/);
      // numeric filters on the attribute work too
      const byPid = await vl.query(`"process.pid":=31337`);
      assert.equal(byPid.length, 1);
    } finally {
      await col.stop();
    }
  } finally {
    await vl.stop();
  }
});
