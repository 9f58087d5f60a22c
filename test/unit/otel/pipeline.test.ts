import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { PassThrough } from 'node:stream';
import { JsonLogsSerializer, ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { loadConfig } from '../../../src/config/load';
import { createLogPipeline, selectedExporters, type SinkObservation } from '../../../src/otel/pipeline';

async function collector(): Promise<{ url: string; bodies: Buffer[]; close(): void }> {
  const bodies: Buffer[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks));
      res.writeHead(200, { 'Content-Type': req.headers['content-type'] ?? 'application/json' });
      res.end(req.headers['content-type'] === 'application/json' ? '{}' : '');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/v1/logs`, bodies, close: () => server.close() };
}

/** Counts calls of a serializer's serializeRequest while `fn` runs. */
async function countSerializations(serializer: { serializeRequest: (...a: never[]) => unknown }, fn: () => Promise<void>): Promise<number> {
  const s = serializer as unknown as { serializeRequest: (...a: unknown[]) => unknown };
  const orig = s.serializeRequest;
  let n = 0;
  s.serializeRequest = (...a: unknown[]) => (n++, orig(...a));
  try {
    await fn();
  } finally {
    s.serializeRequest = orig;
  }
  return n;
}

for (const [protocol, serializer] of [
  ['http/json', JsonLogsSerializer],
  ['http/protobuf', ProtobufLogsSerializer],
] as const) {
  test(`${protocol}: each batch is serialized exactly once on its way to the collector`, async () => {
    const col = await collector();
    const config = loadConfig({ env: { SOLOAD_OTLP_ENDPOINT: col.url, SOLOAD_EXPORTERS: 'otlp', SOLOAD_OTLP_PROTOCOL: protocol } });
    config.otel.batch.maxExportBatchSize = 10;
    const p = createLogPipeline(config, { warn: () => {} });
    const n = await countSerializations(serializer, async () => {
      for (let i = 0; i < 30; i++) p.logger.emit({ eventName: 'so.load', body: `load ${i}`, attributes: { 'process.pid': i } });
      await p.forceFlush();
      await p.shutdown();
    });
    col.close();
    assert.equal(p.delivery?.exported, 30);
    assert.equal(col.bodies.length, 3);
    assert.equal(n, 3, `${n} serializations for 3 requests`);
  });
}

test('exporters are built through one factory: console-only and none have delivery counters too', async () => {
  const cfg = (exporters: string) => loadConfig({ env: { SOLOAD_EXPORTERS: exporters } });
  assert.deepEqual(selectedExporters(cfg('console,otlp')), ['otlp', 'console']);
  assert.deepEqual(selectedExporters(cfg('none')), []);

  const out = new PassThrough();
  let printed = '';
  out.on('data', (d: Buffer) => (printed += d.toString()));
  const p = createLogPipeline(cfg('console'), { consoleOut: out });
  const seen: SinkObservation[] = [];
  p.onExport?.((o) => seen.push(o));
  p.logger.emit({ eventName: 'so.load', body: 'a' });
  p.logger.emit({ eventName: 'so.load', body: 'b' });
  await p.forceFlush();
  assert.deepEqual(p.sinks.map((s) => s.name), ['console']);
  assert.equal(p.delivery, p.sinks[0]!.stats);
  assert.equal(p.delivery?.exported, 2);
  assert.equal(printed.trim().split('\n').length, 2);
  assert.ok(seen.length === 2 && seen.every((o) => o.exporter === 'console' && o.ok));
  out.destroy(); // stdout gone (EPIPE): counted, not silent
  p.logger.emit({ eventName: 'so.load', body: 'c' });
  await p.forceFlush();
  assert.equal(p.delivery?.droppedByReason.rejected, 1);
  assert.equal(p.delivery?.failedAttempts, 1);
  await p.shutdown();

  const none = createLogPipeline(cfg('none'));
  assert.deepEqual(none.sinks, []);
  assert.equal(none.delivery, undefined);
  await none.shutdown();
});
